"""Every /v2 route maps to the access it needs, with the handlers' own name split."""

from __future__ import annotations

import pytest

from node.auth.scopes import required_access
from portmesh.tokens import Access, format_scope


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        ("GET", "/v2/team/app/manifests/v1", b"", ["repository:team/app:pull"]),
        ("HEAD", "/v2/team/app/manifests/sha256:ab", b"", ["repository:team/app:pull"]),
        ("GET", "/v2/team/app/blobs/sha256:ab", b"", ["repository:team/app:pull"]),
        ("HEAD", "/v2/team/app/blobs/sha256:ab", b"", ["repository:team/app:pull"]),
        ("GET", "/v2/team/app/tags/list", b"n=10", ["repository:team/app:pull"]),
        ("GET", "/v2/team/app/referrers/sha256:ab", b"", ["repository:team/app:pull"]),
        ("POST", "/v2/team/app/blobs/uploads/", b"", ["repository:team/app:push"]),
        ("PATCH", "/v2/team/app/blobs/uploads/u1", b"", ["repository:team/app:push"]),
        ("PUT", "/v2/team/app/blobs/uploads/u1", b"digest=x", ["repository:team/app:push"]),
        ("GET", "/v2/team/app/blobs/uploads/u1", b"", ["repository:team/app:push"]),
        ("DELETE", "/v2/team/app/blobs/uploads/u1", b"", ["repository:team/app:push"]),
        ("PUT", "/v2/team/app/manifests/v1", b"", ["repository:team/app:push"]),
        ("DELETE", "/v2/team/app/manifests/sha256:ab", b"", ["repository:team/app:delete"]),
        ("DELETE", "/v2/team/app/blobs/sha256:ab", b"", ["repository:team/app:delete"]),
        (
            "POST",
            "/v2/team/app/blobs/uploads/",
            b"mount=sha256:ab&from=other/base",
            ["repository:team/app:push", "repository:other/base:pull"],
        ),
        ("GET", "/v2/_catalog", b"n=5", ["registry:catalog:*"]),
        ("GET", "/v2/", b"", []),
        ("GET", "/v2", b"", []),
        ("GET", "/v2/nothing-here", b"", []),
        # a repository whose name holds a route word is split as the handlers split it
        ("GET", "/v2/a/manifests/b/manifests/v1", b"", ["repository:a/manifests/b:pull"]),
        ("PUT", "/v2/x/blobs/uploads/y/manifests/v1", b"", ["repository:x/blobs/uploads/y:push"]),
    ],
)
def test_route_table(method: str, path: str, query: bytes, expected: list[str]) -> None:
    got = required_access(method, path, query)
    assert got is not None
    assert [format_scope(entry) for entry in got] == expected


def test_paths_outside_v2_are_not_guarded() -> None:
    for path in ("/healthz", "/metrics", "/v2x", "/service/token"):
        assert required_access("GET", path) is None


def test_mount_from_itself_needs_push_only() -> None:
    got = required_access("POST", "/v2/a/blobs/uploads/", b"mount=sha256:1&from=a")
    assert got == [Access("repository", "a", ("push",))]
