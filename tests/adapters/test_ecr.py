"""The ECR adapter against moto (the ECR API) and docker-registry behind ECR's Basic auth."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
import trio
from fronts import harness
from fronts.ecr import ACCESS_KEY, ECR, LIFETIME, MOTO_PASSWORD, REGION, SECRET_KEY, moto_server
from fronts.harness import Stage

from adapters import ecr
from adapters.base import Upstream
from adapters.errors import NotFound
from adapters.registry import AdapterSpec, Capability, capabilities
from adapters.sigv4 import AwsCredentials

pytestmark = pytest.mark.integration


@pytest.fixture
def moto() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
async def st(tmp_path: Path, moto: str) -> AsyncIterator[Stage]:
    async with harness.stage(tmp_path, lambda clock: ECR(moto, clock)) as st:
        yield st


def ecr_client(st: Stage, secret: str = SECRET_KEY) -> Upstream:
    options = {"region": REGION, "endpoint": st.front.url}
    return st.client("ecr", username=ACCESS_KEY, password=secret, options=options)


async def test_pull_login_expiry_refresh_and_a_refused_token(st: Stage) -> None:
    provider = st.provider
    assert isinstance(provider, ECR)
    client = ecr_client(st)
    await harness.assert_refreshes(st, client, "team/app", await st.push("team/app"), "/")
    assert provider.targets == ["GetAuthorizationToken"] * 2

    st.clock.advance(LIFETIME - 3600)  # an hour before expiry: the token is still used
    await client.resolve("team/app", "v1")
    assert st.front.hits["/"] == 2
    st.clock.advance(3600)  # expired: concurrent pulls share one new login
    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(client.resolve, "team/app", "v1")
    assert st.front.hits["/"] == 3

    provider.reject_next = True  # the registry refuses it: one new login, one retry
    await client.resolve("team/app", "v1")
    assert st.front.hits["/"] == 4
    assert SECRET_KEY not in repr(client)


async def test_wrong_secret_is_auth_failed_with_aws_message(st: Stage) -> None:
    await st.push("team/app")
    client = ecr_client(st, secret="wrong-secret")
    error = await harness.assert_auth_failed(
        client, "team/app", "v1", "InvalidSignatureException: The request signature we calculated"
    )
    assert "wrong-secret" not in str(error)
    assert st.front.hits["/"] == 1, "a refused key is not retried"


async def test_throttled_registry_and_naming_rules(st: Stage) -> None:
    await st.push("team/app")
    client = ecr_client(st)
    await harness.assert_rate_limited(st, client, "team/app", "v1")
    for bad in ("Team/App", "team//app", "a", "team/app-", "-team"):
        with pytest.raises(NotFound, match="not a valid repository name"):
            await client.resolve(bad, "v1")
    assert not [path for path in st.front.hits if "Team" in path or "//" in path]


async def test_list_repositories_and_the_api_against_moto(st: Stage, moto: str) -> None:
    api = boto3.client(
        "ecr",
        endpoint_url=moto,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )
    for name in ("team/app", "team/db", "base"):
        await trio.to_thread.run_sync(partial(api.create_repository, repositoryName=name))
    client = ecr_client(st)
    assert isinstance(client, ecr.ECRClient)
    assert await client.list_repositories() == ["base", "team/app", "team/db"]
    assert await client.list_repositories(n=1, last="base") == ["team/app"]
    assert isinstance(st.provider, ECR)
    assert st.provider.targets.count("DescribeRepositories") == 2  # one per listing

    direct = ecr.EcrApi(
        st.http,
        endpoint=moto,
        region=REGION,
        credentials=AwsCredentials(ACCESS_KEY, SECRET_KEY, "a-session-token"),
        registry_id=None,
        clock=st.clock,
    )
    credentials, _ = await direct()
    assert (credentials.username, credentials.password) == ("AWS", MOTO_PASSWORD)
    assert sorted(await direct.repositories()) == ["base", "team/app", "team/db"]


def make(url: str = "https://r.test", **spec: Any) -> ecr.ECRClient:
    return ecr.create(AdapterSpec("ecr", url=url, **spec), http=httpx.AsyncClient())


def test_spec_checks_and_capabilities() -> None:
    assert Capability.LIST_REPOSITORIES in capabilities("ecr")
    keys = {"username": "AK", "password": "SK"}
    client = make("", **keys, options={"registry_id": "210987654321", "region": "eu-west-1"})
    assert client.base_url == "https://210987654321.dkr.ecr.eu-west-1.amazonaws.com"
    assert client.api.endpoint == "https://api.ecr.eu-west-1.amazonaws.com/"
    from_url = make("https://111122223333.dkr.ecr.ap-south-1.amazonaws.com", **keys)
    assert (from_url.api.region, from_url.api.registry_id) == ("ap-south-1", "111122223333")
    with pytest.raises(ValueError, match="region"):
        make(**keys)
    with pytest.raises(ValueError, match="access key"):
        make(options={"region": "x"})
    with pytest.raises(ValueError, match="unknown option"):
        make(**keys, options={"region": "x", "colour": "red"})


async def test_fifty_pulls_on_an_expired_login_call_get_authorization_token_once(
    st: Stage,
) -> None:
    assert isinstance(st.provider, ECR)
    pushed = await st.push("team/app")
    await harness.assert_one_login_for_a_herd(st, ecr_client(st), "team/app", pushed, "/", LIFETIME)
    assert st.provider.targets == ["GetAuthorizationToken"] * 2
