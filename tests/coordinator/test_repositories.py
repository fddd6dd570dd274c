"""The repository and artifact API over the index, on SQLite and PostgreSQL, with both
real clients: nested names encoded twice, artifacts by tag and digest, tags, ``q``
filters, pull counts and times, visibility by membership and public projects, delete."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

import harbor_client  # type: ignore[import-untyped]
import httpx
import pytest
import trio
from coordinator_fixtures import Coordinator
from harbor_client.rest import ApiException  # type: ignore[import-untyped]
from harborapi import HarborAsyncClient
from harborapi.exceptions import NotFound
from harborapi.models import ProjectMetadata, ProjectReq, UserCreationReq
from node_events_client import DIGEST_A, DIGEST_B, OCI_MANIFEST, EventNode, epoch, event

PASSWORD = "Passw0rdPassw0rd"
T = TypeVar("T")


@pytest.fixture
async def admin(coordinator: Coordinator) -> AsyncIterator[HarborAsyncClient]:
    client = HarborAsyncClient(
        url=coordinator.api, username="admin", secret=coordinator.admin_password, retry=None
    )
    yield client
    await client.client.aclose()


async def _seed(admin_http: httpx.AsyncClient, project: str, name: str) -> None:
    node = await EventNode.join(admin_http, name)
    await node.send(
        [
            event("push", 1, f"{project}/team/app", tag="v1", when=epoch("2026-03-01 10:00:00")),
            event(
                "push",
                2,
                f"{project}/team/app",
                tag="v2",
                digest=DIGEST_B,
                size=999,
                when=epoch("2026-03-02 10:00:00"),
            ),
            event("push", 3, f"{project}/team/app", tag="stable", digest=DIGEST_B),
            event("push", 4, f"{project}/tools", digest=DIGEST_A),
            event(
                "pull",
                5,
                f"{project}/team/app",
                tag="v2",
                digest=DIGEST_B,
                count=4,
                when=epoch("2026-03-05 12:00:00"),
            ),
        ]
    )


async def test_listing_with_harborapi(
    admin: HarborAsyncClient, admin_http: httpx.AsyncClient, unique: Callable[[str], str]
) -> None:
    project = unique("idx")
    await admin.create_project(ProjectReq(project_name=project))
    await _seed(admin_http, project, unique("edge"))

    repos = await admin.get_repositories(project, sort="name")
    assert [(r.name, r.artifact_count, r.pull_count) for r in repos] == [
        (f"{project}/team/app", 2, 4),
        (f"{project}/tools", 1, 0),
    ]
    assert (await admin.get_project_summary(project)).repo_count == 2
    app = await admin.get_repository(project, "team/app")  # sent as team%252Fapp
    assert app.name == f"{project}/team/app" and app.project_id == repos[0].project_id
    assert (await admin.get_repositories(project, query="name=~tool"))[0].name == f"{project}/tools"

    artifacts = await admin.get_artifacts(project, "team/app")
    assert [a.digest for a in artifacts] == [DIGEST_B, DIGEST_A]  # newest push first
    newest = artifacts[0]
    assert sorted(t.name or "" for t in newest.tags or []) == ["stable", "v2"]
    assert (newest.size, newest.media_type, newest.type) == (999, OCI_MANIFEST, "IMAGE")
    assert newest.pull_time == datetime(2026, 3, 5, 12, 0, tzinfo=UTC)
    assert newest.repository_name == f"{project}/team/app"

    by_tag = await admin.get_artifact(project, "team/app", "v1")
    assert by_tag.digest == DIGEST_A
    assert by_tag.push_time == datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    by_digest = await admin.get_artifact(project, "team/app", DIGEST_B)
    assert by_digest.id == newest.id
    tags = await admin.get_artifact_tags(project, "team/app", DIGEST_B)
    assert [t.name for t in tags] == ["stable", "v2"]
    assert [t.pull_time is not None and t.pull_time.year for t in tags] == [1, 2026]

    assert [a.digest for a in await admin.get_artifacts(project, "team/app", query="tags=v1")] == [
        DIGEST_A
    ]
    assert [
        a.digest for a in await admin.get_artifacts(project, "team/app", query="tags=~sta")
    ] == [DIGEST_B]
    assert [a.digest for a in await admin.get_artifacts(project, "tools", query="tags=nil")] == [
        DIGEST_A
    ]
    assert await admin.get_artifacts(project, "tools", query="tags=*") == []
    small = await admin.get_artifacts(project, "team/app", query="size=[~1000]")
    assert [a.digest for a in small] == [DIGEST_B]

    with pytest.raises(NotFound):
        await admin.get_artifact(project, "team/app", "v9")
    with pytest.raises(NotFound):
        await admin.get_repository(project, "nothing/here")

    found = await admin.get_repositories(query=f"name=~{project}/team")
    assert [r.name for r in found] == [f"{project}/team/app"]

    await admin.delete_repository(project, "team/app")
    with pytest.raises(NotFound):
        await admin.get_repository(project, "team/app")
    assert [r.name for r in await admin.get_repositories(project)] == [f"{project}/tools"]
    deleted = await admin.get_audit_logs(query=f"resource={project}/team/app,operation=delete")
    assert [(d.resource_type, d.username) for d in deleted] == [("repository", "admin")]


async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await trio.to_thread.run_sync(partial(fn, *args, **kwargs))


async def test_listing_with_harbor_api_client(
    coordinator: Coordinator,
    admin: HarborAsyncClient,
    admin_http: httpx.AsyncClient,
    unique: Callable[[str], str],
) -> None:
    project = unique("gen")
    await admin.create_project(ProjectReq(project_name=project))
    await _seed(admin_http, project, unique("edge"))
    config = harbor_client.Configuration()
    config.host = coordinator.api
    config.username = "admin"
    config.password = coordinator.admin_password
    client = harbor_client.ApiClient(config)
    try:
        repos_api = harbor_client.RepositoryApi(client)
        artifact_api = harbor_client.ArtifactApi(client)
        repos = await call(repos_api.list_repositories, project)
        assert sorted(r.name for r in repos) == [f"{project}/team/app", f"{project}/tools"]
        # This client wants the name encoded once by the caller and encodes it again.
        app = await call(repos_api.get_repository, project, "team%2Fapp")
        assert app.pull_count == 4
        listed = await call(artifact_api.list_artifacts, project, "team%2Fapp", with_tag=True)
        assert [a.digest for a in listed] == [DIGEST_B, DIGEST_A]
        one = await call(artifact_api.get_artifact, project, "team%2Fapp", "stable")
        assert one.digest == DIGEST_B
        tags = await call(artifact_api.list_tags, project, "team%2Fapp", DIGEST_A)
        assert [t.name for t in tags] == ["v1"]
        with pytest.raises(ApiException) as missing:
            await call(artifact_api.get_artifact, project, "team%2Fapp", DIGEST_A[:-1] + "f")
        assert missing.value.status == 404
    finally:
        client.rest_client.pool_manager.clear()


async def test_visibility(
    coordinator: Coordinator,
    admin: HarborAsyncClient,
    admin_http: httpx.AsyncClient,
    unique: Callable[[str], str],
) -> None:
    private, public = unique("private"), unique("public")
    await admin.create_project(ProjectReq(project_name=private))
    await admin.create_project(
        ProjectReq(project_name=public, metadata=ProjectMetadata(public="true"))
    )
    node = await EventNode.join(admin_http, unique("edge"))
    await node.send(
        [event("push", 1, f"{private}/app", tag="1"), event("push", 2, f"{public}/app")]
    )
    guest_name = unique("guest")
    await admin.create_user(
        UserCreationReq(username=guest_name, email=f"{guest_name}@example.com", password=PASSWORD)
    )
    guest = HarborAsyncClient(url=coordinator.api, username=guest_name, secret=PASSWORD, retry=None)
    try:
        assert await guest.get_repositories(query=f"name=~{private}") == []
        with pytest.raises(NotFound):
            await guest.get_repositories(private)
        assert [r.name for r in await guest.get_repositories(query=f"name=~{public}")] == [
            f"{public}/app"
        ]
        await admin.add_project_member_user(private, guest_name, 3)
        assert [r.name for r in await guest.get_repositories(private)] == [f"{private}/app"]
        assert [a.digest for a in await guest.get_artifacts(private, "app")] == [DIGEST_A]
    finally:
        await guest.client.aclose()

    async with httpx.AsyncClient(base_url=coordinator.api) as anonymous:
        seen = await anonymous.get("/repositories", params={"q": f"name=~{public}"})
        assert [r["name"] for r in seen.json()] == [f"{public}/app"]
        hidden = await anonymous.get(f"/projects/{private}/repositories")
        assert hidden.status_code == 404
        refused = await anonymous.delete(f"/projects/{public}/repositories/app")
        assert refused.status_code == 401
        single = await anonymous.get(f"/projects/{public}/repositories/app%252Fnone")
        assert single.status_code == 404
