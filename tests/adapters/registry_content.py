"""Content for adapter integration tests, pushed over plain HTTP, and a docker-registry
with htpasswd (Basic) authentication.

``run_docker_registry`` in tests/support waits for ``GET /v2/`` to answer 200, which a
registry with auth never does; :func:`run_basic_auth_registry` waits for its 401 instead.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import httpx
import pytest
import trio

from support.servers import Server, free_port, require_binary

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"

AUTH_CONFIG = """\
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
http:
  addr: 127.0.0.1:{port}
auth:
  htpasswd:
    realm: portmesh-tests
    path: {htpasswd}
"""


def sha256(data: bytes) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Pushed:
    repo: str
    tag: str
    manifest: bytes
    manifest_digest: str
    layer: bytes
    layer_digest: str


async def push_image(
    client: httpx.AsyncClient, base: str, repo: str, tag: str, layer: bytes
) -> Pushed:
    """Push a one-layer OCI image (monolithic blob uploads, then the manifest)."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "tag": tag}).encode()
    for blob in (config, layer):
        start = await client.post(f"{base}/v2/{repo}/blobs/uploads/")
        assert start.status_code == 202, start.text
        location = httpx.URL(base).join(start.headers["location"])
        location = location.copy_merge_params({"digest": sha256(blob)})
        done = await client.put(location, content=blob)
        assert done.status_code == 201, done.text
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER, "digest": sha256(layer), "size": len(layer)}],
        },
        indent=1,
    ).encode()
    put = await client.put(
        f"{base}/v2/{repo}/manifests/{tag}",
        content=manifest,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert put.status_code == 201, put.text
    return Pushed(repo, tag, manifest, sha256(manifest), layer, sha256(layer))


def _write_config(workdir: Path, port: int, users: dict[str, str]) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    htpasswd = workdir / "htpasswd"
    htpasswd.write_text(
        "".join(
            f"{name}:{bcrypt.hashpw(pw.encode(), bcrypt.gensalt(rounds=5)).decode()}\n"
            for name, pw in users.items()
        )
    )
    config = workdir / "config.yml"
    config.write_text(AUTH_CONFIG.format(root=workdir / "storage", port=port, htpasswd=htpasswd))
    return config


@asynccontextmanager
async def run_basic_auth_registry(workdir: Path, users: dict[str, str]) -> AsyncIterator[Server]:
    """docker-registry requiring HTTP Basic for ``users`` (name -> password)."""
    binary = require_binary("docker-registry")
    port = free_port()
    config = _write_config(workdir, port, users)
    log = workdir / "registry.log"
    server = Server("docker-registry", "127.0.0.1", port, log)
    with open(log, "ab") as log_file:  # noqa: ASYNC230 - opening a log file is instant
        process = await trio.lowlevel.open_process(
            [binary, "serve", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
        )
    try:
        async with httpx.AsyncClient(timeout=2.0) as client:
            with trio.move_on_after(30) as waited:
                while True:
                    try:
                        if (await client.get(f"{server.url}/v2/")).status_code == 401:
                            break
                    except httpx.TransportError:
                        pass
                    await trio.sleep(0.1)
        if waited.cancelled_caught:
            pytest.fail(f"docker-registry with htpasswd did not start:\n{server.log_tail()}")
        yield server
    finally:
        with trio.CancelScope(shield=True):
            process.terminate()
            with trio.move_on_after(10):
                await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()
