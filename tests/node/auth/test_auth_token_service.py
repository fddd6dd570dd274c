"""The node's /service/token: anonymous, robots from the snapshot, users via the coordinator."""

from __future__ import annotations

import base64
import time

import httpx
import trio
from auth_fixtures import NOW, SECRET, World, make_world

from portmesh.tokens import Access, verify


def basic(user: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


async def token_for(
    world: World, params: list[tuple[str, str]], headers: dict[str, str]
) -> httpx.Response:
    async with world.client() as client:
        return await client.get("/service/token", params=params, headers=headers)


async def test_anonymous_gets_pull_on_public_projects_only() -> None:
    world = await make_world()
    params = [
        ("service", "edge-1"),
        ("scope", "repository:pub/app:pull,push"),
        ("scope", "repository:team/app:pull"),
    ]
    response = await token_for(world, params, {})
    assert response.status_code == 200
    doc = response.json()
    assert doc["token"] == doc["access_token"]
    assert doc["expires_in"] == 300
    assert doc["issued_at"].endswith("Z") and doc["issued_at"].startswith("2023-11-14T22:13:20")
    claims = verify(doc["token"], world.holder.current.keyset, audience="edge-1", now=NOW)
    assert claims.sub == "" and claims.iss == "portmesh-node:node-1"
    assert claims.access == (Access("repository", "pub/app", ("pull",)),)


async def test_robot_gets_its_permissions_and_the_token_works() -> None:
    world = await make_world()
    params = [
        ("service", "edge-1"),
        ("scope", "repository:team/app:pull,push"),
        ("scope", "repository:pub/x:push"),
    ]
    response = await token_for(world, params, basic("robot$team+ci", SECRET))
    assert response.status_code == 200, response.text
    token = response.json()["token"]
    claims = verify(token, world.holder.current.keyset, audience="edge-1", now=NOW)
    assert claims.sub == "robot$team+ci"
    assert claims.access == (Access("repository", "team/app", ("pull", "push")),)
    async with world.client() as client:
        put = await client.put(
            "/v2/team/app/manifests/v1", headers={"Authorization": f"Bearer {token}"}
        )
    assert put.status_code == 200


async def test_login_without_scope_just_checks_credentials() -> None:
    world = await make_world()
    ok = await token_for(world, [("service", "edge-1")], basic("robot$team+ci", SECRET))
    assert ok.status_code == 200
    bad = await token_for(world, [("service", "edge-1")], basic("robot$team+ci", "wrong"))
    assert bad.status_code == 401
    assert bad.json()["errors"][0]["code"] == "UNAUTHORIZED"


async def test_refused_robots_say_why() -> None:
    world = await make_world()
    cases = {
        "robot$off": "disabled",
        "robot$old": "expired",
        "robot$gone": "revoked",
        "robot$nobody": "unknown robot",
    }
    for name, why in cases.items():
        response = await token_for(
            world, [("scope", "repository:team/a:pull")], basic(name, SECRET)
        )
        assert response.status_code == 401, name
        assert why in response.json()["errors"][0]["message"], name


async def test_successful_robot_checks_are_cached() -> None:
    world = await make_world()
    creds = basic("robot$team+ci", SECRET)
    started = time.perf_counter()
    assert (await token_for(world, [], creds)).status_code == 200
    first = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(5):
        assert (await token_for(world, [], creds)).status_code == 200
    again = (time.perf_counter() - started) / 5
    assert again < first / 3, (first, again)


async def test_bad_requests() -> None:
    world = await make_world()
    wrong_service = await token_for(world, [("service", "edge-2")], {})
    assert wrong_service.status_code == 400
    assert "edge-1" in wrong_service.json()["errors"][0]["message"]
    bad_scope = await token_for(world, [("scope", "repository-no-colons")], {})
    assert bad_scope.status_code == 400
    bearer = await token_for(world, [], {"Authorization": "Bearer abc"})
    assert bearer.status_code == 401
    garbage = await token_for(world, [], {"Authorization": "Basic !!!"})
    assert garbage.status_code == 401 and "malformed" in garbage.text
    async with world.client() as client:
        post = await client.post("/service/token", data={"grant_type": "password"})
    assert post.status_code == 404


async def test_users_without_a_coordinator_are_told_so() -> None:
    world = await make_world()
    response = await token_for(world, [], basic("alice", "pw"))
    assert response.status_code == 401
    assert "no coordinator" in response.json()["errors"][0]["message"]


async def test_users_are_forwarded_to_the_coordinator() -> None:
    def coordinator(request: httpx.Request) -> httpx.Response:
        if request.headers.get("authorization") != basic("alice", "pw")["Authorization"]:
            return httpx.Response(401, json={"errors": [{"code": "UNAUTHORIZED"}]})
        return httpx.Response(200, json={"token": "from-coordinator", "expires_in": 1800})

    world = await make_world(coordinator)
    params = [("service", "edge-1"), ("scope", "repository:team/app:pull")]
    ok = await token_for(world, params, basic("alice", "pw"))
    assert ok.status_code == 200 and ok.json()["token"] == "from-coordinator"
    sent = world.forwarded[0]
    assert sent.url.path == "/service/token"
    assert sent.url.params.get_list("scope") == ["repository:team/app:pull"]
    refused = await token_for(world, params, basic("alice", "nope"))
    assert refused.status_code == 401
    # robots the snapshot knows never reach the coordinator
    await token_for(world, params, basic("robot$team+ci", SECRET))
    # robots it does not know yet do
    await token_for(world, params, basic("robot$new", "x"))
    assert [r.headers["authorization"] for r in world.forwarded][2:] == [
        basic("robot$new", "x")["Authorization"]
    ]


async def test_unreachable_coordinator_is_a_clear_401() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    world = await make_world(down)
    response = await token_for(world, [], basic("alice", "pw"))
    assert response.status_code == 401
    message = response.json()["errors"][0]["message"]
    assert "coordinator is unreachable" in message and "robot accounts" in message
    # robots keep working offline
    assert (await token_for(world, [], basic("robot$team+ci", SECRET))).status_code == 200
    await trio.lowlevel.checkpoint()
