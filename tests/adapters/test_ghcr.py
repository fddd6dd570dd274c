"""The GHCR adapter against ghcr.io's protocol (a front before a real docker-registry): a
token as the password of any user, anonymous public pulls, refresh, 403 DENIED, 429,
``<owner>/<image>`` names, and no catalog."""

from __future__ import annotations

from pathlib import Path

import pytest
from fronts import harness
from fronts.common import Clock
from fronts.ghcr import GHCRFront

from adapters.errors import NotFound, Unsupported
from adapters.ghcr import GHCRClient
from adapters.registry import Capability, capabilities

pytestmark = pytest.mark.integration

PAT = "ghp_0123456789abcdefghij"


def ghcr(clock: Clock) -> GHCRFront:
    return GHCRFront({"octocat": PAT}, clock=clock)


async def test_token_as_password_pull_and_refresh(tmp_path: Path) -> None:
    async with harness.stage(tmp_path, ghcr) as st:
        pushed = await st.push("octo-org/app")
        client = st.client("ghcr", password=PAT)  # GitHub ignores the username
        assert isinstance(client, GHCRClient)
        await harness.assert_refreshes(st, client, "octo-org/app", pushed, "/token")
        assert set(st.provider.logins) == {"token"}
        named = st.client("ghcr", username="octocat", password=PAT)
        await harness.assert_pull(named, "octo-org/app", pushed)


async def test_public_images_pull_anonymously(tmp_path: Path) -> None:
    async with harness.stage(tmp_path, ghcr) as st:
        st.provider.anonymous_pull = True
        pushed = await st.push("octo-org/public")
        await harness.assert_pull(st.client("ghcr"), "octo-org/public", pushed)
        assert st.provider.logins == [""]


async def test_a_bad_token_is_denied(tmp_path: Path) -> None:
    async with harness.stage(tmp_path, ghcr) as st:
        await st.push("octo-org/app")
        client = st.client("ghcr", password="ghp_revoked")
        error = await harness.assert_auth_failed(client, "octo-org/app", "v1", "DENIED: denied")
        assert error.status == 403 and "ghp_revoked" not in repr(client)


async def test_rate_limit(tmp_path: Path) -> None:
    async with harness.stage(tmp_path, ghcr) as st:
        await st.push("octo-org/app")
        error = await harness.assert_rate_limited(
            st, st.client("ghcr", password=PAT), "octo-org/app", "v1"
        )
        assert "TOOMANYREQUESTS" in str(error)


async def test_names_need_an_owner_and_there_is_no_catalog(tmp_path: Path) -> None:
    async with harness.stage(tmp_path, ghcr) as st:
        client = st.client("ghcr", password=PAT)
        with pytest.raises(NotFound, match="<owner>/<image>"):
            await client.resolve("alpine", "latest")
        assert sum(st.front.hits.values()) == 0, "refused before any request"
        with pytest.raises(Unsupported, match="no repository catalog"):
            await client.list_repositories()  # type: ignore[attr-defined]
    kinds = capabilities("ghcr")
    assert Capability.PULL in kinds
    assert Capability.LIST_REPOSITORIES not in kinds and Capability.DELETE not in kinds
