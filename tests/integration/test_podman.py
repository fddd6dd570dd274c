"""podman pulls images from the registry under test into its own (temporary) storage."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import pytest

from support.clients import skopeo_copy
from support.images import MiB, read_blob, write_image, write_multiarch_image
from support.servers import Server, podman_env, run_tool

pytestmark = pytest.mark.integration

HOST_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


async def podman_inspect(podman: str, env: dict[str, str], reference: str) -> dict[str, Any]:
    output = await run_tool([podman, "image", "inspect", reference], env=env)
    (info,) = json.loads(output)
    assert isinstance(info, dict)
    return info


async def test_podman_pull_by_tag_and_digest(
    registry_target: Server, skopeo: str, podman: str, tmp_path: Path
) -> None:
    image = write_image(tmp_path / "src", "v1", layer_sizes=(2 * MiB, 64 * 1024))
    reference = f"{registry_target.address}/it/podman"
    await skopeo_copy(skopeo, f"oci:{image.layout}:v1", f"docker://{reference}:v1")
    env = podman_env(tmp_path / "podman", [registry_target.address])

    await run_tool([podman, "pull", "--quiet", "--tls-verify=false", f"{reference}:v1"], env=env)
    info = await podman_inspect(podman, env, f"{reference}:v1")
    assert info["Digest"] == image.manifest_digest
    assert f"{reference}@{image.manifest_digest}" in info["RepoDigests"]
    config = json.loads(read_blob(image.layout, image.config.digest))
    assert info["RootFS"]["Layers"] == config["rootfs"]["diff_ids"]

    # Pull again by digest into fresh storage: the same image.
    env2 = podman_env(tmp_path / "podman2", [registry_target.address])
    by_digest = f"{reference}@{image.manifest_digest}"
    await run_tool([podman, "pull", "--quiet", "--tls-verify=false", by_digest], env=env2)
    info2 = await podman_inspect(podman, env2, by_digest)
    assert info2["Id"] == info["Id"]


async def test_podman_pull_multiarch_picks_host_platform(
    registry_target: Server, skopeo: str, podman: str, tmp_path: Path
) -> None:
    index = write_multiarch_image(tmp_path / "src", "multi", layer_sizes=(512 * 1024,))
    reference = f"{registry_target.address}/it/podman-multi"
    await skopeo_copy(
        skopeo, f"oci:{index.layout}:multi", f"docker://{reference}:multi", all_images=True
    )
    env = podman_env(tmp_path / "podman", [registry_target.address])

    await run_tool([podman, "pull", "--quiet", "--tls-verify=false", f"{reference}:multi"], env=env)
    info = await podman_inspect(podman, env, f"{reference}:multi")
    mine = index.for_platform("linux", HOST_ARCH)
    assert info["Architecture"] == HOST_ARCH
    # podman records the digest it pulled by (the index) and the platform manifest's.
    assert info["Digest"] == index.index_digest
    assert set(info["RepoDigests"]) == {
        f"{reference}@{index.index_digest}",
        f"{reference}@{mine.manifest_digest}",
    }
    config = json.loads(read_blob(mine.layout, mine.config.digest))
    assert info["RootFS"]["Layers"] == config["rootfs"]["diff_ids"]
