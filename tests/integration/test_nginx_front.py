"""A node behind a real nginx, configured by the shipped deploy/nginx/portmesh.conf.

The node runs with ``accel_redirect``: it checks each blob GET and answers with an
``X-Accel-Redirect`` to nginx's internal location, and nginx sends the file itself. Real
clients must not notice: skopeo pushes and pulls through nginx byte for byte, blob GETs
carry the registry's headers, Range works, and a blob outside the repository is still
refused by the node.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from support.clients import MANIFEST_ACCEPT, skopeo_copy, skopeo_inspect_raw
from support.images import Image, MiB, layout_tag_digest, read_blob, write_image
from support.nginx import run_nginx
from support.servers import Server, run_node

pytestmark = pytest.mark.integration

ACCEL_PREFIX = "/_portmesh_blobs/"
LOG_WAIT = 10.0


@dataclass(frozen=True)
class Front:
    node: Server
    nginx: Server


@pytest.fixture
async def front(tmp_path: Path) -> AsyncIterator[Front]:
    """A node with ``accel_redirect`` set (TOML config) and nginx in front of it."""
    config = tmp_path / "node.toml"
    config.write_text(f'[node]\naccel_redirect = "{ACCEL_PREFIX}"\n')
    workdir = tmp_path / "node"
    async with (
        run_node(workdir, "--config", str(config)) as node,
        run_nginx(tmp_path / "nginx", node, workdir / "data") as nginx,
    ):
        yield Front(node, nginx)


async def push(skopeo: str, server: Server, image: Image, repository: str) -> None:
    await skopeo_copy(
        skopeo, f"oci:{image.layout}:{image.tag}", f"docker://{server.address}/{repository}:v1"
    )


def access_lines(log: Path, path: str) -> list[dict[str, Any]]:
    """The node's JSON access-log lines for requests to ``path``."""
    lines = []
    for raw in log.read_text(errors="replace").splitlines():
        if not raw.startswith("{"):
            continue
        entry = json.loads(raw)
        if entry.get("path") == path:
            lines.append(entry)
    return lines


async def wait_for_lines(
    log: Path, path: str, done: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    """Poll until ``done(lines)`` (at most ``LOG_WAIT`` s); a line trails its response."""
    lines = access_lines(log, path)
    for _ in range(int(LOG_WAIT / 0.1)):
        if done(lines):
            break
        await trio.sleep(0.1)
        lines = access_lines(log, path)
    return lines


async def test_skopeo_push_and_pull_through_nginx(
    front: Front, skopeo: str, tmp_path: Path
) -> None:
    image = write_image(tmp_path / "src", "v1", layer_sizes=(3 * MiB, 1 * MiB, 3000))
    remote = f"docker://{front.nginx.address}/it/front:v1"

    await push(skopeo, front.nginx, image, "it/front")

    assert await skopeo_inspect_raw(skopeo, remote) == image.manifest
    back = tmp_path / "back"
    await skopeo_copy(skopeo, remote, f"oci:{back}:v1")
    assert layout_tag_digest(back, "v1") == image.manifest_digest
    assert read_blob(back, image.manifest_digest) == image.manifest
    for digest in image.blob_digests:
        assert read_blob(back, digest) == read_blob(image.layout, digest)

    # The layers reached the client without passing through the node's response body.
    layer = image.layers[0]
    lines = await wait_for_lines(
        front.node.log, f"/v2/it/front/blobs/{layer.digest}", lambda ls: len(ls) >= 1
    )
    gets = [line for line in lines if line["method"] == "GET"]
    assert gets, f"no GET of {layer.digest} in the node's log"
    assert all(line["status"] == 200 and line["out"] == 0 for line in gets), gets


async def test_blob_get_is_sent_by_nginx(front: Front, skopeo: str, tmp_path: Path) -> None:
    image = write_image(tmp_path / "src", "v1", layer_sizes=(2 * MiB,))
    await push(skopeo, front.nginx, image, "it/blob")
    layer = image.layers[0]
    data = read_blob(image.layout, layer.digest)
    path = f"/v2/it/blob/blobs/{layer.digest}"

    async with httpx.AsyncClient(base_url=front.nginx.url, timeout=30.0) as client:
        whole = await client.get(path)
        ranged = await client.get(path, headers={"Range": "bytes=1000-70999"})
        head = await client.head(path)
        cached = await client.get(path, headers={"If-None-Match": f'"{layer.digest}"'})
        manifest = await client.get("/v2/it/blob/manifests/v1", headers={"Accept": MANIFEST_ACCEPT})

    assert whole.status_code == 200
    assert whole.content == data
    assert whole.headers["Docker-Content-Digest"] == layer.digest
    assert whole.headers["ETag"] == f'"{layer.digest}"'
    assert whole.headers["Content-Type"] == "application/octet-stream"
    assert whole.headers["Content-Length"] == str(len(data))
    assert "X-Accel-Redirect" not in whole.headers  # nginx consumes it

    assert ranged.status_code == 206
    assert ranged.content == data[1000:71000]
    assert ranged.headers["Content-Range"] == f"bytes 1000-70999/{len(data)}"
    assert ranged.headers["Docker-Content-Digest"] == layer.digest

    assert head.status_code == 200
    assert head.headers["Content-Length"] == str(len(data))
    assert head.headers["Docker-Content-Digest"] == layer.digest
    assert cached.status_code == 304
    assert manifest.status_code == 200
    assert manifest.content == image.manifest

    # Proof that the bytes came from nginx: the node answered both GETs with 200 and an
    # empty body (its access log counts body bytes sent), while it sent the manifest's.
    def both_gets(lines: list[dict[str, Any]]) -> bool:
        return len([line for line in lines if line["method"] == "GET"]) >= 3

    lines = await wait_for_lines(front.node.log, path, both_gets)
    gets = [line for line in lines if line["method"] == "GET"]
    assert sorted(line["status"] for line in gets) == [200, 200, 304], gets
    assert all(line["out"] == 0 for line in gets), gets
    manifest_lines = await wait_for_lines(
        front.node.log, "/v2/it/blob/manifests/v1", lambda ls: len(ls) >= 1
    )
    assert manifest_lines[-1]["out"] == len(image.manifest)


async def test_blob_outside_repository_is_refused_through_nginx(
    front: Front, skopeo: str, tmp_path: Path
) -> None:
    image = write_image(tmp_path / "src", "v1", layer_sizes=(64 * 1024,))
    await push(skopeo, front.nginx, image, "it/owner")
    layer = image.layers[0]
    algorithm, hex_digest = layer.digest.split(":")
    missing = "sha256:" + "0" * 64

    async with httpx.AsyncClient(base_url=front.nginx.url, timeout=30.0) as client:
        other_repo = await client.get(f"/v2/it/other/blobs/{layer.digest}")
        unknown = await client.get(f"/v2/it/owner/blobs/{missing}")
        internal = await client.get(f"{ACCEL_PREFIX}{algorithm}/{hex_digest[:2]}/{hex_digest}")
        owner = await client.get(f"/v2/it/owner/blobs/{layer.digest}")

    for response in (other_repo, unknown):
        assert response.status_code == 404
        assert response.headers["Content-Type"] == "application/json"
        assert response.json()["errors"][0]["code"] == "BLOB_UNKNOWN"
    # The file exists on disk, but nginx serves it only on the node's say-so.
    assert internal.status_code == 404
    assert internal.content != read_blob(image.layout, layer.digest)
    assert owner.status_code == 200
    assert owner.content == read_blob(image.layout, layer.digest)
