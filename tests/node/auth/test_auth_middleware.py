"""Token enforcement in front of the registry routes (ASGI, no server)."""

from __future__ import annotations

import re

import httpx
from auth_fixtures import NOW, World, make_policy, make_world

from portmesh.tokens import Access, SigningKey, new_claims, sign

PULL_TEAM = Access("repository", "team/app", ("pull",))
CHALLENGE = re.compile(r'^Bearer realm="([^"]+)",service="([^"]+)"(?:,scope="([^"]+)")?')


async def get(
    world: World, path: str, token: str | None = None, method: str = "GET"
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with world.client() as client:
        return await client.request(method, path, headers=headers)


async def test_no_token_gets_the_challenge_and_spec_body() -> None:
    world = await make_world()
    async with world.client() as client:
        response = await client.get("/v2/team/app/manifests/v1")
    assert response.status_code == 401
    match = CHALLENGE.match(response.headers["www-authenticate"])
    assert match is not None, response.headers["www-authenticate"]
    assert match.groups() == (
        "http://node.test/service/token",
        "edge-1",
        "repository:team/app:pull",
    )
    error = response.json()["errors"][0]
    assert error["code"] == "UNAUTHORIZED"
    assert error["detail"] == [{"Type": "repository", "Name": "team/app", "Action": "pull"}]
    assert response.headers["docker-distribution-api-version"] == "registry/2.0"


async def test_base_route_challenges_without_scope_and_accepts_any_valid_token() -> None:
    world = await make_world()
    async with world.client() as client:
        response = await client.get("/v2/")
        assert response.status_code == 401
        assert "scope=" not in response.headers["www-authenticate"]
        token = world.coordinator_token()
        ok = await client.get("/v2/", headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200 and ok.json() == {"reached": "/v2/"}


async def test_external_url_sets_the_realm() -> None:
    world = await make_world()
    world.app.external_url = "https://edge.example.com"
    async with world.client() as client:
        response = await client.head("/v2/team/app/blobs/sha256:ab")
    assert response.status_code == 401
    assert response.content == b""
    assert 'realm="https://edge.example.com/service/token"' in response.headers["www-authenticate"]


async def test_token_with_the_scope_passes_and_without_it_is_denied() -> None:
    world = await make_world()
    token = world.coordinator_token(PULL_TEAM)
    async with world.client() as client:
        auth = {"Authorization": f"Bearer {token}"}
        ok = await client.get("/v2/team/app/manifests/v1", headers=auth)
        assert ok.status_code == 200 and ok.json() == {"reached": "/v2/team/app/manifests/v1"}
        denied = await client.put("/v2/team/app/manifests/v1", headers=auth, content=b"{}")
        other = await client.get("/v2/team/other/manifests/v1", headers=auth)
        catalog = await client.get("/v2/_catalog", headers=auth)
    assert denied.status_code == 403
    error = denied.json()["errors"][0]
    assert error["code"] == "DENIED"
    assert error["detail"] == [{"Type": "repository", "Name": "team/app", "Action": "push"}]
    assert other.status_code == 403 and catalog.status_code == 403


async def test_mount_needs_pull_on_the_source() -> None:
    world = await make_world()
    push_only = world.coordinator_token(Access("repository", "team/app", ("pull", "push")))
    both = world.coordinator_token(
        Access("repository", "team/app", ("pull", "push")),
        Access("repository", "team/base", ("pull",)),
    )
    path = "/v2/team/app/blobs/uploads/?mount=sha256:ab&from=team/base"
    async with world.client() as client:
        refused = await client.post(path, headers={"Authorization": f"Bearer {push_only}"})
        allowed = await client.post(path, headers={"Authorization": f"Bearer {both}"})
    assert refused.status_code == 403
    assert refused.json()["errors"][0]["detail"][0]["Name"] == "team/base"
    assert allowed.status_code == 200


async def test_invalid_tokens_get_401_with_the_reason() -> None:
    world = await make_world()
    stranger = SigningKey.generate("coord-1")  # same kid, other key
    cases = {
        "wrong audience": world.coordinator_token(PULL_TEAM, aud="edge-2"),
        "expired": world.coordinator_token(PULL_TEAM, now=NOW - 3600),
        "bad signature": world.coordinator_token(PULL_TEAM, key=stranger),
        "unknown kid": world.coordinator_token(PULL_TEAM, key=SigningKey.generate("k9")),
        "malformed": "not-a-jwt",
    }
    async with world.client() as client:
        for reason, token in cases.items():
            response = await client.get(
                "/v2/team/app/manifests/v1", headers={"Authorization": f"Bearer {token}"}
            )
            assert response.status_code == 401, reason
            assert 'error="invalid_token"' in response.headers["www-authenticate"]
            assert reason in response.json()["errors"][0]["message"]


async def test_wrong_issuer_is_refused() -> None:
    world = await make_world()
    made = new_claims(
        issuer="evil", subject="x", audience="edge-1", access=[PULL_TEAM], ttl=300, now=NOW
    )
    response = await get(world, "/v2/team/app/manifests/v1", sign(made, world.coordinator))
    assert response.status_code == 401
    assert "wrong issuer" in response.text


async def test_revoked_jti_and_revoked_or_disabled_robots() -> None:
    world = await make_world()
    for subject, jti in (("alice", "revoked-jti"), ("robot$gone", "j1"), ("robot$off", "j2")):
        made = new_claims(
            issuer="coordinator",
            subject=subject,
            audience="edge-1",
            access=[PULL_TEAM],
            ttl=300,
            now=NOW,
        )
        made = type(made)(**{**made.to_json(), "access": made.access, "jti": jti})
        response = await get(world, "/v2/team/app/manifests/v1", sign(made, world.coordinator))
        assert response.status_code == 401, subject
        assert "revoked" in response.text


async def test_a_new_policy_swaps_the_keys() -> None:
    world = await make_world()
    token = world.coordinator_token(PULL_TEAM)
    assert (await get(world, "/v2/team/app/manifests/v1", token)).status_code == 200
    rotated = SigningKey.generate("coord-2")
    assert await world.holder.replace(make_policy(rotated, version=2))
    # the old coordinator key is gone from the new snapshot: its tokens stop verifying
    assert (await get(world, "/v2/team/app/manifests/v1", token)).status_code == 401
    new = world.coordinator_token(PULL_TEAM, key=rotated)
    assert (await get(world, "/v2/team/app/manifests/v1", new)).status_code == 200


async def test_paths_outside_v2_pass_and_keys_are_published() -> None:
    world = await make_world()
    async with world.client() as client:
        health = await client.get("/healthz")
        keys = await client.get("/service/keys")
    assert health.status_code == 200 and health.json() == {"reached": "/healthz"}
    assert keys.json() == {
        "keys": [
            {
                k: v
                for k, v in world.node_key.public_jwk().items()
                if k in ("kty", "crv", "x", "kid")
            }
        ]
    }
