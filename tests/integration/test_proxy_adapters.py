"""Pull-through with each registry adapter, end to end: a node configured with an
``[[upstream]]`` of that ``type`` in front of the provider's protocol (the provider fronts
of ``tests/adapters/fronts`` before a real docker-registry), and skopeo pulling through
the node's proxy project: the whole multi-arch index with skopeo, podman pull, and the tag
served stale once the front is gone (see ``adapter_scenario``)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from integration.adapter_scenario import pull_through_scenario

# the provider fronts live with the adapter tests (tests/adapters is not a package)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "adapters"))

from fronts.artifactory import KEY, ArtifactoryFront
from fronts.common import Clock, TokenFlow
from fronts.dockerhub import HubFront
from fronts.ghcr import GHCRFront
from fronts.gitlab import GitLabFront
from fronts.harbor import HarborFront
from fronts.quay import QuayFront

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Case:
    kind: str
    front: Callable[[dict[str, str], Clock], TokenFlow]
    pushed_as: str  #: the name in the registry behind the front
    pulled_as: str  #: the name under the node's proxy project
    username: str
    password: str
    options: dict[str, Any] = field(default_factory=dict)


CASES = [
    Case(
        "docker-hub",
        lambda u, c: HubFront(u, clock=c),
        "library/alpine",
        "alpine",
        "hubuser",
        "dckr_pat_1",
    ),
    Case(
        "ghcr", lambda u, c: GHCRFront(u, clock=c), "octo-org/app", "octo-org/app", "", "ghp_token"
    ),
    Case(
        "quay",
        lambda u, c: QuayFront(u, clock=c),
        "myorg/app",
        "myorg/app",
        "myorg+ci",
        "robot-token",
    ),
    Case(
        "gitlab",
        lambda u, c: GitLabFront(u, clock=c),
        "group/project/image",
        "group/project/image",
        "gitlab+deploy-token-1",
        "gldt-x",
    ),
    Case(
        "harbor",
        lambda u, c: HarborFront(u, clock=c),
        "library/app",
        "library/app",
        "robot$ci",
        "robot-secret",
    ),
    Case(
        "artifactory",
        lambda u, c: ArtifactoryFront(u, clock=c),
        "team/app",
        "team/app",
        "deployer",
        "api-key",
        {"repository_key": KEY},
    ),
]


def node_config(path: Path, case: Case, url: str) -> Path:
    lines = [
        "[[upstream]]",
        'name = "up"',
        f"url = {json.dumps(url)}",
        f"type = {json.dumps(case.kind)}",
        'project = "p"',
        f"username = {json.dumps(case.username)}",
        f"password = {json.dumps(case.password)}",
        "tag_ttl = 0.0",
        "[upstream.options]",
        *[f"{key} = {json.dumps(value)}" for key, value in case.options.items()],
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("case", CASES, ids=[case.kind for case in CASES])
async def test_pull_through_the_adapter(
    case: Case, skopeo: str, podman: str, tmp_path: Path
) -> None:
    users = {case.username or "token": case.password}
    provider = case.front(users, Clock())
    await pull_through_scenario(
        tmp_path,
        skopeo,
        podman,
        provider,
        case.pushed_as,
        f"p/{case.pulled_as}",
        lambda url: node_config(tmp_path / "node.toml", case, url),
    )
    assert provider.logins, "the node logged in through the provider's token flow"
    assert set(provider.logins) == {case.username or "token"}
