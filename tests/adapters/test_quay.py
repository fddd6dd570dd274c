"""The Quay adapter against Quay's protocol (a front before a real docker-registry): robot
accounts through ``/v2/auth``, refresh, Quay's refusal, 429, ``<namespace>/<repo>``
names, and listing through ``/api/v1/repository`` with an OAuth token."""

from __future__ import annotations

from pathlib import Path

import pytest
from fronts import harness
from fronts.common import Clock
from fronts.quay import QuayFront

from adapters.errors import AuthFailed, NotFound
from adapters.quay import QuayClient, robot_namespace

pytestmark = pytest.mark.integration

ROBOT, ROBOT_TOKEN = "myorg+ci", "Q0RT7X9ROBOTTOKEN"
API_TOKEN = "oauth-app-token"


def quay(clock: Clock) -> QuayFront:
    return QuayFront({ROBOT: ROBOT_TOKEN, "alice": "pw"}, clock=clock, api_token=API_TOKEN)


async def test_robot_account_token_flow(tmp_path: Path) -> None:
    async with harness.stage(tmp_path, quay) as st:
        refused = f"Could not find robot with username: {ROBOT}"
        await harness.assert_token_flow(st, "quay", "myorg/app", ROBOT, ROBOT_TOKEN, refused)


async def test_names_and_listing_through_the_api(tmp_path: Path) -> None:
    async with harness.stage(tmp_path, quay) as st:
        st.provider.repositories["myorg"] = [
            ("app", False),
            ("web", True),
            ("db", False),
            ("tools", True),
            ("cache", False),
        ]
        options = {"api_token": API_TOKEN}
        client = st.client("quay", username=ROBOT, password=ROBOT_TOKEN, options=options)
        assert isinstance(client, QuayClient) and client.namespace == "myorg"
        everything = ["myorg/app", "myorg/cache", "myorg/db", "myorg/tools", "myorg/web"]
        assert await client.list_repositories() == everything
        assert st.front.hits["/api/v1/repository"] == 3, "five repositories, pages of two"
        assert await client.list_repositories(n=1, last="myorg/db") == ["myorg/tools"]

        public = st.client("quay", options={"namespace": "myorg"})
        assert await public.list_repositories() == ["myorg/tools", "myorg/web"]  # type: ignore[attr-defined]
        bad = st.client("quay", options={"namespace": "myorg", "api_token": "stale"})
        with pytest.raises(AuthFailed, match="Invalid bearer token"):
            await bad.list_repositories()  # type: ignore[attr-defined]
        with pytest.raises(NotFound, match="<namespace>/<repo>"):
            await client.fetch_manifest("app", "v1")


def test_robot_namespace() -> None:
    assert robot_namespace("myorg+ci") == "myorg"
    assert robot_namespace("alice") is None and robot_namespace(None) is None
