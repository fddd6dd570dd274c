"""Node events in, on SQLite and PostgreSQL, through ``POST /nodes/{id}/events``:
duplicates (re-sent batches, repeats inside a batch) are applied once, a batch with a
bad ``seq`` is refused whole, a bad event is skipped without blocking the rest, each
node has its own sequence, and the artifact index follows pushes, tag moves, pulls and
deletes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from coordinator_fixtures import Coordinator
from harborapi import HarborAsyncClient
from harborapi.exceptions import NotFound
from harborapi.models import ProjectReq
from node_events_client import DIGEST_A, DIGEST_B, EventNode, event


@pytest.fixture
async def admin(coordinator: Coordinator) -> AsyncIterator[HarborAsyncClient]:
    client = HarborAsyncClient(
        url=coordinator.api, username="admin", secret=coordinator.admin_password, retry=None
    )
    yield client
    await client.client.aclose()


async def _audit(admin: HarborAsyncClient, repo: str) -> list[tuple[str, str]]:
    logs = await admin.get_audit_logs(query=f"resource=~{repo}", sort="id", limit=None)
    return [(str(e.operation), str(e.resource)) for e in logs]


async def test_duplicates_are_applied_once(
    admin: HarborAsyncClient, admin_http: httpx.AsyncClient, unique: Callable[[str], str]
) -> None:
    project = unique("dups")
    await admin.create_project(ProjectReq(project_name=project))
    node = await EventNode.join(admin_http, unique("edge"))
    repo = f"{project}/app"
    first = [
        event("push", 1, repo, tag="v1"),
        event("pull", 2, repo, tag="v1", count=3),
        event("pull", 3, repo, tag="v1"),
    ]
    await node.send(first)
    await node.send(first)  # the node did not see the answer and sends again
    # An overlapping batch, as JSON, with one event repeated inside it.
    await node.send([*first[1:], event("pull", 4, repo), event("pull", 4, repo)], frame=False)

    assert await _audit(admin, repo) == [
        ("create", f"{repo}:v1"),
        ("pull", f"{repo}:v1"),
        ("pull", f"{repo}:v1"),
        ("pull", f"{repo}@{DIGEST_A}"),
    ]
    got = await admin.get_repository(project, "app")
    assert (got.name, got.artifact_count, got.pull_count) == (repo, 1, 5)


async def test_bad_batches_and_bad_events(
    admin: HarborAsyncClient, admin_http: httpx.AsyncClient, unique: Callable[[str], str]
) -> None:
    project = unique("bad")
    await admin.create_project(ProjectReq(project_name=project))
    node = await EventNode.join(admin_http, unique("edge"))
    repo = f"{project}/app"

    no_seq = event("push", 0, repo, tag="x")
    del no_seq["seq"]
    refused = await node.post([event("push", 10, repo, tag="v1"), no_seq])
    assert refused.status_code == 400
    assert "seq" in refused.json()["errors"][0]["message"]
    assert await _audit(admin, repo) == []  # nothing of the batch was written

    broken = [
        event("push", 10, repo, tag="v1"),
        {**event("push", 11, repo), "type": "teleport"},
        {**event("push", 12, repo), "digest": "md5:xyz!"},
        {**event("push", 13, "Not/A Valid/Name")},
        event("push", 14, repo, tag="v2", digest=DIGEST_B),
    ]
    await node.send(broken)
    assert await _audit(admin, repo) == [("create", f"{repo}:v1"), ("create", f"{repo}:v2")]
    # The skipped ones are not retried: the node's outbox moves on.
    await node.send(broken)
    assert len(await _audit(admin, repo)) == 2


async def test_nodes_have_their_own_sequences(
    admin: HarborAsyncClient, admin_http: httpx.AsyncClient, unique: Callable[[str], str]
) -> None:
    project = unique("two")
    await admin.create_project(ProjectReq(project_name=project))
    one = await EventNode.join(admin_http, unique("edge"))
    two = await EventNode.join(admin_http, unique("edge"))
    repo = f"{project}/app"
    await one.send([event("pull", 7, repo, tag="v1", username="ann")])
    await two.send([event("pull", 1, repo, tag="v1", username="ben")])
    logs = await admin.get_audit_logs(query=f"resource=~{repo}")
    assert sorted(str(e.username) for e in logs) == ["ann", "ben"]
    # A pull of something never pushed (a proxy cache filling) indexes it.
    artifacts = await admin.get_artifacts(project, "app")
    assert [(a.digest, [t.name for t in a.tags or []]) for a in artifacts] == [(DIGEST_A, ["v1"])]
    assert (await admin.get_repository(project, "app")).pull_count == 2


async def test_index_follows_tag_moves_and_deletes(
    admin: HarborAsyncClient, admin_http: httpx.AsyncClient, unique: Callable[[str], str]
) -> None:
    project = unique("moves")
    await admin.create_project(ProjectReq(project_name=project))
    node = await EventNode.join(admin_http, unique("edge"))
    repo = f"{project}/app"
    await node.send(
        [
            event("push", 1, repo, tag="latest", digest=DIGEST_A),
            event("push", 2, repo, tag="v1", digest=DIGEST_A),
            event("push", 3, repo, tag="latest", digest=DIGEST_B),  # latest moves to B
        ]
    )
    tags_of = {
        a.digest: sorted(t.name or "" for t in a.tags or [])
        for a in await admin.get_artifacts(project, "app")
    }
    assert tags_of == {DIGEST_A: ["v1"], DIGEST_B: ["latest"]}

    await node.send([event("delete", 4, repo, tag="v1", digest=DIGEST_A)])
    a = await admin.get_artifact(project, "app", DIGEST_A)
    assert a.tags == [] or a.tags is None
    with pytest.raises(NotFound):
        await admin.get_artifact(project, "app", "v1")

    await node.send([event("delete", 5, repo, digest=DIGEST_B)])
    with pytest.raises(NotFound):
        await admin.get_artifact(project, "app", DIGEST_B)
    with pytest.raises(NotFound):
        await admin.get_artifact(project, "app", "latest")
    assert (await admin.get_repository(project, "app")).artifact_count == 1
    ops = [op for op, _ in await _audit(admin, repo)]
    assert ops == ["create", "create", "create", "delete", "delete"]
    kinds = await admin.get_audit_logs(query=f"resource=~{repo},operation=delete", sort="id")
    assert [k.resource_type for k in kinds] == ["tag", "artifact"]


async def test_events_of_unknown_projects_are_audited_only(
    admin: HarborAsyncClient, admin_http: httpx.AsyncClient, unique: Callable[[str], str]
) -> None:
    node = await EventNode.join(admin_http, unique("edge"))
    ghost = unique("ghost")
    await node.send([event("push", 1, f"{ghost}/app", tag="v1"), event("pull", 2, "alpine")])
    assert [e.resource for e in await admin.get_audit_logs(query=f"resource=~{ghost}")] == [
        f"{ghost}/app:v1"
    ]
    assert await admin.get_repositories(query=f"name=~{ghost}") == []
