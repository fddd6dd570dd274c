"""Pull-through a real node from each cloud registry adapter: ``portmesh node --config``
with an ``[[upstream]]`` of that ``type``, the provider's login protocol served by the auth
front before docker-registry (moto for the ECR API), and ``skopeo copy`` pulling the image
through the node byte for byte."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from integration.test_proxy import push
from support.authfront import AuthFront, Provider
from support.clients import skopeo_copy
from support.images import layout_tag_digest, write_image
from support.servers import run_docker_registry, run_node

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
    lines += [f"{key} = {_toml(value)}" for key, value in upstream.items()]
    lines.append("[upstream.options]")
    lines += [f"{key} = {_toml(value)}" for key, value in options.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


#: an option value that stands for the auth front's URL (known once the front runs)
FRONT = "<the auth front's URL>"


def login(username: str, password: str, **options: str) -> Callable[[str], dict[str, Any]]:
    """An upstream's settings: credentials and ``options`` (``FRONT`` values filled in)."""

    def settings(url: str) -> dict[str, Any]:
        filled = {key: url if value == FRONT else value for key, value in options.items()}
        return {"username": username, "password": password, "options": filled}

    return settings


async def pull_through(
    tmp_path: Path,
    skopeo: str,
    provider: Provider,
    kind: str,
    upstream: Callable[[str], dict[str, Any]],
    repo: str = "team/app",
) -> AuthFront:
    """Push ``repo:v1`` to docker-registry, put ``provider`` before it, pull it through a
    node whose upstream is ``upstream(front_url)`` (the settings of its table)."""
    image = write_image(tmp_path / "src", "v1", layer_sizes=(300_000,))
    async with (
        run_docker_registry(tmp_path / "registry") as registry,
        trio.open_nursery() as nursery,
    ):
        await push(skopeo, image.layout, "v1", registry, repo)
        front = AuthFront(registry.url, provider)
        await nursery.start(front.serve)
        config = write_config(tmp_path / "node.toml", kind, front.url, upstream(front.url))
        async with run_node(tmp_path / "node", "--config", str(config)) as node:
            out = tmp_path / "out"
            await skopeo_copy(
                skopeo, f"docker://{node.address}/{PROJECT}/{repo}:v1", f"oci:{out}:v1"
            )
            assert layout_tag_digest(out, "v1") == image.manifest_digest
        nursery.cancel_scope.cancel()
    return front


async def test_ecr(tmp_path: Path, skopeo: str, moto: str) -> None:
    provider = ecr.ECR(moto, time.monotonic)
    settings = login(ecr.ACCESS_KEY, ecr.SECRET_KEY, region=ecr.REGION, endpoint=FRONT)
    front = await pull_through(tmp_path, skopeo, provider, "ecr", settings)
    assert provider.targets == ["GetAuthorizationToken"]
    assert front.hits["/"] == 1


async def test_gcr_access_token(tmp_path: Path, skopeo: str) -> None:
    provider = gcr.GCR(time.monotonic)

    def settings(url: str) -> dict[str, Any]:
        key, private = gcr.service_account_key(url + "/token")
        provider.use_key(key, private)
        return {"password": json.dumps(key), "options": {"auth": "access_token"}}

    front = await pull_through(tmp_path, skopeo, provider, "gcr", settings)
    assert front.hits["/token"] == 1 and front.hits["/v2/token"] >= 1


async def test_acr_aad_client(tmp_path: Path, skopeo: str) -> None:
    provider = acr.ACR(time.monotonic)
    settings = login(
        acr.CLIENT_ID, acr.CLIENT_SECRET, auth="aad_client", tenant=acr.TENANT, aad_endpoint=FRONT
    )
    front = await pull_through(tmp_path, skopeo, provider, "acr", settings)
    assert front.hits[f"/{acr.TENANT}/oauth2/v2.0/token"] == 1
    assert front.hits["/oauth2/exchange"] == 1


async def test_swr(tmp_path: Path, skopeo: str) -> None:
    provider = swr.SWR(time.monotonic)
    await pull_through(tmp_path, skopeo, provider, "swr", login(swr.AK, swr.SK, region=swr.REGION))
    assert provider.logins and set(provider.logins) == {f"{swr.REGION}@{swr.AK}"}


async def test_alibaba_access_key(tmp_path: Path, skopeo: str) -> None:
    provider = alibaba.Alibaba(time.monotonic)
    settings = login(
        alibaba.AK,
        alibaba.SK,
        auth="access_key",
        instance_id=alibaba.INSTANCE,
        region=alibaba.REGION,
        endpoint=FRONT,
    )
    front = await pull_through(tmp_path, skopeo, provider, "alibaba-acr", settings)
    assert front.hits["/"] == 1
    assert set(provider.logins) == {alibaba.TEMP_USER}
