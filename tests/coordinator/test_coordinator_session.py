"""Browser sessions over real HTTP (httpx): ``POST /c/login``, the CSRF token on unsafe
requests, ``GET /c/log_out``; plus ``X-Request-Id`` and the audit rows mutating calls
leave behind."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import trio
from coordinator_fixtures import Coordinator
from sqlalchemy import select

from coordinator.db.engine import Database
from coordinator.db.schema import audit_log

CSRF = "X-Harbor-CSRF-Token"


async def test_login_session_and_csrf(
    coordinator: Coordinator, unique: Callable[[str], str]
) -> None:
    async with httpx.AsyncClient(base_url=coordinator.url) as browser:
        bad = await browser.post("/c/login", data={"principal": "admin", "password": "nope"})
        assert bad.status_code == 401 and "sid" not in browser.cookies
        login = await browser.post(
            "/c/login", data={"principal": "admin", "password": coordinator.admin_password}
        )
        assert login.status_code == 200
        token = login.headers[CSRF]
        assert browser.cookies.get("sid")
        assert "httponly" in login.headers["set-cookie"].lower()

        me = await browser.get("/api/v2.0/users/current")
        assert me.status_code == 200 and me.json()["username"] == "admin"
        assert me.headers[CSRF] == token

        name = unique("web")
        without = await browser.post("/api/v2.0/projects", json={"project_name": name})
        assert without.status_code == 403
        assert without.json()["errors"][0]["code"] == "FORBIDDEN"
        forged = await browser.post(
            "/api/v2.0/projects", json={"project_name": name}, headers={CSRF: "forged"}
        )
        assert forged.status_code == 403
        created = await browser.post(
            "/api/v2.0/projects", json={"project_name": name}, headers={CSRF: token}
        )
        assert created.status_code == 201

        # Basic-auth requests need no CSRF token, even with a session cookie present.
        basic = await browser.delete(
            f"/api/v2.0/projects/{name}", auth=("admin", coordinator.admin_password)
        )
        assert basic.status_code == 200

        again = await browser.post(
            "/c/login", data={"principal": "admin", "password": coordinator.admin_password}
        )
        assert again.status_code == 200 and again.headers[CSRF] != token

        out = await browser.get("/c/log_out")
        assert out.status_code == 200
        after = await browser.get("/api/v2.0/users/current")
        assert after.status_code == 401


async def test_password_change_ends_sessions(
    coordinator: Coordinator, admin_http: httpx.AsyncClient, unique: Callable[[str], str]
) -> None:
    name = unique("sess")
    created = await admin_http.post(
        "/users", json={"username": name, "password": "Passw0rdPassw0rd"}
    )
    user_id = created.headers["Location"].rsplit("/", 1)[1]
    async with httpx.AsyncClient(base_url=coordinator.url) as browser:
        login = await browser.post(
            "/c/login", data={"principal": name, "password": "Passw0rdPassw0rd"}
        )
        assert login.status_code == 200
        assert (await browser.get("/api/v2.0/users/current")).status_code == 200
        changed = await admin_http.put(
            f"/users/{user_id}/password", json={"new_password": "Different1Password"}
        )
        assert changed.status_code == 200
        assert (await browser.get("/api/v2.0/users/current")).status_code == 401


async def test_request_id_and_error_shape(admin_http: httpx.AsyncClient) -> None:
    echoed = await admin_http.get("/ping", headers={"X-Request-Id": "abc-123"})
    assert echoed.headers["X-Request-Id"] == "abc-123"
    generated = await admin_http.get("/users/424242")
    assert len(generated.headers["X-Request-Id"]) == 32
    assert generated.status_code == 404
    assert generated.json() == {
        "errors": [{"code": "NOT_FOUND", "message": "user 424242 not found"}]
    }
    not_json = await admin_http.post(
        "/projects", content=b"{broken", headers={"Content-Type": "application/json"}
    )
    assert not_json.status_code == 400
    assert not_json.json()["errors"][0]["code"] == "BAD_REQUEST"
    bad_q = await admin_http.get("/users", params={"q": "nosuchkey=1"})
    assert bad_q.status_code == 400 and "nosuchkey" in bad_q.json()["errors"][0]["message"]
    too_big = await admin_http.get("/users", params={"page_size": 101})
    assert too_big.status_code == 400
    unknown = await admin_http.get("/nosuchthing")
    assert unknown.status_code == 404 and unknown.json()["errors"][0]["code"] == "NOT_FOUND"


async def test_mutations_are_audited(
    coordinator: Coordinator, admin_http: httpx.AsyncClient, unique: Callable[[str], str]
) -> None:
    name = unique("audited")
    assert (await admin_http.post("/projects", json={"project_name": name})).status_code == 201
    assert (await admin_http.post("/projects", json={"project_name": name})).status_code == 409
    assert (await admin_http.delete(f"/projects/{name}")).status_code == 200
    db = Database(coordinator.config.db_url)
    try:
        rows = await db.run(
            lambda conn: conn.execute(
                select(audit_log).where(audit_log.c.resource == name).order_by(audit_log.c.id)
            ).all()
        )
    finally:
        db.close()
    assert [(r.username, r.operation, r.resource_type, r.result) for r in rows] == [
        ("admin", "create", "project", True),
        ("admin", "create", "project", False),
        ("admin", "delete", "project", True),
    ]


async def test_permissions_of_the_current_user(
    coordinator: Coordinator, admin_http: httpx.AsyncClient, unique: Callable[[str], str]
) -> None:
    project = unique("perm")
    created = await admin_http.post("/projects", json={"project_name": project})
    project_id = created.headers["Location"].rsplit("/", 1)[1]
    guest = unique("guest")
    await admin_http.post("/users", json={"username": guest, "password": "Passw0rdPassw0rd"})
    added = await admin_http.post(
        f"/projects/{project}/members", json={"role_id": 3, "member_user": {"username": guest}}
    )
    assert added.status_code == 201

    scope = {"scope": f"/project/{project_id}", "relative": "true"}
    mine = (await admin_http.get("/users/current/permissions", params=scope)).json()
    assert {"resource": "member", "action": "create"} in mine
    absolute = await admin_http.get(
        "/users/current/permissions", params={"scope": f"/project/{project_id}"}
    )
    assert {"resource": f"/project/{project_id}/member", "action": "create"} in absolute.json()

    async with httpx.AsyncClient(
        base_url=coordinator.api, auth=(guest, "Passw0rdPassw0rd")
    ) as as_guest:
        theirs = (await as_guest.get("/users/current/permissions", params=scope)).json()
        assert {"resource": "repository", "action": "pull"} in theirs
        assert {"resource": "repository", "action": "push"} not in theirs
        assert {"resource": "member", "action": "create"} not in theirs
        system = await as_guest.get("/users/current/permissions")
        assert system.json() == []
        stats = (await as_guest.get("/statistics")).json()
        assert stats["private_project_count"] == 1 and "total_storage_consumption" not in stats


async def test_concurrent_creates_of_one_name_yield_one_project(
    admin_http: httpx.AsyncClient, unique: Callable[[str], str]
) -> None:
    name = unique("race")
    statuses: list[int] = []

    async def create() -> None:
        response = await admin_http.post("/projects", json={"project_name": name})
        statuses.append(response.status_code)

    async with trio.open_nursery() as nursery:
        for _ in range(8):
            nursery.start_soon(create)
    assert sorted(statuses) == [201] + [409] * 7
    listed = await admin_http.get("/projects", params={"q": f"name={name}"})
    assert len(listed.json()) == 1 and listed.headers["X-Total-Count"] == "1"
