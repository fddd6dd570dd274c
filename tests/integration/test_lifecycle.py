"""Tags, deletes, restarts and several workers, seen through skopeo."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import trio

from support.clients import (
    MANIFEST_ACCEPT,
    head_manifest_digest,
    skopeo_copy,
    skopeo_inspect_raw,
)
from support.images import MiB, layout_tag_digest, read_blob, write_image, write_multiarch_image
from support.servers import Server, run_node, run_tool

pytestmark = pytest.mark.integration


async def test_list_tags_and_delete(registry_target: Server, skopeo: str, tmp_path: Path) -> None:
    layout = tmp_path / "src"
    images = [write_image(layout, f"t{n}", layer_sizes=(4096,)) for n in range(3)]
    repo = f"docker://{registry_target.address}/it/tags"
    for image in images:
        await skopeo_copy(skopeo, f"oci:{layout}:{image.tag}", f"{repo}:{image.tag}")

    listed = json.loads(await run_tool([skopeo, "list-tags", "--tls-verify=false", repo]))
    assert listed["Repository"] == f"{registry_target.address}/it/tags"
    assert sorted(listed["Tags"]) == ["t0", "t1", "t2"]

    doomed = images[1]
    await run_tool([skopeo, "delete", "--tls-verify=false", f"{repo}@{doomed.manifest_digest}"])
    async with httpx.AsyncClient(base_url=registry_target.url, timeout=30.0) as client:
        gone = await client.get(
            f"/v2/it/tags/manifests/{doomed.manifest_digest}", headers={"Accept": MANIFEST_ACCEPT}
        )
    assert gone.status_code == 404
    assert gone.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    listed = json.loads(await run_tool([skopeo, "list-tags", "--tls-verify=false", repo]))
    assert sorted(listed["Tags"]) == ["t0", "t2"]
    # The others are untouched.
    assert await skopeo_inspect_raw(skopeo, f"{repo}:t2") == images[2].manifest


async def test_content_survives_restart(skopeo: str, tmp_path: Path) -> None:
    image = write_image(tmp_path / "src", "v1", layer_sizes=(2 * MiB,))
    workdir = tmp_path / "node"
    async with run_node(workdir) as node:
        await skopeo_copy(skopeo, f"oci:{image.layout}:v1", f"docker://{node.address}/it/keep:v1")
    async with run_node(workdir) as node:
        assert await head_manifest_digest(node, "it/keep", "v1") == image.manifest_digest
        back = tmp_path / "back"
        await skopeo_copy(skopeo, f"docker://{node.address}/it/keep:v1", f"oci:{back}:v1")
    assert layout_tag_digest(back, "v1") == image.manifest_digest
    for digest in image.blob_digests:
        read_blob(back, digest)


async def test_two_workers_serve_the_same_content(skopeo: str, tmp_path: Path) -> None:
    """With ``--workers 2`` pushes land in one process and pulls may hit the other."""
    index = write_multiarch_image(tmp_path / "src", "multi", layer_sizes=(1 * MiB,))
    async with run_node(tmp_path / "node", "--workers", "2") as node:
        remote = f"docker://{node.address}/it/workers"
        await skopeo_copy(skopeo, f"oci:{index.layout}:multi", f"{remote}:multi", all_images=True)

        async def pull(n: int) -> None:
            out = tmp_path / f"back{n}"
            await skopeo_copy(skopeo, f"{remote}:multi", f"oci:{out}:multi", all_images=True)
            assert layout_tag_digest(out, "multi") == index.index_digest
            for image in index.images:
                assert read_blob(out, image.manifest_digest) == image.manifest

        async with trio.open_nursery() as nursery:
            for n in range(4):
                nursery.start_soon(pull, n)
        for _ in range(20):
            assert await head_manifest_digest(node, "it/workers", "multi") == index.index_digest
