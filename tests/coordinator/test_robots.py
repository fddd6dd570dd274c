"""Robot accounts through Harbor's clients (harborapi, harbor-api-client) and raw HTTP:
lifecycle, who may manage which robots, validation, robots logging in to the API, the
audit trail, and what the nodes' snapshot learns (``policy_robots``, ``policy_revoked``).
Each test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any

import harbor_client  # type: ignore[import-untyped]
import httpx
import pytest
import trio
from coordinator_fixtures import Coordinator
from harborapi import HarborAsyncClient
from harborapi.exceptions import BadRequest, NotFound
from harborapi.models import Access, RobotCreate, RobotPermission
from robot_world import PASSWORD, add_member, new_project, new_robot, new_user
from sqlalchemy import update

from coordinator.app import policy_sources
from coordinator.db.engine import Database
from coordinator.db.schema import robots
from coordinator.policy_build import build_policy
from coordinator.robots import policy_revoked, policy_robots
from portmesh.access import Permission
from portmesh.passwords import verify_secret
from portmesh.policy import Policy


@pytest.fixture
async def admin(coordinator: Coordinator) -> AsyncIterator[HarborAsyncClient]:
    client = HarborAsyncClient(
        url=coordinator.api, username="admin", secret=coordinator.admin_password, retry=None
    )
    yield client
    await client.client.aclose()


def _perm(namespace: str, *access: tuple[str, str]) -> RobotPermission:
    return RobotPermission(
        kind="project",
        namespace=namespace,
        access=[Access(resource=r, action=a) for r, a in access],
    )


async def _db_rows(coordinator: Coordinator, fn: Callable[..., object]) -> object:
    db = Database(coordinator.config.db_url)
    try:
        return await db.run(fn)
    finally:
        db.close()


async def test_harborapi_lifecycle_of_system_and_project_robots(
    coordinator: Coordinator,
    admin: HarborAsyncClient,
    admin_http: httpx.AsyncClient,
    unique: Callable[[str], str],
) -> None:
    project = unique("proj")
    await new_project(admin_http, project)

    system = await admin.create_robot(
        RobotCreate(
            name=unique("ci"),
            level="system",
            duration=-1,
            permissions=[_perm("*", ("repository", "pull"))],
        )
    )
    assert system.name and system.name.startswith("robot$") and "+" not in system.name
    assert system.secret and len(system.secret) == 32 and system.expires_at == -1

    short = unique("build")
    scoped = await admin.create_robot(
        RobotCreate(
            name=short,
            level="project",
            duration=7,
            description="builds",
            permissions=[_perm(project, ("repository", "pull"), ("repository", "push"))],
        )
    )
    assert scoped.name == f"robot${project}+{short}"
    assert scoped.id is not None and scoped.expires_at is not None
    assert abs(scoped.expires_at - (time.time() + 7 * 86400)) < 120

    fetched = await admin.get_robot(scoped.id)
    assert (fetched.name, fetched.level, fetched.duration) == (scoped.name, "project", 7)
    assert fetched.secret in (None, "")  # never shown again
    assert fetched.permissions and fetched.permissions[0].namespace == project
    assert {(a.resource, a.action) for a in fetched.permissions[0].access or []} == {
        ("repository", "pull"),
        ("repository", "push"),
    }

    listed = await admin.get_robots(query=f"name=~{short}")
    assert [r.name for r in listed] == [scoped.name]
    by_level = await admin.get_robots(query="level=system", page_size=100)
    assert system.name in {r.name for r in by_level}
    assert scoped.name not in {r.name for r in by_level}
    in_project = await admin.get_robots_v1(project)
    assert [r.name for r in in_project] == [scoped.name]

    # update: description, disable, duration, permissions; the name stays
    fetched.description = "release builds"
    fetched.disable = True
    fetched.duration = 30
    fetched.permissions = [_perm(project, ("repository", "pull"))]
    await admin.update_robot(scoped.id, fetched)
    updated = await admin.get_robot(scoped.id)
    assert (updated.description, updated.disable, updated.duration) == ("release builds", True, 30)
    assert (
        updated.expires_at is not None
        and abs(updated.expires_at - (time.time() + 30 * 86400)) < 120
    )
    assert [a.action for a in (updated.permissions or [])[0].access or []] == ["pull"]
    updated.name = "robot$other"
    with pytest.raises(BadRequest):
        await admin.update_robot(scoped.id, updated)

    # refresh: a given secret, then a generated one; only the hash is stored
    refreshed = await admin.refresh_robot_secret(scoped.id, "N3wSecretValue")
    assert refreshed.secret == "N3wSecretValue"
    with pytest.raises(BadRequest):
        await admin.refresh_robot_secret(scoped.id, "weak")
    generated = await admin_http.patch(f"/robots/{scoped.id}", json={})
    assert generated.status_code == 200 and len(generated.json()["secret"]) == 32
    stored = await _db_rows(coordinator, lambda conn: conn.execute(robots.select()).all())
    row = next(r for r in stored if r.name == scoped.name)  # type: ignore[attr-defined]
    assert generated.json()["secret"] not in str(tuple(row))
    assert await trio.to_thread.run_sync(verify_secret, row.secret_hash, generated.json()["secret"])

    await admin.delete_robot(scoped.id)
    with pytest.raises(NotFound):
        await admin.get_robot(scoped.id)
    await admin.delete_robot(system.id)  # type: ignore[arg-type]

    # every change went through the audit hook
    logs = await admin_http.get("/audit-logs", params={"q": "resource_type=robot", "page_size": 50})
    mine = [e for e in logs.json() if e["resource"] == scoped.name]
    assert sorted(e["operation"] for e in mine) == ["create", "delete"] + ["update"] * 5


async def test_harbor_api_client_lifecycle(
    coordinator: Coordinator, unique: Callable[[str], str]
) -> None:
    config = harbor_client.Configuration()
    config.host = coordinator.api
    config.username, config.password = "admin", coordinator.admin_password
    client = harbor_client.ApiClient(config)
    api = harbor_client.RobotApi(client)
    run = trio.to_thread.run_sync
    try:
        name = unique("sync")
        body = harbor_client.RobotCreate(
            name=name,
            level="system",
            duration=-1,
            permissions=[
                harbor_client.RobotPermission(
                    kind="project",
                    namespace="*",
                    access=[harbor_client.Access(resource="repository", action="pull")],
                )
            ],
        )
        created = await run(partial(api.create_robot, body))
        assert created.name == f"robot${name}" and created.secret
        listed = await run(partial(api.list_robot, q=f"name=robot${name}"))
        assert [r.id for r in listed] == [created.id]
        robot = await run(partial(api.get_robot_by_id, created.id))
        robot.disable = True
        await run(partial(api.update_robot, created.id, robot))
        assert (await run(partial(api.get_robot_by_id, created.id))).disable is True
        sec = await run(partial(api.refresh_sec, created.id, harbor_client.RobotSec()))
        assert sec.secret and sec.secret != created.secret
        await run(partial(api.delete_robot, created.id))
        assert await run(partial(api.list_robot, q=f"name=robot${name}")) == []
    finally:
        client.rest_client.pool_manager.clear()


def _body(name: str, level: str, namespace: str) -> dict[str, Any]:
    access = [{"resource": "repository", "action": "pull"}]
    permissions = [{"kind": "project", "namespace": namespace, "access": access}]
    return {"name": name, "level": level, "permissions": permissions}


async def test_who_manages_which_robots(
    coordinator: Coordinator, admin_http: httpx.AsyncClient, unique: Callable[[str], str]
) -> None:
    project, other = unique("team"), unique("other")
    await new_project(admin_http, project)
    await new_project(admin_http, other)
    boss, dev = unique("boss"), unique("dev")
    for user in (boss, dev):
        await new_user(admin_http, user)
    await add_member(admin_http, project, boss, 1)  # projectAdmin
    await add_member(admin_http, project, dev, 2)  # developer
    async with (
        httpx.AsyncClient(base_url=coordinator.api, auth=(boss, PASSWORD)) as boss_http,
        httpx.AsyncClient(base_url=coordinator.api, auth=(dev, PASSWORD)) as dev_http,
        httpx.AsyncClient(base_url=coordinator.api) as anon,
    ):
        mine = await new_robot(
            boss_http, "deploy", level="project", namespace=project, access=[("repository", "pull")]
        )
        # a developer may look, not create, change or delete
        assert (await dev_http.get(f"/robots/{mine['id']}")).status_code == 200
        assert [r["name"] for r in (await dev_http.get("/robots")).json()] == [mine["name"]]
        body = _body("x", "project", project)
        assert (await dev_http.post("/robots", json=body)).status_code == 403
        assert (await dev_http.delete(f"/robots/{mine['id']}")).status_code == 403
        assert (await dev_http.patch(f"/robots/{mine['id']}", json={})).status_code == 403
        # the project admin: not in another project, not at system level
        assert (
            await boss_http.post("/robots", json=_body("x", "project", other))
        ).status_code == 404
        system = _body("x", "system", "*")
        assert (await boss_http.post("/robots", json=system)).status_code == 403
        assert (await anon.get("/robots")).status_code == 401
        assert (await anon.post("/robots", json=body)).status_code == 401
        # and may delete its own project's robot
        assert (await boss_http.delete(f"/robots/{mine['id']}")).status_code == 200


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": "Bad Name"}, "name"),
        ({"level": "global"}, "level"),
        ({"duration": 0.5}, "duration"),
        ({"duration": -2}, "duration"),
        ({"secret": "short"}, "secret"),
        ({"permissions": []}, "permissions"),
        (
            {
                "permissions": [
                    {
                        "kind": "project",
                        "namespace": "nope-missing",
                        "access": [{"resource": "repository", "action": "pull"}],
                    }
                ]
            },
            "not found",
        ),
        (
            {
                "permissions": [
                    {
                        "kind": "project",
                        "namespace": "*",
                        "access": [{"resource": "repository", "action": "fly"}],
                    }
                ]
            },
            "action",
        ),
        ({"permissions": [{"kind": "project", "namespace": "*", "access": []}]}, "access"),
    ],
)
async def test_invalid_robots_are_refused_and_nothing_is_written(
    admin_http: httpx.AsyncClient, change: dict[str, object], message: str
) -> None:
    body = {
        "name": "valid",
        "level": "system",
        "permissions": [
            {
                "kind": "project",
                "namespace": "*",
                "access": [{"resource": "repository", "action": "pull"}],
            }
        ],
        **change,
    }
    before = (await admin_http.get("/robots")).headers["X-Total-Count"]
    response = await admin_http.post("/robots", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["code"] == "BAD_REQUEST"
    assert message in response.json()["errors"][0]["message"]
    assert (await admin_http.get("/robots")).headers["X-Total-Count"] == before


async def test_duplicate_name_conflicts(
    admin_http: httpx.AsyncClient, unique: Callable[[str], str]
) -> None:
    name = unique("dup")
    await new_robot(
        admin_http, name, level="system", namespace="*", access=[("repository", "pull")]
    )
    body = {
        "name": name,
        "level": "system",
        "permissions": [
            {
                "kind": "project",
                "namespace": "*",
                "access": [{"resource": "repository", "action": "pull"}],
            }
        ],
    }
    response = await admin_http.post("/robots", json=body)
    assert response.status_code == 409


async def test_robot_logs_in_to_the_api_with_its_permissions(
    coordinator: Coordinator, admin_http: httpx.AsyncClient, unique: Callable[[str], str]
) -> None:
    project, hidden = unique("priv"), unique("hidden")
    await new_project(admin_http, project)
    await new_project(admin_http, hidden)
    robot = await new_robot(
        admin_http, "lister", level="project", namespace=project, access=[("repository", "list")]
    )
    async with httpx.AsyncClient(
        base_url=coordinator.api, auth=(robot["name"], robot["secret"])
    ) as as_robot:
        assert (await as_robot.get(f"/projects/{project}/repositories")).status_code == 200
        assert (await as_robot.get(f"/projects/{hidden}/repositories")).status_code == 404
        assert (await as_robot.post("/robots", json={})).status_code in (400, 403)
        # a robot is no user and creates no projects
        assert (await as_robot.get("/users/current")).status_code == 403
        created = await as_robot.post("/projects", json={"project_name": project + "x"})
        assert created.status_code == 403
    async with httpx.AsyncClient(
        base_url=coordinator.api, auth=(robot["name"], "Wr0ngSecretValue")
    ) as wrong:
        response = await wrong.get(f"/projects/{project}/repositories")
        assert response.status_code == 401
        assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"
    await admin_http.put(f"/robots/{robot['id']}", json={"disable": True})
    async with httpx.AsyncClient(
        base_url=coordinator.api, auth=(robot["name"], robot["secret"])
    ) as disabled:
        response = await disabled.get(f"/projects/{project}/repositories")
        assert response.status_code == 401
        assert "disabled" in response.json()["errors"][0]["message"]


async def test_system_robot_acts_on_system_resources_it_holds_and_grants_no_more(
    coordinator: Coordinator, admin_http: httpx.AsyncClient, unique: Callable[[str], str]
) -> None:
    project = unique("sysp")
    await new_project(admin_http, project)
    system_access = [
        ("registry", "list"),
        ("registry", "read"),
        ("audit-log", "list"),
        ("robot", "create"),
        ("robot", "list"),
    ]
    made = await admin_http.post(
        "/robots",
        json={
            "name": unique("ops"),
            "level": "system",
            "duration": -1,
            "permissions": [
                {
                    "kind": "system",
                    "namespace": "/",
                    "access": [{"resource": r, "action": a} for r, a in system_access],
                },
                {
                    "kind": "project",
                    "namespace": project,
                    "access": [{"resource": "repository", "action": "pull"}],
                },
            ],
        },
    )
    assert made.status_code == 201, made.text
    ops = made.json()
    plain = await new_robot(
        admin_http, unique("plain"), level="system", namespace="*", access=[("repository", "pull")]
    )
    registry = {"name": unique("reg"), "type": "docker-registry", "url": "http://127.0.0.1:9"}

    def system_robot(access: list[dict[str, str]]) -> dict[str, Any]:
        return {
            "name": unique("child"),
            "level": "system",
            "duration": -1,
            "permissions": [{"kind": "system", "namespace": "/", "access": access}],
        }

    async with (
        httpx.AsyncClient(base_url=coordinator.api, auth=(ops["name"], ops["secret"])) as as_ops,
        httpx.AsyncClient(base_url=coordinator.api, auth=(plain["name"], plain["secret"])) as other,
    ):
        assert (await as_ops.get("/registries")).status_code == 200
        assert (await as_ops.post("/registries", json=registry)).status_code == 403
        assert (await other.get("/registries")).status_code == 403, "project permissions only"
        assert (await as_ops.get("/users")).status_code == 403, "no user permission"
        # every project's audit entries, where a robot without audit-log list sees none
        logs = await as_ops.get("/audit-logs", params={"page_size": 100})
        assert logs.status_code == 200 and int(logs.headers["x-total-count"]) > 0
        none = await other.get("/audit-logs")
        assert none.status_code == 200 and none.json() == []
        listed = await as_ops.get("/robots", params={"page_size": 100})
        assert plain["name"] in {r["name"] for r in listed.json()}
        child = await as_ops.post(
            "/robots", json=system_robot([{"resource": "registry", "action": "list"}])
        )
        assert child.status_code == 201, child.text
        more = await as_ops.post(
            "/robots", json=system_robot([{"resource": "registry", "action": "delete"}])
        )
        assert more.status_code == 403, "a robot grants nothing it does not hold"
        assert (await other.post("/robots", json=system_robot([]))).status_code in (400, 403)
    rows = await _db_rows(coordinator, lambda conn: policy_robots(conn))
    mine = next(r for r in rows if r.name == ops["name"])  # type: ignore[attr-defined]
    assert [p.namespace for p in mine.permissions] == [project], "nodes get project ones only"


async def test_snapshot_robots_and_revocations(
    coordinator: Coordinator, admin_http: httpx.AsyncClient, unique: Callable[[str], str]
) -> None:
    project = unique("snap")
    await new_project(admin_http, project)
    live = await new_robot(
        admin_http,
        "live",
        level="project",
        namespace=project,
        access=[("repository", "pull"), ("repository", "push"), ("artifact", "delete")],
        duration=-1,
    )
    off = await new_robot(
        admin_http, unique("off"), level="system", namespace="*", access=[("repository", "pull")]
    )
    old = await new_robot(
        admin_http, unique("old"), level="system", namespace="*", access=[("repository", "pull")]
    )
    gone = await new_robot(
        admin_http, unique("gone"), level="system", namespace="*", access=[("repository", "pull")]
    )
    await admin_http.put(f"/robots/{off['id']}", json={"disable": True})
    await admin_http.delete(f"/robots/{gone['id']}")
    past = int(time.time()) - 10
    await _db_rows(
        coordinator,
        lambda conn: conn.execute(
            update(robots).where(robots.c.id == old["id"]).values(expires_at=past)
        ),
    )

    snapshot = await _db_rows(coordinator, policy_robots)
    by_name = {r.name: r for r in snapshot}  # type: ignore[attr-defined]
    robot = by_name[live["name"]]
    assert robot.expires_at is None and not robot.disabled
    assert set(robot.permissions) == {
        Permission(project, "artifact", ("delete",)),
        Permission(project, "repository", ("pull", "push")),
    }
    assert await trio.to_thread.run_sync(verify_secret, robot.secret_hash, live["secret"])
    assert by_name[off["name"]].disabled
    assert by_name[old["name"]].expired(time.time())
    assert gone["name"] not in by_name

    revoked = await _db_rows(coordinator, policy_revoked)
    mine = {live["name"], off["name"], old["name"], gone["name"]}
    assert revoked.robots & mine == {off["name"], old["name"], gone["name"]}  # type: ignore[attr-defined]

    # a robot of a deleted project goes with it
    assert (await admin_http.delete(f"/projects/{project}")).status_code == 200
    assert (await admin_http.get(f"/robots/{live['id']}")).status_code == 404


async def test_permissions_forbidden_for_unknown_robot(admin_http: httpx.AsyncClient) -> None:
    assert (await admin_http.get("/robots/999999")).status_code == 404
    assert (await admin_http.put("/robots/999999", json={})).status_code == 404
    assert (await admin_http.delete("/robots/999999")).status_code == 404


async def test_nodes_snapshot_carries_keys_and_robots(
    coordinator: Coordinator, admin_http: httpx.AsyncClient, unique: Callable[[str], str]
) -> None:
    robot = await new_robot(
        admin_http, unique("node"), level="system", namespace="*", access=[("repository", "pull")]
    )
    async with httpx.AsyncClient(base_url=coordinator.url) as anon:
        jwks = (await anon.get("/service/jwks")).json()
    sources = policy_sources(coordinator.config)
    policy = await _db_rows(coordinator, lambda conn: build_policy(conn, sources))
    assert isinstance(policy, Policy)
    assert policy.service.issuer == coordinator.config.url
    assert policy.keyset().kids == sorted(k["kid"] for k in jwks["keys"])
    assert robot["name"] in policy.robots
    await admin_http.delete(f"/robots/{robot['id']}")
    policy = await _db_rows(coordinator, lambda conn: build_policy(conn, sources))
    assert isinstance(policy, Policy)
    assert robot["name"] not in policy.robots and robot["name"] in policy.revoked.robots


async def test_listing_pages_and_filters(
    admin_http: httpx.AsyncClient, unique: Callable[[str], str]
) -> None:
    stem = unique("page")
    for n in range(3):
        await new_robot(
            admin_http,
            f"{stem}-{n}",
            level="system",
            namespace="*",
            access=[("repository", "pull")],
        )
    params = {"q": f"name=~{stem}", "page_size": "2", "sort": "-id"}
    first = await admin_http.get("/robots", params=params)
    assert first.headers["X-Total-Count"] == "3"
    assert [r["name"] for r in first.json()] == [f"robot${stem}-2", f"robot${stem}-1"]
    assert 'rel="next"' in first.headers["Link"]
    second = await admin_http.get("/robots", params={**params, "page": "2"})
    assert [r["name"] for r in second.json()] == [f"robot${stem}-0"]
    bad = await admin_http.get("/robots", params={"q": "secret_hash=x"})
    assert bad.status_code == 400
