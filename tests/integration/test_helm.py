"""Helm (the real Helm v4 SDK, through helm-python-sdk) stores charts in the registry.

A chart is created and packaged on disk, pushed to ``oci://HOST:PORT/charts``, its
versions listed as tags, and pulled back byte for byte.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helm_python as helm
import httpx
import pytest
import trio

from support.clients import MANIFEST_ACCEPT, head_manifest_digest
from support.servers import Server

pytestmark = pytest.mark.integration

HELM_CONFIG_TYPE = "application/vnd.cncf.helm.config.v1+json"
HELM_CHART_LAYER = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"


def package_chart(workdir: Path, versions: tuple[str, ...]) -> dict[str, bytes]:
    """Scaffold chart ``demo`` and package it once per version into ``workdir/dist``;
    returns version -> archive bytes."""
    (workdir / "src").mkdir()
    with helm.Chart.create("demo", workdir / "src") as chart:
        assert chart.name == "demo"
    archives = {}
    for version in versions:
        path = helm.package(workdir / "src" / "demo", destination=workdir / "dist", version=version)
        assert Path(path).name == f"demo-{version}.tgz"
        archives[version] = Path(path).read_bytes()
    return archives


def push_list_pull(
    server: Server, workdir: Path
) -> tuple[list[dict[str, Any]], list[str], dict[str, Any], dict[str, bytes]]:
    """Push every archive in ``workdir/dist``, list the tags, resolve and pull 0.1.0.

    Returns (push results, tags, resolved descriptor of 0.1.0, pulled file name -> bytes).
    """
    remote = f"oci://{server.address}/charts"
    with helm.RegistryClient(plain_http=True, credentials_file=workdir / "creds.json") as client:
        pushed = [
            client.push(archive, remote, plain_http=True)
            for archive in sorted((workdir / "dist").iterdir())
        ]
        tags = client.tags(f"{remote}/demo")
        resolved = client.resolve(f"{remote}/demo:0.1.0")
        out = workdir / "pulled"
        out.mkdir()
        client.pull(f"{remote}/demo", version="0.1.0", destination=out, plain_http=True)
    return pushed, tags, resolved, {path.name: path.read_bytes() for path in out.iterdir()}


async def test_helm_chart_push_tags_pull(registry_target: Server, tmp_path: Path) -> None:
    archives = await trio.to_thread.run_sync(lambda: package_chart(tmp_path, ("0.1.0", "0.2.0")))
    pushed, tags, resolved, pulled = await trio.to_thread.run_sync(
        lambda: push_list_pull(registry_target, tmp_path)
    )

    assert len(pushed) == 2
    assert tags == ["0.2.0", "0.1.0"]
    assert pulled == {"demo-0.1.0.tgz": archives["0.1.0"]}

    # The chart is an OCI artifact the registry serves like any manifest.
    digest = await head_manifest_digest(registry_target, "charts/demo", "0.1.0")
    assert resolved["digest"] == digest
    async with httpx.AsyncClient(base_url=registry_target.url, timeout=30.0) as client:
        response = await client.get(
            f"/v2/charts/demo/manifests/{digest}", headers={"Accept": MANIFEST_ACCEPT}
        )
        manifest = response.json()
        listed = (await client.get("/v2/charts/demo/tags/list")).json()
        (layer,) = manifest["layers"]
        blob = await client.get(f"/v2/charts/demo/blobs/{layer['digest']}")
    assert manifest["config"]["mediaType"] == HELM_CONFIG_TYPE
    assert layer["mediaType"] == HELM_CHART_LAYER
    assert blob.content == archives["0.1.0"]
    assert sorted(listed["tags"]) == ["0.1.0", "0.2.0"]
    assert listed["name"] == "charts/demo"
