"""The swr adapter: the AK/SK long-term login against SWR's token service, served by the
auth front before docker-registry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fronts import harness
from fronts.harness import Stage
from fronts.swr import AK, REGION, SK, SWR, documented_login_key

from adapters import swr
from adapters.base import Upstream
from adapters.errors import NotFound, Unsupported
from adapters.registry import AdapterSpec, Capability, capabilities

pytestmark = pytest.mark.integration


@pytest.fixture
async def st(tmp_path: Path) -> AsyncIterator[Stage]:
    async with harness.stage(tmp_path, SWR) as st:
        yield st


def swr_client(st: Stage, sk: str = SK) -> Upstream:
    return st.client("swr", username=AK, password=sk, options={"region": REGION})


async def test_pull_with_the_long_term_login_and_token_refresh(st: Stage) -> None:
    pushed = await st.push("team/app")
    client = swr_client(st)
    await harness.assert_refreshes(st, client, "team/app", pushed, SWR.token_path)
    assert st.provider.logins == [f"{REGION}@{AK}"] * 2
    assert SK not in repr(client)


async def test_wrong_secret_throttling_naming_and_no_listing(st: Stage) -> None:
    await st.push("team/app")
    error = await harness.assert_auth_failed(
        swr_client(st, "wrong"), "team/app", "v1", "UNAUTHORIZED"
    )
    assert "wrong" not in str(error)
    client = swr_client(st)
    await harness.assert_rate_limited(st, client, "team/app", "v1")
    for bad in ("app", "Team/app", "9team/app"):
        with pytest.raises(NotFound, match="<organization>/<repository>"):
            await client.resolve(bad, "v1")
    assert isinstance(client, swr.SWRClient)
    with pytest.raises(Unsupported):
        await client.list_repositories()
    assert Capability.LIST_REPOSITORIES not in capabilities("swr")


def make(url: str = "https://r.test", **spec: Any) -> swr.SWRClient:
    return swr.create(AdapterSpec("swr", url=url, **spec), http=httpx.AsyncClient())


def test_login_key_and_spec_checks() -> None:
    creds = swr.login_credentials("cn-north-4", "AK", "SK")
    assert creds.username == "cn-north-4@AK"
    assert creds.password == documented_login_key("AK", "SK")
    client = make("https://swr.cn-north-4.myhuaweicloud.com", username="AK", password="SK")
    assert client.credentials == creds
    with pytest.raises(ValueError, match="region"):
        make(username="A", password="S")
    with pytest.raises(ValueError, match="AK"):
        make(options={"region": "x"})
