"""The audit log on SQLite and PostgreSQL: entries from API calls and from node events,
searched with harborapi by each ``q`` key and an ``op_time`` range, sorted and paged;
project logs for members only; the retention purge."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from functools import partial

import httpx
import pytest
import trio
from coordinator_fixtures import Coordinator
from harborapi import HarborAsyncClient
from harborapi.exceptions import BadRequest, NotFound
from harborapi.models import ProjectReq, UserCreationReq
from node_events_client import DIGEST_B, EventNode, epoch, event
from sqlalchemy import func, select

from coordinator.audit import list_logs, purge, run_purge
from coordinator.db.engine import Database
from coordinator.db.schema import audit_log
from coordinator.query import ListQuery, parse_q

PASSWORD = "Passw0rdPassw0rd"


@pytest.fixture
async def admin(coordinator: Coordinator) -> AsyncIterator[HarborAsyncClient]:
    client = HarborAsyncClient(
        url=coordinator.api, username="admin", secret=coordinator.admin_password, retry=None
    )
    yield client
    await client.client.aclose()


async def _user(admin: HarborAsyncClient, coordinator: Coordinator, name: str) -> HarborAsyncClient:
    await admin.create_user(
        UserCreationReq(username=name, email=f"{name}@example.com", password=PASSWORD)
    )
    return HarborAsyncClient(url=coordinator.api, username=name, secret=PASSWORD, retry=None)


async def test_search_by_every_key_and_time_range(
    coordinator: Coordinator,
    admin: HarborAsyncClient,
    admin_http: httpx.AsyncClient,
    unique: Callable[[str], str],
) -> None:
    project = unique("logs")
    await admin.create_project(ProjectReq(project_name=project))
    pusher, puller = unique("pusher"), unique("puller")
    node = await EventNode.join(admin_http, unique("edge"))
    repo = f"{project}/app"
    await node.send(
        [
            event("push", 1, repo, tag="v1", username=pusher, when=epoch("2025-06-01 08:00:00")),
            event("pull", 2, repo, tag="v1", username=puller, when=epoch("2026-02-01 09:00:00")),
            event("pull", 3, repo, username=puller, when=epoch("2026-11-20 10:00:00")),
            event("delete", 4, repo, tag="v1", username=pusher, when=epoch("2026-11-21 11:00:00")),
            event(
                "push", 5, repo, digest=DIGEST_B, username=pusher, when=epoch("2027-01-05 00:00:00")
            ),
        ]
    )

    mine = f"resource=~{project}/"
    created = await admin.get_audit_logs(query=f"{mine},operation=create", limit=None)
    assert [(e.username, e.resource) for e in created] == [
        (pusher, f"{repo}@{DIGEST_B}"),
        (pusher, f"{repo}:v1"),
    ]
    pulls = await admin.get_audit_logs(query=f"{mine},operation=pull")
    assert {e.username for e in pulls} == {puller} and len(pulls) == 2
    assert [
        e.resource_type for e in await admin.get_audit_logs(query=f"{mine},resource_type=tag")
    ] == ["tag"]
    by_user = await admin.get_audit_logs(query=f"username={pusher}")
    assert len(by_user) == 3
    exact = await admin.get_audit_logs(query=f"resource={repo}:v1,operation=delete")
    assert [e.op_time for e in exact] == [datetime(2026, 11, 21, 11, 0, tzinfo=UTC)]

    in_2026 = await admin.get_audit_logs(
        query=f"{mine},op_time=[2026-01-01 00:00:00~2026-12-31 23:59:59]"
    )
    assert sorted(str(e.operation) for e in in_2026) == ["delete", "pull", "pull"]
    since = await admin.get_audit_logs(query=f"{mine},op_time=[2026-11-20 10:00:00~]")
    assert len(since) == 3

    oldest_first = await admin.get_audit_logs(query=mine, sort="op_time")
    assert [e.op_time.year for e in oldest_first if e.op_time] == [2025, 2026, 2026, 2026, 2027]
    # The API calls made above are audited too (the project creation).
    made = await admin.get_audit_logs(query=f"resource={project},resource_type=project")
    assert [(e.operation, e.username) for e in made] == [("create", "admin")]

    paged = await admin_http.get(
        "/audit-logs", params={"q": mine, "page": 2, "page_size": 2, "sort": "-op_time"}
    )
    assert paged.status_code == 200
    assert paged.headers["X-Total-Count"] == "5"
    assert 'rel="prev"' in paged.headers["Link"] and 'rel="next"' in paged.headers["Link"]
    assert [e["op_time"][:4] for e in paged.json()] == ["2026", "2026"]
    assert set(paged.json()[0]) == {
        "id",
        "username",
        "resource",
        "resource_type",
        "operation",
        "op_time",
    }

    with pytest.raises(BadRequest):
        await admin.get_audit_logs(query="color=blue")
    with pytest.raises(BadRequest):
        await admin.get_audit_logs(query="op_time=[yesterday~today]")


async def test_project_logs_are_for_members(
    coordinator: Coordinator,
    admin: HarborAsyncClient,
    admin_http: httpx.AsyncClient,
    unique: Callable[[str], str],
) -> None:
    ours, theirs = unique("ours"), unique("theirs")
    await admin.create_project(ProjectReq(project_name=ours))
    await admin.create_project(ProjectReq(project_name=theirs))
    member_name, outsider_name = unique("member"), unique("outsider")
    member = await _user(admin, coordinator, member_name)
    outsider = await _user(admin, coordinator, outsider_name)
    try:
        await admin.add_project_member_user(ours, member_name, 3)  # guest
        node = await EventNode.join(admin_http, unique("edge"))
        await node.send(
            [event("push", 1, f"{ours}/web", tag="1"), event("push", 2, f"{theirs}/db", tag="1")]
        )

        logs = await member.get_project_logs(ours)
        assert {e.resource for e in logs} >= {f"{ours}/web:1"}
        assert all(not (e.resource or "").startswith(theirs) for e in logs)
        # /audit-logs for a non-admin: the projects they belong to, nothing else.
        everything = await member.get_audit_logs(limit=None)
        assert f"{ours}/web:1" in {e.resource for e in everything}
        assert not [e for e in everything if (e.resource or "").startswith(theirs)]

        with pytest.raises(NotFound):  # a private project the caller cannot see
            await outsider.get_project_logs(ours)
        assert await outsider.get_audit_logs() == []
        admin_view = await admin.get_project_logs(theirs)
        assert [e.resource for e in admin_view if e.resource_type == "artifact"] == [
            f"{theirs}/db:1"
        ]
    finally:
        await member.client.aclose()
        await outsider.client.aclose()
    async with httpx.AsyncClient(base_url=coordinator.api) as anonymous:
        assert (await anonymous.get("/audit-logs")).status_code == 401


async def test_retention_purge(
    coordinator: Coordinator,
    admin: HarborAsyncClient,
    admin_http: httpx.AsyncClient,
    unique: Callable[[str], str],
) -> None:
    project = unique("purge")
    await admin.create_project(ProjectReq(project_name=project))
    node = await EventNode.join(admin_http, unique("edge"))
    repo = f"{project}/old"
    now = datetime.now(UTC).timestamp()
    await node.send(
        [
            event("push", 1, repo, tag="a", when=now - 72 * 3600),
            event("pull", 2, repo, tag="a", when=now - 30 * 3600),
            event("pull", 3, repo, tag="a", when=now - 600),
        ]
    )
    query = ListQuery(conditions=parse_q(f"resource=~{repo}"), page_size=100)
    db = Database(coordinator.config.db_url)
    try:

        async def mine() -> list[str]:
            _, rows = await db.run(lambda conn: list_logs(conn, query))
            return sorted(r["operation"] for r in rows)

        assert await mine() == ["create", "pull", "pull"]
        cutoff = datetime.fromtimestamp(now - 48 * 3600, UTC)
        removed = await db.run(purge, cutoff)
        assert removed >= 1
        assert await mine() == ["pull", "pull"]

        # The housekeeping task with a 24 hour retention removes the 30 hour old entry.
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(run_purge, db, 24, interval=0.05))
            for _ in range(200):  # the task runs every 50 ms; allow 10 s
                if await mine() == ["pull"]:
                    break
                await trio.sleep(0.05)
            nursery.cancel_scope.cancel()
        assert await mine() == ["pull"]
        oldest = await db.run(
            lambda conn: conn.execute(select(func.min(audit_log.c.op_time))).scalar_one()
        )
        assert oldest is None or oldest.replace(tzinfo=UTC) >= datetime.fromtimestamp(
            now - 24 * 3600 - 60, UTC
        )
    finally:
        db.close()
