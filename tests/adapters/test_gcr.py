"""The gcr adapter: ``_json_key`` Basic and the JWT-bearer access token, against Google's
login protocol served by the auth front in front of docker-registry."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from fronts import harness
from fronts.gcr import GCR, TOKEN_LIFETIME, service_account_key
from fronts.harness import Stage

from adapters import gcr
from adapters.base import Upstream
from adapters.errors import NotFound
from adapters.registry import AdapterSpec

pytestmark = pytest.mark.integration


@pytest.fixture
async def st(tmp_path: Path) -> AsyncIterator[Stage]:
    async with harness.stage(tmp_path, GCR) as st:
        assert isinstance(st.provider, GCR)
        st.provider.use_key(*service_account_key(st.front.url + "/token"))
        yield st


def gcr_client(st: Stage, key: dict[str, Any] | None = None, **options: Any) -> Upstream:
    assert isinstance(st.provider, GCR)
    return st.client("gcr", password=json.dumps(key or st.provider.key), options=options)


async def test_json_key_pull_and_registry_token_refresh(st: Stage) -> None:
    pushed = await st.push("team/app")
    await harness.assert_refreshes(st, gcr_client(st), "team/app", pushed, "/v2/token")
    assert st.front.hits["/token"] == 0 and st.provider.logins == ["_json_key"] * 2


async def test_access_token_grant_refreshes_before_the_hour(st: Stage) -> None:
    pushed = await st.push("team/app")
    client = gcr_client(st, auth="access_token")
    await harness.assert_pull(client, "team/app", pushed)
    assert st.front.hits["/token"] == 1  # one JWT grant, verified with the public key

    st.clock.advance(TOKEN_LIFETIME - 600)  # ten minutes left: still used
    await client.resolve("team/app", "v1")
    assert st.front.hits["/token"] == 1 and st.front.hits["/v2/token"] == 2
    st.clock.advance(400)  # inside the refresh margin: concurrent callers share one grant
    async with trio.open_nursery() as nursery:
        for _ in range(4):
            nursery.start_soon(client.resolve, "team/app", "v1")
    assert st.front.hits["/token"] == 2

    # Google revoked the access token and the registry token is gone: the token service
    # refuses the access token, so a new grant is made once and the pull goes on.
    assert isinstance(st.provider, GCR)
    st.provider.access_tokens.clear()
    st.provider.grants.clear()
    await harness.assert_pull(client, "team/app", pushed)
    assert st.front.hits["/token"] == 3


async def test_wrong_key_is_auth_failed_with_googles_message(st: Stage) -> None:
    await st.push("team/app")
    assert isinstance(st.provider, GCR)
    other, _ = service_account_key(st.provider.key["token_uri"])
    other["private_key_id"] = st.provider.key["private_key_id"]
    client = gcr_client(st, other, auth="access_token")
    await harness.assert_auth_failed(
        client, "team/app", "v1", "invalid_grant: Invalid JWT Signature."
    )
    assert st.front.hits["/token"] == 1
    await harness.assert_auth_failed(gcr_client(st, other), "team/app", "v1", "Not Authorized.")


async def test_throttling_and_naming(st: Stage) -> None:
    await st.push("team/app")
    client = gcr_client(st)
    await harness.assert_rate_limited(st, client, "team/app", "v1")
    with pytest.raises(NotFound, match="<project>/<image>"):
        await client.resolve("app", "v1")
    with pytest.raises(NotFound, match="not a valid repository name"):
        await client.resolve("team/App", "v1")
    artifact = gcr_client(st, artifact_registry=True)
    with pytest.raises(NotFound, match="<project>/<repository>/<image>"):
        await artifact.resolve("team/app", "v1")
    assert st.front.hits["/v2/app/manifests/v1"] == 0


def make(**spec: Any) -> gcr.GCRClient:
    return gcr.create(AdapterSpec("gcr", **spec), http=httpx.AsyncClient())


def test_spec_checks() -> None:
    key, _ = service_account_key("https://oauth2.googleapis.com/token")
    client = make(url="https://europe-docker.pkg.dev", password=json.dumps(key))
    assert client.rule is gcr.ARTIFACT_RULE and make(password="{}").rule is gcr.GCR_RULE
    assert "PRIVATE KEY" not in repr(client)
    with pytest.raises(ValueError, match="service-account key"):
        make()
    with pytest.raises(ValueError, match="not a JSON key"):
        make(password="{nope")
    with pytest.raises(ValueError, match="auth must be one of"):
        make(password="{}", options={"auth": "magic"})
    with pytest.raises(ValueError, match="RSA private_key"):
        make(password="{}", options={"auth": "access_token"})
