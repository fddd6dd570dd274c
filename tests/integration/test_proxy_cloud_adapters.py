"""Pull-through a real node from each cloud registry adapter: ``portmesh node --config``
with an ``[[upstream]]`` of that ``type``, the provider's login protocol served by the auth
front before docker-registry (moto for the ECR API), and ``skopeo copy`` pulling the image
through the node: the whole multi-arch index with skopeo, podman pull, and the tag served
stale once the front is gone (see ``adapter_scenario``). One case table, one scenario."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from integration.adapter_scenario import pull_through_scenario
from support.authfront import AuthFront, Provider

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "adapters"))
from fronts import acr, alibaba, ecr, gcr, swr

pytestmark = pytest.mark.integration

PROJECT = "cloud"


@pytest.fixture
def moto() -> Iterator[str]:
    with ecr.moto_server() as url:
        yield url


def _toml(value: Any) -> str:
    return json.dumps(value)  # JSON strings, numbers and booleans are TOML values


def write_config(path: Path, kind: str, url: str, upstream: dict[str, Any]) -> Path:
    options = upstream.pop("options", {})
    lines = ["[[upstream]]", 'name = "cloud"', f"type = {_toml(kind)}", f"url = {_toml(url)}"]
    lines.append(f"project = {_toml(PROJECT)}")
    lines.append("tag_ttl = 0.0")
    lines += [f"{key} = {_toml(value)}" for key, value in upstream.items()]
    lines.append("[upstream.options]")
    lines += [f"{key} = {_toml(value)}" for key, value in options.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


#: an option value that stands for the auth front's URL (known once the front runs)
FRONT = "<the auth front's URL>"


Settings = Callable[[str, Any], dict[str, Any]]


def login(username: str, password: str, **options: str) -> Settings:
    """An upstream's settings: credentials and ``options`` (``FRONT`` values filled in)."""

    def settings(url: str, provider: Any) -> dict[str, Any]:
        filled = {key: url if value == FRONT else value for key, value in options.items()}
        return {"username": username, "password": password, "options": filled}

    return settings


def gcr_settings(url: str, provider: gcr.GCR) -> dict[str, Any]:
    """A service account key whose token URI is the front's; the provider trusts it."""
    key, private = gcr.service_account_key(url + "/token")
    provider.use_key(key, private)
    return {"password": json.dumps(key), "options": {"auth": "access_token"}}


def check_ecr(provider: ecr.ECR, front: AuthFront) -> None:
    assert provider.targets == ["GetAuthorizationToken"]
    assert front.hits["/"] == 1


def check_gcr(provider: gcr.GCR, front: AuthFront) -> None:
    assert front.hits["/token"] == 1 and front.hits["/v2/token"] >= 1


def check_acr(provider: acr.ACR, front: AuthFront) -> None:
    assert front.hits[f"/{acr.TENANT}/oauth2/v2.0/token"] == 1
    assert front.hits["/oauth2/exchange"] == 1


def check_swr(provider: swr.SWR, front: AuthFront) -> None:
    assert provider.logins and set(provider.logins) == {f"{swr.REGION}@{swr.AK}"}


def check_alibaba(provider: alibaba.Alibaba, front: AuthFront) -> None:
    assert front.hits["/"] == 1
    assert set(provider.logins) == {alibaba.TEMP_USER}


@dataclass(frozen=True)
class Case:
    kind: str
    provider: Callable[[str], Provider]  #: built from the moto URL (ECR) or ignoring it
    settings: Settings  #: the upstream table's settings, given the front's URL
    check: Callable[[Any, AuthFront], None]  #: what the provider saw of the node's logins
    needs_moto: bool = False


CASES = [
    Case(
        "ecr",
        lambda moto_url: ecr.ECR(moto_url, time.monotonic),
        login(ecr.ACCESS_KEY, ecr.SECRET_KEY, region=ecr.REGION, endpoint=FRONT),
        check_ecr,
        needs_moto=True,
    ),
    Case("gcr", lambda _: gcr.GCR(time.monotonic), gcr_settings, check_gcr),
    Case(
        "acr",
        lambda _: acr.ACR(time.monotonic),
        login(
            acr.CLIENT_ID,
            acr.CLIENT_SECRET,
            auth="aad_client",
            tenant=acr.TENANT,
            aad_endpoint=FRONT,
        ),
        check_acr,
    ),
    Case(
        "swr",
        lambda _: swr.SWR(time.monotonic),
        login(swr.AK, swr.SK, region=swr.REGION),
        check_swr,
    ),
    Case(
        "alibaba-acr",
        lambda _: alibaba.Alibaba(time.monotonic),
        login(
            alibaba.AK,
            alibaba.SK,
            auth="access_key",
            instance_id=alibaba.INSTANCE,
            region=alibaba.REGION,
            endpoint=FRONT,
        ),
        check_alibaba,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.kind for case in CASES])
async def test_pull_through_the_cloud_adapter(
    case: Case, request: pytest.FixtureRequest, skopeo: str, podman: str, tmp_path: Path
) -> None:
    moto_url: str = request.getfixturevalue("moto") if case.needs_moto else ""
    provider = case.provider(moto_url)

    def config(url: str) -> Path:
        return write_config(tmp_path / "node.toml", case.kind, url, case.settings(url, provider))

    front = await pull_through_scenario(
        tmp_path, skopeo, podman, provider, "team/app", f"{PROJECT}/team/app", config
    )
    case.check(provider, front)
