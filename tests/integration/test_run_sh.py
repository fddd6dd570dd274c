"""``./run.sh``, the README's way to start Portmesh, brings up a working node."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from support.clients import head_manifest_digest, skopeo_copy
from support.images import write_image
from support.servers import REPO_ROOT, free_port, run_server

pytestmark = pytest.mark.integration


async def test_run_sh_serves_pushes_and_pulls(skopeo: str, tmp_path: Path) -> None:
    port = free_port()
    command = [
        "bash",
        str(REPO_ROOT / "run.sh"),
        "--listen",
        f"127.0.0.1:{port}",
        "--data",
        str(tmp_path / "data"),
    ]
    async with run_server("portmesh", command, port, tmp_path / "run.log") as node:
        image = write_image(tmp_path / "src", "v1", layer_sizes=(8192,))
        await skopeo_copy(skopeo, f"oci:{image.layout}:v1", f"docker://{node.address}/demo:v1")
        assert await head_manifest_digest(node, "demo", "v1") == image.manifest_digest
        async with httpx.AsyncClient(base_url=node.url) as client:
            catalog = (await client.get("/v2/_catalog")).json()
        assert catalog["repositories"] == ["demo"]
    assert (tmp_path / "data").is_dir()
    assert f"127.0.0.1:{port}" in node.log_tail()
