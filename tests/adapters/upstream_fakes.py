"""An in-memory registry and token service behind ``httpx.MockTransport`` for unit tests of
the OCI client's protocol logic (auth state machine, error mapping, verification).

Real-registry behaviour is covered by the integration tests; this fake answers only what
the unit tests need, the way distribution does: ``WWW-Authenticate`` challenges, an OCI
error body on failures, ``Docker-Content-Digest`` on manifests, ``Link`` for tag pages.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import trio

REGISTRY = "https://registry.test"
REALM = "https://auth.test/token"
SERVICE = "registry.test"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
ROUTE = re.compile(r"^/v2/(?P<repo>.+)/(?P<kind>manifests|blobs|tags|referrers)/(?P<ref>.+)$")


def route(path: str) -> tuple[str, str, str]:
    match = ROUTE.match(path)
    return (match["repo"], match["kind"], match["ref"]) if match else ("", "", "")


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def oci_error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    body = {"errors": [{"code": code, "message": message}]}
    return httpx.Response(status, json=body, headers=headers)


@dataclass
class FakeRegistry:
    """``auth`` is "none", "basic" or "bearer". ``users`` maps user -> password (Basic at
    the registry, or at the token service for bearer). Tokens are opaque counters; those in
    ``revoked`` are refused by the registry. ``token_delay`` slows the token service."""

    auth: str = "none"
    users: dict[str, str] = field(default_factory=dict)
    anonymous_tokens: bool = True
    token_field: str = "token"
    expires_in: float | None = 300
    token_delay: float = 0.0
    manifests: dict[str, bytes] = field(default_factory=dict)  # "repo:ref" -> body
    blobs: dict[str, bytes] = field(default_factory=dict)  # digest -> bytes
    tags: dict[str, list[str]] = field(default_factory=dict)
    honour_range: bool = True
    override: Callable[[httpx.Request], httpx.Response | None] | None = None
    issued: dict[str, str] = field(default_factory=dict)  # token -> scope
    revoked: set[str] = field(default_factory=set)
    token_requests: list[httpx.Request] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self.handle), **kwargs)

    def add_manifest(self, repo: str, tag: str, body: bytes) -> str:
        digest = sha256(body)
        self.manifests[f"{repo}:{tag}"] = body
        self.manifests[f"{repo}:{digest}"] = body
        self.tags.setdefault(repo, []).append(tag)
        return digest

    def _user_ok(self, header: str | None) -> str | None:
        """The user name if ``header`` is valid Basic for a known user; "" if absent."""
        if header is None:
            return ""
        if not header.startswith("Basic "):
            return None
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        return user if self.users.get(user) == password else None

    async def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == "auth.test":
            return await self._token(request)
        self.requests.append(request)
        self.counts[request.url.path] += 1
        if self.override is not None:
            answer = self.override(request)
            if answer is not None:
                return answer
        denied = self._check_auth(request)
        if denied is not None:
            return denied
        return self._serve(request)

    async def _token(self, request: httpx.Request) -> httpx.Response:
        self.token_requests.append(request)
        if self.token_delay:
            await trio.sleep(self.token_delay)
        user = self._user_ok(request.headers.get("authorization"))
        if user is None or (user == "" and not self.anonymous_tokens):
            return oci_error(401, "UNAUTHORIZED", "incorrect username or password")
        token = f"tok-{next(self._ids)}"
        self.issued[token] = request.url.params.get("scope", "")
        doc: dict[str, Any] = {self.token_field: token}
        if self.expires_in is not None:
            doc["expires_in"] = self.expires_in
        return httpx.Response(200, json=doc)

    def _check_auth(self, request: httpx.Request) -> httpx.Response | None:
        header = request.headers.get("authorization")
        if self.auth == "basic":
            if header and self._user_ok(header):
                return None
            challenge = 'Basic realm="fake"'
        elif self.auth == "bearer":
            repo = route(request.url.path)[0]
            if header and header.startswith("Bearer "):
                token = header[7:]
                scope = self.issued.get(token)
                if token not in self.revoked and scope == f"repository:{repo}:pull":
                    return None
            challenge = (
                f'Bearer realm="{REALM}",service="{SERVICE}",'
                f'scope="repository:{repo}:pull",error="invalid_token"'
            )
        else:
            return None
        return oci_error(
            401, "UNAUTHORIZED", "authentication required", {"WWW-Authenticate": challenge}
        )

    def _serve(self, request: httpx.Request) -> httpx.Response:
        repo, kind, ref = route(request.url.path)
        if kind == "manifests":
            body = self.manifests.get(f"{repo}:{ref}")
            if body is None:
                return oci_error(404, "MANIFEST_UNKNOWN", "manifest unknown")
            headers = {"Docker-Content-Digest": sha256(body), "Content-Type": OCI_MANIFEST}
            if request.method == "HEAD":
                headers["Content-Length"] = str(len(body))
                return httpx.Response(200, headers=headers)
            return httpx.Response(200, content=body, headers=headers)
        if kind == "blobs":
            data = self.blobs.get(ref)
            if data is None:
                return oci_error(404, "BLOB_UNKNOWN", "blob unknown")
            spec = request.headers.get("range")
            if spec and self.honour_range:
                start_s, _, end_s = spec.removeprefix("bytes=").partition("-")
                start = int(start_s)
                end = int(end_s) if end_s else len(data) - 1
                end = min(end, len(data) - 1)
                headers = {"Content-Range": f"bytes {start}-{end}/{len(data)}"}
                return httpx.Response(206, content=data[start : end + 1], headers=headers)
            return httpx.Response(200, content=data)
        if kind == "tags":
            tags = sorted(self.tags.get(repo, []))
            last = request.url.params.get("last")
            if last:
                tags = [t for t in tags if t > last]
            n = request.url.params.get("n")
            headers = {}
            if n is not None and len(tags) > int(n):
                tags = tags[: int(n)]
                headers["Link"] = f'</v2/{repo}/tags/list?last={tags[-1]}&n={n}>; rel="next"'
            return httpx.Response(200, json={"name": repo, "tags": tags}, headers=headers)
        return httpx.Response(404, text="404 page not found")


def manifest_body(marker: str = "x") -> bytes:
    return json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "annotations": {"m": marker}}
    ).encode()
