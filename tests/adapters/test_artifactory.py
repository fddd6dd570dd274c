"""The Artifactory adapter against Artifactory's protocol (a front before a real
docker-registry): the repository key in the path, Basic through the token flow and its
refresh, access tokens as Bearer, "Bad credentials", 429, and the repository catalog."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fronts import harness
from fronts.artifactory import KEY, ArtifactoryFront
from fronts.common import Clock

from adapters.artifactory import ArtifactoryClient
from adapters.errors import AuthFailed
from adapters.registry import AdapterSpec, create_upstream

pytestmark = pytest.mark.integration

USER, API_KEY = "deployer", "AKCp8jQ8tAahqpT"
ACCESS_TOKEN = "eyJ2ZXIiOiIyIiwidHlwIjoiSldUIn0.access"
TOKEN_PATH = f"/artifactory/api/docker/{KEY}/v2/token"


def artifactory(clock: Clock) -> ArtifactoryFront:
    return ArtifactoryFront({USER: API_KEY}, clock=clock, access_token=ACCESS_TOKEN)


def key_option(**more: str) -> dict[str, str]:
    return {"repository_key": KEY, **more}


async def test_repository_path_pull_and_refresh(tmp_path: Path) -> None:
    async with harness.stage(tmp_path, artifactory) as st:
        pushed = await st.push("team/app")  # the front strips the key before the registry
        client = st.client("artifactory", username=USER, password=API_KEY, options=key_option())
        assert isinstance(client, ArtifactoryClient)
        await harness.assert_refreshes(st, client, "team/app", pushed, TOKEN_PATH)
        assert st.front.hits[f"/v2/{KEY}/team/app/manifests/v1"] >= 3
        assert st.front.hits["/v2/team/app/manifests/v1"] == 0


async def test_access_token_is_sent_as_bearer(tmp_path: Path) -> None:
    async with harness.stage(tmp_path, artifactory) as st:
        pushed = await st.push("team/app")
        by_option = st.client("artifactory", options=key_option(access_token=ACCESS_TOKEN))
        await harness.assert_pull(by_option, "team/app", pushed)
        alone = st.client("artifactory", password=ACCESS_TOKEN, options=key_option())
        await harness.assert_pull(alone, "team/app", pushed)
        assert st.front.hits[TOKEN_PATH] == 0, "no token dance with an access token"
        assert ACCESS_TOKEN not in repr(alone) and ACCESS_TOKEN not in repr(alone.session)  # type: ignore[attr-defined]
        stale = st.client("artifactory", options=key_option(access_token="expired"))
        await harness.assert_auth_failed(
            stale, "team/app", "v1", "(Bad credentials); the access token was refused"
        )


async def test_bad_credentials_and_a_rate_limit(tmp_path: Path) -> None:
    async with harness.stage(tmp_path, artifactory) as st:
        await st.push("team/app")
        wrong = st.client("artifactory", username=USER, password="x", options=key_option())
        await harness.assert_auth_failed(wrong, "team/app", "v1", "Bad credentials")
        client = st.client("artifactory", username=USER, password=API_KEY, options=key_option())
        await harness.assert_rate_limited(st, client, "team/app", "v1", f"{KEY}/team/app")


async def test_catalog_of_the_repository(tmp_path: Path) -> None:
    async with harness.stage(tmp_path, artifactory) as st:
        st.provider.catalog = ["busybox", "centos", "hello-world"]
        basic = st.client("artifactory", username=USER, password=API_KEY, options=key_option())
        assert await basic.list_repositories() == ["busybox", "centos", "hello-world"]  # type: ignore[attr-defined]
        bearer = st.client("artifactory", options=key_option(access_token=ACCESS_TOKEN))
        assert await bearer.list_repositories(n=1, last="busybox") == ["centos"]  # type: ignore[attr-defined]
        with pytest.raises(AuthFailed, match="Bad credentials"):
            await st.client("artifactory", options=key_option()).list_repositories()  # type: ignore[attr-defined]


async def test_the_repository_key_is_required() -> None:
    async with httpx.AsyncClient() as http:
        for options in ({}, {"repository_key": "a/b"}):
            spec = AdapterSpec(type="artifactory", url="https://jfrog.example", options=options)
            with pytest.raises(ValueError, match="repository_key"):
                create_upstream(spec, http=http)
        spec = AdapterSpec(type="artifactory", url="https://jfrog.example", options=key_option())
        client = create_upstream(spec, http=http)
        assert isinstance(client, ArtifactoryClient)
        assert client.api_url == "https://jfrog.example/artifactory"
        assert client.remote_name("library/alpine") == f"{KEY}/library/alpine"
