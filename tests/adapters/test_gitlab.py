"""The GitLab adapter against GitLab's protocol (a front before a real docker-registry):
deploy tokens through ``/jwt/auth``, refresh, GitLab's refusal, 429, group/project names,
and listing through ``/api/v4/projects/:id/registry/repositories`` with PRIVATE-TOKEN."""

from __future__ import annotations

from pathlib import Path

import pytest
from fronts import harness
from fronts.common import Clock
from fronts.gitlab import GitLabFront

from adapters.errors import AuthFailed, NotFound, Unsupported
from adapters.gitlab import GitLabClient, gitlab_api_url

pytestmark = pytest.mark.integration

DEPLOY_USER, DEPLOY_TOKEN = "gitlab+deploy-token-7", "gldt-0123456789"
PERSONAL = "glpat-abcdefghij"


def gitlab(clock: Clock) -> GitLabFront:
    users = {DEPLOY_USER: DEPLOY_TOKEN, "alice": PERSONAL}
    return GitLabFront(users, clock=clock, api_token=PERSONAL)


async def test_deploy_token_flow(tmp_path: Path) -> None:
    async with harness.stage(tmp_path, gitlab) as st:
        repo, refused = "group/project/image", "UNAUTHORIZED: HTTP Basic: Access denied"
        await harness.assert_token_flow(st, "gitlab", repo, DEPLOY_USER, DEPLOY_TOKEN, refused)


async def test_names_and_listing_through_the_api(tmp_path: Path) -> None:
    async with harness.stage(tmp_path, gitlab) as st:
        paths = [f"group/project/{name}" for name in ("web", "app", "db", "cache", "tools")]
        st.provider.projects["group/project"] = paths
        options = {"project": "group/project"}
        client = st.client("gitlab", username="alice", password=PERSONAL, options=options)
        assert isinstance(client, GitLabClient) and client.gitlab_url == st.front.url
        assert await client.list_repositories() == sorted(paths)
        hits = st.front.hits["/api/v4/projects/group/project/registry/repositories"]
        assert hits == 3, "five repositories in pages of two, following Link"
        page = await client.list_repositories(n=2, last="group/project/cache")
        assert page == ["group/project/db", "group/project/tools"]

        deploy = st.client("gitlab", username=DEPLOY_USER, password=DEPLOY_TOKEN, options=options)
        with pytest.raises(AuthFailed, match="401 Unauthorized"):
            await deploy.list_repositories()  # type: ignore[attr-defined]
        explicit = st.client(
            "gitlab",
            username=DEPLOY_USER,
            password=DEPLOY_TOKEN,
            options={**options, "api_token": PERSONAL},
        )
        assert await explicit.list_repositories(n=1) == ["group/project/app"]  # type: ignore[attr-defined]
        missing = st.client(
            "gitlab", password=PERSONAL, username="alice", options={"project": "other/none"}
        )
        with pytest.raises(NotFound, match="404 Project Not Found"):
            await missing.list_repositories()  # type: ignore[attr-defined]
        with pytest.raises(Unsupported, match="project"):
            await st.client("gitlab").list_repositories()  # type: ignore[attr-defined]
        with pytest.raises(NotFound, match="<group>/<project>"):
            await client.resolve("image", "v1")


def test_api_url_from_the_registry_url() -> None:
    assert gitlab_api_url("https://registry.gitlab.com") == "https://gitlab.com"
    assert gitlab_api_url("https://registry.example.org:5050") == "https://example.org:5050"
    assert gitlab_api_url("https://gitlab.example.org") == "https://gitlab.example.org"
