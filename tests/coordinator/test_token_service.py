"""The coordinator's Docker token service (``/service/token``) against a running coordinator:
what each kind of caller is granted, refusals, the token's shape, and that it verifies
with the published JWKS (``portmesh.tokens.verify``). Each test runs on SQLite and on
PostgreSQL."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from coordinator_fixtures import Coordinator
from robot_world import PASSWORD, add_member, new_project, new_robot, new_user
from sqlalchemy import update

from coordinator.db.engine import Database
from coordinator.db.schema import robots
from portmesh.tokens import Claims, KeySet, TokenError, verify

SERVICE = "edge-node-1"


@dataclass(frozen=True)
class World:
    private: str
    public: str
    developer: str
    guest: str
    outsider: str


@pytest.fixture
async def world(admin_http: httpx.AsyncClient, unique: Callable[[str], str]) -> World:
    w = World(unique("priv"), unique("pub"), unique("dev"), unique("guest"), unique("out"))
    await new_project(admin_http, w.private)
    await new_project(admin_http, w.public, public=True)
    for user in (w.developer, w.guest, w.outsider):
        await new_user(admin_http, user)
    await add_member(admin_http, w.private, w.developer, 2)
    await add_member(admin_http, w.private, w.guest, 3)
    return w


async def _token(
    coordinator: Coordinator,
    scopes: list[str],
    auth: tuple[str, str] | None = None,
    service: str = SERVICE,
) -> httpx.Response:
    params = httpx.QueryParams({"service": service, "scope": list(scopes)})
    async with httpx.AsyncClient(base_url=coordinator.url, auth=auth) as client:
        return await client.get("/service/token", params=params)


async def _claims(coordinator: Coordinator, response: httpx.Response) -> Claims:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token"] == body["access_token"]
    assert body["expires_in"] == coordinator.config.token_ttl
    assert body["issued_at"].endswith("Z")
    async with httpx.AsyncClient(base_url=coordinator.url) as client:
        jwks = (await client.get("/service/jwks")).json()
    return verify(
        body["token"],
        KeySet.from_jwks(jwks),
        audience=SERVICE,
        now=time.time(),
        issuers=[coordinator.config.url],
    )


def _granted(claims: Claims) -> dict[str, list[str]]:
    return {f"{a.type}:{a.name}": list(a.actions) for a in claims.access}


async def test_users_get_their_roles_actions(coordinator: Coordinator, world: World) -> None:
    wanted = [f"repository:{world.private}/app:pull,push,delete"]
    dev = await _claims(coordinator, await _token(coordinator, wanted, (world.developer, PASSWORD)))
    assert _granted(dev) == {f"repository:{world.private}/app": ["pull", "push"]}
    assert dev.sub == world.developer and dev.aud == SERVICE
    assert dev.iss == coordinator.config.url
    assert dev.exp - dev.iat == coordinator.config.token_ttl and dev.jti

    guest = await _claims(coordinator, await _token(coordinator, wanted, (world.guest, PASSWORD)))
    assert _granted(guest) == {f"repository:{world.private}/app": ["pull"]}

    outsider = await _claims(
        coordinator,
        await _token(
            coordinator,
            [*wanted, f"repository:{world.public}/lib:pull,push"],
            (world.outsider, PASSWORD),
        ),
    )
    assert _granted(outsider) == {f"repository:{world.public}/lib": ["pull"]}


async def test_anonymous_pulls_public_only(coordinator: Coordinator, world: World) -> None:
    scopes = [
        f"repository:{world.public}/lib:pull,push",
        f"repository:{world.private}/app:pull",
        "repository:no-such-project/x:pull",
        "registry:catalog:*",
    ]
    claims = await _claims(coordinator, await _token(coordinator, scopes))
    assert claims.sub == ""
    assert _granted(claims) == {f"repository:{world.public}/lib": ["pull"]}


async def test_sysadmin_gets_everything_on_existing_projects_and_the_catalog(
    coordinator: Coordinator, world: World
) -> None:
    scopes = [
        f"repository:{world.private}/app:pull,push,delete",
        "repository:no-such-project/x:pull",
        "registry:catalog:*",
    ]
    auth = ("admin", coordinator.admin_password)
    claims = await _claims(coordinator, await _token(coordinator, scopes, auth))
    assert _granted(claims) == {
        f"repository:{world.private}/app": ["delete", "pull", "push"],
        "registry:catalog": ["*"],
    }


async def test_robot_gets_exactly_its_permissions(
    coordinator: Coordinator, admin_http: httpx.AsyncClient, world: World
) -> None:
    robot = await new_robot(
        admin_http, "pusher", level="project", namespace=world.private,
        access=[("repository", "pull"), ("repository", "push")],
    )  # fmt: skip
    scopes = [
        f"repository:{world.private}/app:pull,push,delete",
        f"repository:{world.private}/other/deep:pull",
        "registry:catalog:*",
    ]
    auth = (robot["name"], robot["secret"])
    claims = await _claims(coordinator, await _token(coordinator, scopes, auth))
    assert claims.sub == robot["name"]
    assert _granted(claims) == {
        f"repository:{world.private}/app": ["pull", "push"],
        f"repository:{world.private}/other/deep": ["pull"],
    }

    # a system robot over every project: only existing projects
    everywhere = await new_robot(
        admin_http, robot["name"].rsplit("+", 1)[1] + "-all", level="system", namespace="*",
        access=[("repository", "pull")],
    )  # fmt: skip
    claims = await _claims(
        coordinator,
        await _token(
            coordinator,
            [f"repository:{world.private}/app:pull,push", "repository:nowhere/x:pull"],
            (everywhere["name"], everywhere["secret"]),
        ),
    )
    assert _granted(claims) == {f"repository:{world.private}/app": ["pull"]}


async def _expire(coordinator: Coordinator, robot_id: int) -> None:
    db = Database(coordinator.config.db_url)
    try:
        stmt = update(robots).where(robots.c.id == robot_id).values(expires_at=int(time.time()) - 1)
        await db.run(lambda conn: conn.execute(stmt))
    finally:
        db.close()


async def test_refusals(
    coordinator: Coordinator, admin_http: httpx.AsyncClient, world: World
) -> None:
    scope = [f"repository:{world.private}/app:pull"]
    wrong = await _token(coordinator, scope, (world.developer, "Wr0ngPassword1"))
    assert wrong.status_code == 401
    assert wrong.json()["errors"][0]["code"] == "UNAUTHORIZED"
    unknown = await _token(coordinator, scope, ("nobody-at-all", PASSWORD))
    assert unknown.status_code == 401

    off = await new_robot(
        admin_http, "off", level="project", namespace=world.private,
        access=[("repository", "pull")],
    )  # fmt: skip
    await admin_http.put(f"/robots/{off['id']}", json={"disable": True})
    refused = await _token(coordinator, scope, (off["name"], off["secret"]))
    assert refused.status_code == 401 and "disabled" in refused.text

    old = await new_robot(
        admin_http, "old", level="project", namespace=world.private,
        access=[("repository", "pull")],
    )  # fmt: skip
    assert (await _token(coordinator, scope, (old["name"], old["secret"]))).status_code == 200
    await _expire(coordinator, old["id"])
    expired = await _token(coordinator, scope, (old["name"], old["secret"]))
    assert expired.status_code == 401 and "expired" in expired.text

    deleted = await new_robot(
        admin_http, "gone", level="project", namespace=world.private,
        access=[("repository", "pull")],
    )  # fmt: skip
    await admin_http.delete(f"/robots/{deleted['id']}")
    gone = await _token(coordinator, scope, (deleted["name"], deleted["secret"]))
    assert gone.status_code == 401

    # bad requests: no service, malformed scope
    assert (await _token(coordinator, scope, service="")).status_code == 400
    bad = await _token(coordinator, ["repository:only-two"])
    assert bad.status_code == 400 and bad.json()["errors"][0]["code"] == "BAD_REQUEST"


async def test_oauth2_post_form(coordinator: Coordinator, world: World) -> None:
    form = {
        "grant_type": "password",
        "username": world.developer,
        "password": PASSWORD,
        "service": SERVICE,
        "scope": f"repository:{world.private}/app:pull,push,delete "
        f"repository:{world.public}/x:pull",
        "client_id": "docker",
    }
    async with httpx.AsyncClient(base_url=coordinator.url) as client:
        response = await client.post("/service/token", data=form)
        assert response.status_code == 200, response.text
        assert response.json()["scope"] == (
            f"repository:{world.private}/app:pull,push repository:{world.public}/x:pull"
        )
        claims = await _claims(coordinator, response)
        assert claims.sub == world.developer
        bad = await client.post("/service/token", data={**form, "password": "Wr0ngPassw0rd"})
        assert bad.status_code == 401
        refresh = await client.post("/service/token", data={**form, "grant_type": "refresh_token"})
        assert refresh.status_code == 400


def _header(token: str) -> dict[str, Any]:
    head = token.split(".")[0]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    return decoded


async def test_token_header_names_a_published_key(coordinator: Coordinator) -> None:
    response = await _token(coordinator, [])
    header = _header(response.json()["token"])
    assert header["alg"] == "EdDSA" and header["typ"] == "JWT"
    async with httpx.AsyncClient(base_url=coordinator.url) as client:
        jwks = (await client.get("/service/jwks")).json()
        well_known = (await client.get("/.well-known/jwks.json")).json()
    assert jwks == well_known
    # the active key and the next one (published ahead of the next rotation)
    assert len(jwks["keys"]) == 2 and header["kid"] in [k["kid"] for k in jwks["keys"]]
    for key in jwks["keys"]:
        assert key["kty"] == "OKP" and key["crv"] == "Ed25519"
        assert "d" not in key  # no private part
    # the token is for the requested audience only
    claims = await _claims(coordinator, response)
    assert claims.access == ()
    with pytest.raises(TokenError, match="wrong audience"):
        verify(
            response.json()["token"],
            KeySet.from_jwks(jwks),
            audience="another-node",
            now=time.time(),
        )
