"""``./run.sh``, the README's way to start Portmesh, brings up a coordinator and a node
joined to it: a user logs in to the node with the coordinator's account, pushes, pulls."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from support.images import write_image
from support.servers import REPO_ROOT, free_port, run_server, run_tool

pytestmark = pytest.mark.integration

PASSWORD = "Run-sh-Passw0rd"


async def test_run_sh_serves_logged_in_pushes_and_pulls(skopeo: str, tmp_path: Path) -> None:
    port, api_port = free_port(), free_port()
    command = [
        "bash",
        str(REPO_ROOT / "run.sh"),
        "--listen",
        f"127.0.0.1:{port}",
        "--coordinator-listen",
        f"127.0.0.1:{api_port}",
        "--data",
        str(tmp_path / "data"),
    ]
    env = {**os.environ, "PORTMESH_ADMIN_PASSWORD": PASSWORD}
    log = tmp_path / "run.log"
    # the node asks for a login: GET /v2/ answers 401
    async with run_server("portmesh", command, port, log, env=env, ready=401) as node:
        api = f"http://127.0.0.1:{api_port}/api/v2.0"
        async with httpx.AsyncClient(base_url=api, auth=("admin", PASSWORD)) as http:
            created = await http.post("/projects", json={"project_name": "demo"})
            assert created.status_code == 201, created.text
        image = write_image(tmp_path / "src", "v1", layer_sizes=(8192,))
        reference = f"docker://{node.address}/demo/app:v1"
        credentials = f"admin:{PASSWORD}"
        await run_tool(
            [skopeo, "--insecure-policy", "copy", "--quiet", "--preserve-digests",
             "--dest-tls-verify=false", "--dest-creds", credentials,
             f"oci:{image.layout}:v1", reference]
        )  # fmt: skip
        raw = await run_tool(
            [skopeo, "inspect", "--raw", "--tls-verify=false", "--creds", credentials, reference]
        )
        assert raw == image.manifest
        async with httpx.AsyncClient(base_url=node.url) as anonymous:
            refused = await anonymous.get("/v2/demo/app/manifests/v1")
        assert refused.status_code == 401, "a private project needs a login"
    assert (tmp_path / "data" / "coordinator").is_dir()
    assert (tmp_path / "data" / "node").is_dir()
    text = log.read_text()
    assert f"127.0.0.1:{port}" in text
    assert "skopeo login" in text
