"""The Harbor adapter against Harbor's protocol (a front before a real docker-registry):
robot accounts through ``/service/token``, refresh, Harbor's refusal, 429,
``<project>/<repo>`` names, and listing through API v2.0 (all projects, or one)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fronts import harness
from fronts.common import Clock
from fronts.harbor import HarborFront
from registry_content import push_referrer

from adapters.errors import AuthFailed, NotFound
from adapters.registry import Capability, capabilities
from portmesh.oci.digest import parse_digest

pytestmark = pytest.mark.integration

ROBOT, SECRET = "robot$ci", "Harbor12345robot"
SBOM = "application/spdx+json"
SIG = "application/vnd.dev.cosign.artifact.sig.v1+json"


def harbor(clock: Clock) -> HarborFront:
    return HarborFront({ROBOT: SECRET, "admin": "Harbor12345"}, clock=clock)


async def test_robot_account_token_flow(tmp_path: Path) -> None:
    async with harness.stage(tmp_path, harbor) as st:
        refused = "UNAUTHORIZED: invalid user name or password"
        await harness.assert_token_flow(st, "harbor", "library/app", ROBOT, SECRET, refused)


async def test_names_and_listing_through_api_v2(tmp_path: Path) -> None:
    async with harness.stage(tmp_path, harbor) as st:
        st.provider.projects = {"library": ["app", "web", "db"], "team": ["x", "y", "z"]}
        client = st.client("harbor", username=ROBOT, password=SECRET)
        names = await client.list_repositories()  # type: ignore[attr-defined]
        assert names[:3] == ["library/app", "library/db", "library/web"]
        assert names[3:] == ["team/x", "team/y", "team/z"]
        assert st.front.hits["/api/v2.0/projects"] == 1
        assert st.front.hits["/api/v2.0/projects/team/repositories"] == 2, "pages of two"
        one = st.client("harbor", username=ROBOT, password=SECRET, options={"project": "team"})
        assert await one.list_repositories(n=2) == ["team/x", "team/y"]  # type: ignore[attr-defined]
        assert st.front.hits["/api/v2.0/projects"] == 1, "a project option lists only it"
        gone = st.client("harbor", username=ROBOT, password=SECRET, options={"project": "gone"})
        with pytest.raises(NotFound, match="project not found"):
            await gone.list_repositories()  # type: ignore[attr-defined]
        with pytest.raises(AuthFailed, match="unauthorized"):
            await st.client("harbor").list_repositories()  # type: ignore[attr-defined]
        with pytest.raises(NotFound, match="<project>/<repo>"):
            await client.fetch_manifest("app", "v1")


async def test_referrers_through_the_token_flow_by_the_tag_schema(tmp_path: Path) -> None:
    """docker-registry has no referrers API: the adapter falls back to the referrers tag
    schema, behind Harbor's token flow, and filters by artifact type itself."""
    async with harness.stage(tmp_path, harbor) as st:
        pushed = await st.push("library/app")
        subject = parse_digest(pushed.manifest_digest)
        client = st.client("harbor", username=ROBOT, password=SECRET)
        assert Capability.REFERRERS in capabilities("harbor")
        assert json.loads(await client.referrers("library/app", subject))["manifests"] == []

        sbom = await push_referrer(st.http, st.registry.url, pushed, SBOM, b'{"sbom": 1}')
        signature = await push_referrer(st.http, st.registry.url, pushed, SIG, b"signature")
        index = json.loads(await client.referrers("library/app", subject))
        assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
        found = {(m["digest"], m["artifactType"]) for m in index["manifests"]}
        assert found == {(sbom, SBOM), (signature, SIG)}
        only = json.loads(await client.referrers("library/app", subject, SBOM))["manifests"]
        assert [m["digest"] for m in only] == [sbom]

        referrers_api = "/v2/library/app/referrers/" + pushed.manifest_digest
        # asked first each time (3 lookups), plus the anonymous try that met the challenge
        assert st.front.hits[referrers_api] == 4
        assert st.provider.logins == [ROBOT], "one token serves all of it"
        artifact = await client.fetch_manifest("library/app", sbom)
        assert json.loads(artifact.body)["subject"]["digest"] == pushed.manifest_digest
