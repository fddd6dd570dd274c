"""The Docker Hub adapter against Hub's protocol (a front before a real docker-registry):
``library/`` names, the token flow and its refresh, pull-limit headers, 429, a refused
login, and listing through the Hub API."""

from __future__ import annotations

from pathlib import Path

import pytest
from fronts import harness
from fronts.common import Clock
from fronts.dockerhub import LIMIT, WINDOW, HubFront

from adapters.dockerhub import DEFAULT_URL, DockerHubClient
from adapters.errors import AuthFailed, Unsupported
from adapters.registry import AdapterSpec, create_upstream

pytestmark = pytest.mark.integration

USER, PASSWORD = "hubuser", "dckr_pat_0123456789"


def hub(clock: Clock) -> HubFront:
    return HubFront({USER: PASSWORD}, clock=clock)


async def test_pull_official_image_and_refresh_the_token(tmp_path: Path) -> None:
    async with harness.stage(tmp_path, hub) as st:
        pushed = await st.push("library/alpine")
        client = st.client("docker-hub", username=USER, password=PASSWORD)
        assert isinstance(client, DockerHubClient)
        await harness.assert_refreshes(st, client, "alpine", pushed, "/token")
        assert st.provider.logins == [USER, USER]
        await harness.assert_pull(client, "library/alpine", pushed)
        assert st.front.hits["/v2/alpine/manifests/v1"] == 0, "one-segment names are library/"
        limit = client.rate_limit
        assert limit is not None
        assert (limit.limit, limit.window, limit.source) == (LIMIT, WINDOW, "127.0.0.1")
        assert limit.remaining == st.provider.remaining < LIMIT


async def test_pull_limit_probe_and_429(tmp_path: Path) -> None:
    async with harness.stage(tmp_path, hub) as st:
        await st.push("ratelimitpreview/test", "latest", 100)
        await st.push("library/alpine")
        client = st.client("docker-hub")  # anonymous: the front lets nobody in
        st.provider.anonymous_pull = True
        assert isinstance(client, DockerHubClient)
        probe = await client.check_rate_limit()
        assert probe is not None and probe.remaining == LIMIT, "a HEAD is not a pull"
        error = await harness.assert_rate_limited(st, client, "alpine", "v1", "library/alpine")
        assert "TOOMANYREQUESTS" in str(error) and "pull rate limit" in str(error)
        assert client.rate_limit is not None and client.rate_limit.remaining == 0


async def test_a_wrong_password_is_refused_with_hubs_message(tmp_path: Path) -> None:
    async with harness.stage(tmp_path, hub) as st:
        await st.push("team/app")
        client = st.client("docker-hub", username=USER, password="not-it")
        error = await harness.assert_auth_failed(
            client, "team/app", "v1", "incorrect username or password"
        )
        assert error.status == 401
        assert "not-it" not in str(error) and "not-it" not in repr(client)


async def test_list_repositories_through_the_hub_api(tmp_path: Path) -> None:
    async with harness.stage(tmp_path, hub) as st:
        st.provider.hub_repositories = {"team": ["web", "app", "db", "cache", "tools"]}
        options = {"namespace": "team", "hub_url": st.front.url}
        client = st.client("docker-hub", username=USER, password=PASSWORD, options=options)
        assert isinstance(client, DockerHubClient)
        names = await client.list_repositories()
        assert names == ["team/app", "team/cache", "team/db", "team/tools", "team/web"]
        assert st.front.hits["/v2/repositories/team/"] == 3, "five names in pages of two"
        assert await client.list_repositories(n=2, last="team/cache") == ["team/db", "team/tools"]
        assert st.front.hits["/v2/auth/token"] == 2, "one Hub login per listing"

        wrong = st.client("docker-hub", username=USER, password="nope", options=options)
        with pytest.raises(AuthFailed, match="Incorrect authentication credentials"):
            await wrong.list_repositories()  # type: ignore[attr-defined]
        with pytest.raises(Unsupported, match="namespace"):
            await st.client("docker-hub").list_repositories()  # type: ignore[attr-defined]


async def test_defaults_to_docker_hubs_registry() -> None:
    import httpx

    async with httpx.AsyncClient() as http:
        client = create_upstream(AdapterSpec(type="docker-hub"), http=http)
        assert isinstance(client, DockerHubClient)
        assert client.base_url == DEFAULT_URL
        assert client.hub_url == "https://hub.docker.com"
        assert client.remote_name("alpine") == "library/alpine"
        assert client.remote_name("bitnami/redis") == "bitnami/redis"


async def test_fifty_pulls_on_an_expired_token_log_in_once(tmp_path: Path) -> None:
    async with harness.stage(tmp_path, hub) as st:
        pushed = await st.push("library/alpine")
        client = st.client("docker-hub", username=USER, password=PASSWORD)
        await harness.assert_one_login_for_a_herd(
            st, client, "library/alpine", pushed, "/token", st.provider.expires_in
        )
        assert st.provider.logins == [USER, USER]
