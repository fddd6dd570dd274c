"""skopeo copies between docker-registry (the reference registry) and a Portmesh node.

Whichever way an image goes, both registries must hold the same manifest bytes under
the same digest, and every blob must be fetchable from the receiving side.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from support.clients import digest_of, head_manifest_digest, skopeo_copy, skopeo_inspect_raw
from support.images import MiB, write_image, write_multiarch_image
from support.servers import Server

pytestmark = pytest.mark.integration


async def assert_blobs_served(server: Server, repository: str, digests: tuple[str, ...]) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=60.0) as client:
        for digest in digests:
            response = await client.get(f"/v2/{repository}/blobs/{digest}", follow_redirects=True)
            assert response.status_code == 200, f"{server.kind}: blob {digest}"
            assert digest_of(response.content) == digest


@pytest.mark.parametrize("direction", ["docker-registry->portmesh", "portmesh->docker-registry"])
@pytest.mark.parametrize("kind", ["image", "index"])
async def test_copy_between_registries(
    portmesh_node: Server,
    docker_registry: Server,
    skopeo: str,
    tmp_path: Path,
    direction: str,
    kind: str,
) -> None:
    source, dest = (
        (docker_registry, portmesh_node)
        if direction.startswith("docker-registry")
        else (portmesh_node, docker_registry)
    )
    layout = tmp_path / "src"
    if kind == "image":
        image = write_image(layout, "v1", layer_sizes=(3 * MiB, 100 * 1024))
        digest, blobs = image.manifest_digest, image.blob_digests
    else:
        index = write_multiarch_image(layout, "v1", layer_sizes=(1 * MiB,))
        digest = index.index_digest
        blobs = tuple(blob for image in index.images for blob in image.blob_digests)
    src_ref = f"docker://{source.address}/it/interop:v1"
    dest_ref = f"docker://{dest.address}/mirror/interop:v1"

    await skopeo_copy(skopeo, f"oci:{layout}:v1", src_ref, all_images=True)
    await skopeo_copy(skopeo, src_ref, dest_ref, all_images=True)

    source_raw = await skopeo_inspect_raw(skopeo, src_ref)
    dest_raw = await skopeo_inspect_raw(skopeo, dest_ref)
    assert source_raw == dest_raw
    assert digest_of(dest_raw) == digest
    assert await head_manifest_digest(source, "it/interop", "v1") == digest
    assert await head_manifest_digest(dest, "mirror/interop", "v1") == digest
    await assert_blobs_served(dest, "mirror/interop", blobs)
