"""skopeo copies images into and out of the registry under test, byte for byte.

Images are OCI layouts written by Python; an image that goes layout -> registry -> layout
must come back with the same manifest digest and the same blobs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support.clients import digest_of, head_manifest_digest, skopeo_copy, skopeo_inspect_raw
from support.images import (
    OCI_INDEX,
    MiB,
    layout_tag_digest,
    read_blob,
    write_image,
    write_multiarch_image,
)
from support.servers import Server

pytestmark = pytest.mark.integration


def assert_layout_has_blobs(layout: Path, digests: tuple[str, ...]) -> None:
    for digest in digests:
        read_blob(layout, digest)  # raises if missing, asserts the bytes hash right


async def test_single_image_round_trip(
    registry_target: Server, skopeo: str, tmp_path: Path
) -> None:
    image = write_image(tmp_path / "src", "v1", layer_sizes=(2 * MiB, 1 * MiB, 3000))
    remote = f"docker://{registry_target.address}/it/single:v1"

    await skopeo_copy(skopeo, f"oci:{image.layout}:v1", remote)

    raw = await skopeo_inspect_raw(skopeo, remote)
    assert raw == image.manifest
    assert await head_manifest_digest(registry_target, "it/single", "v1") == image.manifest_digest
    by_digest = await skopeo_inspect_raw(
        skopeo, f"docker://{registry_target.address}/it/single@{image.manifest_digest}"
    )
    assert digest_of(by_digest) == image.manifest_digest

    back = tmp_path / "back"
    await skopeo_copy(skopeo, remote, f"oci:{back}:v1")
    assert layout_tag_digest(back, "v1") == image.manifest_digest
    assert read_blob(back, image.manifest_digest) == image.manifest
    assert_layout_has_blobs(back, image.blob_digests)


async def test_multiarch_index_round_trip(
    registry_target: Server, skopeo: str, tmp_path: Path
) -> None:
    index = write_multiarch_image(tmp_path / "src", "multi", layer_sizes=(1 * MiB, 512 * 1024))
    remote = f"docker://{registry_target.address}/it/multi:multi"

    await skopeo_copy(skopeo, f"oci:{index.layout}:multi", remote, all_images=True)

    raw = await skopeo_inspect_raw(skopeo, remote)
    assert raw == index.index
    assert json.loads(raw)["mediaType"] == OCI_INDEX
    assert await head_manifest_digest(registry_target, "it/multi", "multi") == index.index_digest
    for image in index.images:
        child = await skopeo_inspect_raw(
            skopeo, f"docker://{registry_target.address}/it/multi@{image.manifest_digest}"
        )
        assert child == image.manifest

    back = tmp_path / "back"
    await skopeo_copy(skopeo, remote, f"oci:{back}:multi", all_images=True)
    assert layout_tag_digest(back, "multi") == index.index_digest
    assert read_blob(back, index.index_digest) == index.index
    for image in index.images:
        assert read_blob(back, image.manifest_digest) == image.manifest
        assert_layout_has_blobs(back, image.blob_digests)


async def test_copy_of_one_platform_from_index(
    registry_target: Server, skopeo: str, tmp_path: Path
) -> None:
    """Without --all skopeo resolves the index to one platform, as a pulling runtime does."""
    index = write_multiarch_image(tmp_path / "src", "multi", layer_sizes=(256 * 1024,))
    remote = f"docker://{registry_target.address}/it/pick:multi"
    await skopeo_copy(skopeo, f"oci:{index.layout}:multi", remote, all_images=True)

    back = tmp_path / "arm64"
    await skopeo_copy(
        skopeo,
        remote,
        f"oci:{back}:arm64",
        global_args=["--override-arch=arm64", "--override-os=linux"],
    )
    arm64 = index.for_platform("linux", "arm64")
    assert layout_tag_digest(back, "arm64") == arm64.manifest_digest
    assert_layout_has_blobs(back, arm64.blob_digests)


async def test_large_layer_round_trip(registry_target: Server, skopeo: str, tmp_path: Path) -> None:
    """A layer big enough that nothing fits in one buffer: streamed in and out intact."""
    image = write_image(tmp_path / "src", "big", layer_sizes=(96 * MiB,))
    remote = f"docker://{registry_target.address}/it/big:big"
    await skopeo_copy(skopeo, f"oci:{image.layout}:big", remote)
    back = tmp_path / "back"
    await skopeo_copy(skopeo, remote, f"oci:{back}:big")
    assert layout_tag_digest(back, "big") == image.manifest_digest
    assert_layout_has_blobs(back, image.blob_digests)
