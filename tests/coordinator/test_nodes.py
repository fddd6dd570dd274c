"""Nodes at the coordinator, on SQLite and PostgreSQL: join tokens, registration, node
JWT authentication, the policy long poll (version bumps on project changes), the node
list with health, deregistration."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import trio
from coordinator_fixtures import Coordinator
from sqlalchemy import Connection, insert, select

from coordinator.api.nodes import FRAME_TYPE
from coordinator.db.engine import Database
from coordinator.db.migrate import upgrade
from coordinator.db.schema import audit_log, now, projects
from coordinator.policy_build import (
    PolicySources,
    build_policy,
    content_digest,
    for_node,
    sync_version,
)
from portmesh import codec
from portmesh.policy import Policy, ServiceInfo
from portmesh.tokens import SigningKey, new_claims, sign


def node_token(key: SigningKey, node_id: int, *, audience: str = "portmesh-coordinator") -> str:
    claims = new_claims(
        issuer=f"portmesh-node:{node_id}",
        subject=str(node_id),
        audience=audience,
        access=(),
        ttl=60,
        now=time.time(),
    )
    return sign(claims, key)


async def join(admin_http: httpx.AsyncClient, name: str) -> tuple[int, SigningKey, str]:
    made = await admin_http.post("/nodes/join-tokens", json={"duration": 600})
    assert made.status_code == 201, made.text
    token = made.json()["token"]
    key = SigningKey.generate()
    async with httpx.AsyncClient(base_url=admin_http.base_url) as anonymous:
        reg = await anonymous.post(
            "/nodes/register",
            json={"join_token": token, "name": name, "public_key": key.public_jwk(), "url": ""},
        )
    assert reg.status_code == 201, reg.text
    assert reg.json()["service"] == name
    return int(reg.json()["id"]), key, token


async def test_join_tokens_are_for_sysadmins_and_work_once(
    coordinator: Coordinator, admin_http: httpx.AsyncClient, unique: Callable[[str], str]
) -> None:
    async with httpx.AsyncClient(base_url=coordinator.api) as anonymous:
        assert (await anonymous.post("/nodes/join-tokens", json={})).status_code == 401
        bad = await admin_http.post("/nodes/join-tokens", json={"duration": -1})
        assert bad.status_code == 400
        node_id, _, token = await join(admin_http, unique("edge"))
        again = await anonymous.post(
            "/nodes/register",
            json={
                "join_token": token,
                "name": unique("other"),
                "public_key": SigningKey.generate().public_jwk(),
            },
        )
        assert again.status_code == 401, "a join token works once"
        made = (await admin_http.post("/nodes/join-tokens", json={})).json()
        for body, status in [
            ({"join_token": "pmjoin_nope", "name": "x", "public_key": "A" * 43}, 401),
            ({"join_token": made["token"], "name": "Bad Name", "public_key": "A" * 43}, 400),
            ({"join_token": made["token"], "name": "good", "public_key": "AAAA"}, 400),
        ]:
            answer = await anonymous.post("/nodes/register", json=body)
            assert answer.status_code == status, (body, answer.text)
            assert answer.json()["errors"][0]["message"]
        listed = await admin_http.get("/nodes", params={"q": f"node_id={node_id}"})
        assert [n["id"] for n in listed.json()] == [node_id]


async def test_policy_long_poll_follows_project_changes(
    coordinator: Coordinator, admin_http: httpx.AsyncClient, unique: Callable[[str], str]
) -> None:
    name = unique("edge")
    node_id, key, _ = await join(admin_http, name)
    url = f"/nodes/{node_id}/policy"
    async with httpx.AsyncClient(base_url=coordinator.api, timeout=30) as http:
        assert (await http.get(url)).status_code == 401
        stranger = node_token(SigningKey.generate(), node_id)
        refused = await http.get(url, headers={"Authorization": f"Bearer {stranger}"})
        assert refused.status_code == 401
        wrong_aud = node_token(key, node_id, audience="elsewhere")
        refused = await http.get(url, headers={"Authorization": f"Bearer {wrong_aud}"})
        assert refused.status_code == 401

        def auth() -> dict[str, str]:
            return {"Authorization": f"Bearer {node_token(key, node_id)}"}

        first = await http.get(url, params={"version": 0, "cache_bytes": 123}, headers=auth())
        assert first.status_code == 200, first.text
        assert first.headers["content-type"] == FRAME_TYPE
        policy = Policy.from_bytes(first.content)
        assert policy.service.audience == name
        assert policy.version >= 1

        started = trio.current_time()
        same = await http.get(url, params={"version": policy.version, "wait": 1}, headers=auth())
        assert same.status_code == 304
        assert trio.current_time() - started >= 0.9

        project = unique("proj")
        result: list[httpx.Response] = []

        async def poll() -> None:
            params = {"version": policy.version, "wait": 20}
            result.append(await http.get(url, params=params, headers=auth()))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(poll)
            await trio.sleep(0.5)
            created = await admin_http.post(
                "/projects", json={"project_name": project, "metadata": {"public": "true"}}
            )
            assert created.status_code == 201, created.text
            changed = trio.current_time()
        assert trio.current_time() - changed < 5, "the poll returned at the change"
        newer = Policy.from_bytes(result[0].content)
        assert newer.version > policy.version
        assert newer.projects[project].public
        assert project in newer.public_projects

        shown = (await admin_http.get(f"/nodes/{node_id}")).json()
        assert shown["healthy"] is True
        assert shown["status"] == "healthy"
        assert shown["policy_version"] == newer.version
        assert shown["last_sync"]
        assert shown["cache_usage_bytes"] == 0  # the last poll reported none

        assert (await admin_http.delete(f"/nodes/{node_id}")).status_code == 200
        gone = await http.get(url, params={"version": 0}, headers=auth())
        assert gone.status_code == 401, "a deregistered node's requests fail"
        assert (await admin_http.get(f"/nodes/{node_id}")).status_code == 404


async def test_node_events_need_the_node_key(
    coordinator: Coordinator, admin_http: httpx.AsyncClient, unique: Callable[[str], str]
) -> None:
    node_id, key, _ = await join(admin_http, unique("edge"))
    async with httpx.AsyncClient(base_url=coordinator.api) as http:
        url = f"/nodes/{node_id}/events"
        stranger = node_token(SigningKey.generate(), node_id)
        refused = await http.post(url, json=[], headers={"Authorization": f"Bearer {stranger}"})
        assert refused.status_code == 401
        mine = {"Authorization": f"Bearer {node_token(key, node_id)}"}
        broken = await http.post(
            url, content=b"\x01\x00junk", headers={**mine, "Content-Type": FRAME_TYPE}
        )
        assert broken.status_code == 400
        assert "cannot be decoded" in broken.json()["errors"][0]["message"]
        not_list = await http.post(url, json={"type": "push"}, headers=mine)
        assert not_list.status_code == 400
        empty = await http.post(url, json=[], headers=mine)
        assert empty.status_code == 200
        assert empty.json() == {"accepted": 0}


async def test_node_events_are_stored_once(
    coordinator: Coordinator, admin_http: httpx.AsyncClient, unique: Callable[[str], str]
) -> None:
    node_id, key, _ = await join(admin_http, unique("edge"))
    project = unique("proj")
    assert (await admin_http.post("/projects", json={"project_name": project})).status_code == 201
    event = {
        "type": "push",
        "repository": f"{project}/app",
        "reference": "v1",
        "tag": "v1",
        "digest": "sha256:" + "a" * 64,
        "media_type": "application/vnd.oci.image.manifest.v1+json",
        "size": 100,
        "username": "robot$ci",
        "time": time.time(),
        "count": 1,
    }
    batch = [{**event, "seq": 1}, {**event, "seq": 2, "type": "pull", "count": 3}]
    async with httpx.AsyncClient(base_url=coordinator.api) as http:
        for _ in range(2):  # delivered twice: at least once
            sent = await http.post(
                f"/nodes/{node_id}/events",
                content=codec.encode(batch, compress=True),
                headers={
                    "Authorization": f"Bearer {node_token(key, node_id)}",
                    "Content-Type": FRAME_TYPE,
                },
            )
            assert sent.status_code == 200, sent.text
    db = Database(coordinator.config.db_url)
    try:
        rows = await db.run(
            lambda conn: conn.execute(
                select(audit_log.c.operation, audit_log.c.username).where(
                    audit_log.c.resource.like(f"{project}/app%")
                )
            ).all()
        )
    finally:
        db.close()
    assert sorted(tuple(r) for r in rows) == [("create", "robot$ci"), ("pull", "robot$ci")]


def test_policy_version_moves_only_when_the_content_changes(
    tmp_path: Path, database_url: str | None, unique: Callable[[str], str]
) -> None:
    db = Database(database_url or f"sqlite:///{tmp_path / 'p.db'}")
    try:
        upgrade(db)
        sources = PolicySources(issuer="http://coordinator")

        def version(conn: Connection) -> int:
            return sync_version(conn, content_digest(build_policy(conn, sources)))

        first = db.run_sync(version)
        assert db.run_sync(version) == first, "same content, same version"
        project = unique("p")
        db.run_sync(
            lambda conn: conn.execute(
                insert(projects).values(name=project, creation_time=now(), update_time=now())
            )
        )
        second = db.run_sync(version)
        assert second == first + 1
        # another replica that saw the same change agrees on the version
        assert db.run_sync(version) == second
        policy = db.run_sync(lambda conn: build_policy(conn, sources))
        assert project in policy.projects and not policy.projects[project].public
        mine = for_node(policy, second, "edge-9", 5.0)
        assert mine.service == ServiceInfo("http://coordinator", "edge-9")
        assert content_digest(mine) == content_digest(policy), "audience is not content"
    finally:
        db.close()
