"""The alibaba-acr adapter: the fixed password, and temporary logins from the CR API's
signed GetAuthorizationToken, against Alibaba's protocol served by the auth front."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from fronts import harness
from fronts.alibaba import AK, INSTANCE, PASSWORD, REGION, SK, TEMP_LIFETIME, USER, Alibaba
from fronts.harness import Stage

from adapters import alibaba
from adapters.base import Upstream
from adapters.errors import NotFound, Unsupported
from adapters.registry import AdapterSpec

pytestmark = pytest.mark.integration

# Alibaba's documented example for signature 1.0 (DescribeRegions, testid / testsecret)
DOC_PARAMS = {
    "Timestamp": "2016-02-23T12:46:24Z",
    "Format": "XML",
    "AccessKeyId": "testid",
    "Action": "DescribeRegions",
    "SignatureMethod": "HMAC-SHA1",
    "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf",
    "Version": "2014-05-26",
    "SignatureVersion": "1.0",
}


@pytest.fixture
async def st(tmp_path: Path) -> AsyncIterator[Stage]:
    async with harness.stage(tmp_path, Alibaba) as st:
        yield st


def key_client(st: Stage, secret: str = SK, **extra: Any) -> Upstream:
    options = {"auth": "access_key", "instance_id": INSTANCE, "region": REGION}
    options["endpoint"] = st.front.url
    return st.client("alibaba-acr", username=AK, password=secret, options={**options, **extra})


def test_signature_matches_the_documented_example() -> None:
    assert alibaba.rpc_signature("GET", DOC_PARAMS, "testsecret") == "OLeaidS1JvxuMvnyHOwuJ+uX5qY="


async def test_fixed_password_pull_and_token_refresh(st: Stage) -> None:
    pushed = await st.push("team/app")
    client = st.client("alibaba-acr", username=USER, password=PASSWORD)
    await harness.assert_refreshes(st, client, "team/app", pushed, "/auth")
    assert isinstance(client, alibaba.AlibabaClient)
    with pytest.raises(Unsupported, match="access_key"):
        await client.list_repositories()


async def test_temporary_login_expires_and_is_fetched_again(st: Stage) -> None:
    pushed = await st.push("team/app")
    client = key_client(st)
    await harness.assert_pull(client, "team/app", pushed)
    assert st.front.hits["/"] == 1
    st.clock.advance(TEMP_LIFETIME - 400)  # the registry token expired, the login did not
    await client.resolve("team/app", "v1")
    assert st.front.hits["/"] == 1
    st.clock.advance(200)  # within the refresh margin: one new login for concurrent pulls
    async with trio.open_nursery() as nursery:
        for _ in range(4):
            nursery.start_soon(client.resolve, "team/app", "v1")
    assert st.front.hits["/"] == 2
    assert isinstance(st.provider, Alibaba)
    st.provider.temp_tokens.clear()  # revoked: refused once, logged in again, pulled
    st.provider.grants.clear()
    await harness.assert_pull(client, "team/app", pushed)
    assert st.front.hits["/"] == 3
    assert SK not in repr(client)


async def test_refused_keys_and_passwords(st: Stage) -> None:
    await st.push("team/app")
    await harness.assert_auth_failed(
        key_client(st, "wrong"), "team/app", "v1", "SignatureDoesNotMatch: Specified signature"
    )
    assert st.front.hits["/"] == 1
    unknown = st.client(
        "alibaba-acr",
        username="LTAIunknown",
        password=SK,
        options={"auth": "access_key", "instance_id": INSTANCE, "endpoint": st.front.url},
    )
    await harness.assert_auth_failed(unknown, "team/app", "v1", "InvalidAccessKeyId.NotFound")
    fixed = st.client("alibaba-acr", username=USER, password="nope")
    await harness.assert_auth_failed(
        fixed, "team/app", "v1", "UNAUTHORIZED: authentication required"
    )


async def test_listing_throttling_and_naming(st: Stage) -> None:
    await st.push("team/app")
    assert isinstance(st.provider, Alibaba)
    st.provider.repositories = [("team", "app"), ("team", "db"), ("base", "os")]
    client = key_client(st)
    assert isinstance(client, alibaba.AlibabaClient)
    assert await client.list_repositories() == ["base/os", "team/app", "team/db"]
    assert await client.list_repositories(n=1, last="base/os") == ["team/app"]
    await harness.assert_rate_limited(st, client, "team/app", "v1")
    for bad in ("app", "Team/app", "t/app"):
        with pytest.raises(NotFound, match="<namespace>/<repository>"):
            await client.resolve(bad, "v1")


def make(**spec: Any) -> alibaba.AlibabaClient:
    url = "https://portmesh-registry.cn-shanghai.cr.aliyuncs.com"
    return alibaba.create(AdapterSpec("alibaba-acr", url=url, **spec), http=httpx.AsyncClient())


def test_spec_checks() -> None:
    client = make(username="a", password="s", options={"auth": "access_key", "instance_id": "i"})
    assert client.api is not None and client.api.endpoint == "https://cr.cn-shanghai.aliyuncs.com/"
    with pytest.raises(ValueError, match="instance_id"):
        make(username="a", password="s", options={"auth": "access_key"})
    with pytest.raises(ValueError, match="auth must be one of"):
        make(options={"auth": "sso"})
