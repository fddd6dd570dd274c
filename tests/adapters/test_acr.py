"""The acr adapter: admin user, and the AAD -> refresh token -> access token exchange,
against ACR's and Entra's endpoints served by the auth front before docker-registry."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fronts import harness
from fronts.acr import (
    AAD_LIFETIME,
    ACR,
    ADMIN,
    ADMIN_PASSWORD,
    CLIENT_ID,
    CLIENT_SECRET,
    REFRESH_LIFETIME,
    TENANT,
)
from fronts.harness import Stage

from adapters import acr
from adapters.auth import jwt_expiry
from adapters.base import Upstream
from adapters.errors import NotFound
from adapters.registry import AdapterSpec

pytestmark = pytest.mark.integration

AAD_PATH = f"/{TENANT}/oauth2/v2.0/token"


@pytest.fixture
async def st(tmp_path: Path) -> AsyncIterator[Stage]:
    async with harness.stage(tmp_path, ACR) as st:
        yield st


def aad_client(st: Stage, secret: str = CLIENT_SECRET, **extra: Any) -> Upstream:
    options = {"auth": "aad_client", "tenant": TENANT, "aad_endpoint": st.front.url, **extra}
    return st.client("acr", username=CLIENT_ID, password=secret, options=options)


async def test_admin_user_pull_and_token_refresh(st: Stage) -> None:
    pushed = await st.push("team/app")
    client = st.client("acr", username=ADMIN, password=ADMIN_PASSWORD)
    assert isinstance(client, acr.ACRClient)
    await harness.assert_refreshes(st, client, "team/app", pushed, "/oauth2/token")
    assert st.front.hits["/oauth2/exchange"] == 0


async def test_aad_exchange_refresh_token_and_access_tokens(st: Stage) -> None:
    pushed = await st.push("team/app")
    client = aad_client(st)
    await harness.assert_pull(client, "team/app", pushed)
    hits = st.front.hits
    assert (hits[AAD_PATH], hits["/oauth2/exchange"], hits["/oauth2/token"]) == (1, 1, 1)

    st.clock.advance(1201)  # the access token expired; the refresh token lives on
    await client.resolve("team/app", "v1")
    assert (hits[AAD_PATH], hits["/oauth2/exchange"], hits["/oauth2/token"]) == (1, 1, 2)

    st.clock.advance(REFRESH_LIFETIME - 1201 - 60)  # near the refresh token's end: a new one
    await client.resolve("team/app", "v1")
    assert (hits[AAD_PATH], hits["/oauth2/exchange"]) == (2, 2)  # the AAD token had expired

    # ACR revoked the refresh token: the token endpoint refuses it once, a new exchange
    # follows (the AAD token is still good) and the request goes through.
    assert isinstance(st.provider, ACR)
    st.provider.refresh_tokens.clear()
    st.provider.grants.clear()
    await harness.assert_pull(client, "team/app", pushed)
    assert (hits[AAD_PATH], hits["/oauth2/exchange"]) == (2, 3)
    assert AAD_LIFETIME < REFRESH_LIFETIME


async def test_fixed_aad_token_and_listing(st: Stage) -> None:
    pushed = await st.push("team/app")
    await st.push("team/db")
    assert isinstance(st.provider, ACR)
    st.provider.aad_tokens["aad-fixed"] = st.clock() + 3600
    client = st.client("acr", password="aad-fixed", options={"auth": "aad_token", "tenant": TENANT})
    await harness.assert_pull(client, "team/app", pushed)
    assert isinstance(client, acr.ACRClient)
    assert await client.list_repositories() == ["team/app", "team/db"]
    assert "aad-fixed" not in repr(client)


async def test_refused_credentials_carry_the_providers_message(st: Stage) -> None:
    await st.push("team/app")
    await harness.assert_auth_failed(
        aad_client(st, secret="wrong"), "team/app", "v1", "invalid_client: AADSTS7000215"
    )
    assert st.front.hits[AAD_PATH] == 1
    admin = st.client("acr", username=ADMIN, password="wrong")
    await harness.assert_auth_failed(
        admin, "team/app", "v1", "visit https://aka.ms/acr/authorization"
    )


async def test_throttling_and_naming(st: Stage) -> None:
    await st.push("team/app")
    client = st.client("acr", username=ADMIN, password=ADMIN_PASSWORD)
    await harness.assert_rate_limited(st, client, "team/app", "v1")
    for bad in ("Team/app", "team/app_", "team//app"):
        with pytest.raises(NotFound, match="Azure Container Registry"):
            await client.resolve(bad, "v1")


def make(**spec: Any) -> acr.ACRClient:
    return acr.create(
        AdapterSpec("acr", url="https://r.azurecr.io", **spec), http=httpx.AsyncClient()
    )


def test_spec_checks() -> None:
    with pytest.raises(ValueError, match="auth must be one of admin, aad_token, aad_client"):
        make(options={"auth": "x"})
    with pytest.raises(ValueError, match="tenant"):
        make(password="t", options={"auth": "aad_token"})
    with pytest.raises(ValueError, match="client id"):
        make(password="s", options={"auth": "aad_client", "tenant": "t"})
    login = make(username="app", password="s", options={"auth": "aad_client", "tenant": "t"})
    assert isinstance(login.session.provider, acr.AadLogin)
    assert login.session.provider.service == "r.azurecr.io" and "'s'" not in repr(login)


async def test_access_token_lives_until_its_jwt_exp(st: Stage) -> None:
    """``/oauth2/token`` gives no ``expires_in``: the JWT's ``exp`` (two hours here, far
    past the token specification's 60 s default) is how long the token is used."""
    assert isinstance(st.provider, ACR)
    st.provider.expires_in = 7200
    pushed = await st.push("team/app")
    client = st.client("acr", username=ADMIN, password=ADMIN_PASSWORD)
    await harness.assert_pull(client, "team/app", pushed)
    logins = st.front.hits["/oauth2/token"]
    st.clock.advance(3600)
    await harness.assert_pull(client, "team/app", pushed)
    assert st.front.hits["/oauth2/token"] == logins, "the token is good until its exp"
    st.clock.advance(3601)
    await harness.assert_pull(client, "team/app", pushed)
    assert st.front.hits["/oauth2/token"] == logins + 1


def test_jwt_expiry_reads_exp_and_refuses_non_jwts() -> None:
    def part(doc: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip("=")

    assert jwt_expiry(f"{part({'alg': 'none'})}.{part({'exp': 1900000000})}.sig") == 1.9e9
    assert jwt_expiry(f"{part({})}.{part({'exp': 'soon'})}.sig") is None
    assert jwt_expiry(f"{part({})}.{part({'exp': True})}.sig") is None
    assert jwt_expiry("registry.test-token-1") is None
    assert jwt_expiry("a.!!!.c") is None
