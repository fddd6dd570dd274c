"""Helpers for the OCI Distribution API tests: an in-process node and a tiny OCI client.

Everything talks real HTTP to a real node; nothing here knows how the node works inside.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import trio

from node.app import serve
from node.config import NodeConfig

__all__ = [
    "DOCKER_CONFIG",
    "DOCKER_LAYER",
    "DOCKER_LIST",
    "DOCKER_MANIFEST",
    "EMPTY_CONFIG",
    "EMPTY_JSON",
    "OCI_CONFIG",
    "OCI_EMPTY",
    "OCI_INDEX",
    "OCI_LAYER",
    "OCI_MANIFEST",
    "REQUEST_TIMEOUT",
    "Pushed",
    "RunningNode",
    "assert_error",
    "blob_url",
    "digest_of",
    "image_manifest",
    "make_config",
    "push_blob",
    "push_image",
    "push_manifest",
    "raw_request",
    "start_node",
    "start_upload",
    "with_digest",
]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
#: The standard empty JSON blob of image-spec v1.1 and its descriptor.
EMPTY_JSON = b"{}"
EMPTY_CONFIG = {
    "mediaType": OCI_EMPTY,
    "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
    "size": 2,
}

REQUEST_TIMEOUT = float(os.environ.get("PORTMESH_TEST_HTTP_TIMEOUT", "60"))


# --- the node under test ---------------------------------------------------------------


class RunningNode:
    """One in-process node and an HTTP client for it; its server task lives in ``nursery``."""

    def __init__(self, nursery: trio.Nursery, config: NodeConfig) -> None:
        self.nursery = nursery
        self.config = config
        self.port = 0
        self.client = httpx.AsyncClient(timeout=REQUEST_TIMEOUT)
        self._scope: trio.CancelScope | None = None
        self._stopped = trio.Event()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        """Start serving; returns once the node listens. The client follows the new port."""
        self._scope = trio.CancelScope()
        self._stopped = trio.Event()
        self.port = await self.nursery.start(self._run)
        await self.client.aclose()
        self.client = httpx.AsyncClient(base_url=self.base_url, timeout=REQUEST_TIMEOUT)

    async def _run(self, *, task_status: trio.TaskStatus[int]) -> None:
        assert self._scope is not None
        try:
            with self._scope:
                await serve(self.config, task_status=task_status)
        finally:
            self._stopped.set()

    async def stop(self) -> None:
        """Cancel the server and wait until it has shut down (its stores closed)."""
        if self._scope is not None:
            await self.client.aclose()
            self._scope.cancel()
            await self._stopped.wait()
            self._scope = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def aclose(self) -> None:
        await self.client.aclose()
        await self.stop()


def make_config(data: Path, **settings: Any) -> NodeConfig:
    return NodeConfig(data=data, listen="127.0.0.1:0", no_auth=True, **settings)


async def start_node(nursery: trio.Nursery, config: NodeConfig) -> RunningNode:
    running = RunningNode(nursery, config)
    await running.start()
    return running


# --- digests and assertions ------------------------------------------------------------


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def blob_url(repo: str, digest: str) -> str:
    return f"/v2/{repo}/blobs/{digest}"


def with_digest(location: str, digest: str) -> httpx.URL:
    """The upload URL ``location`` with ``digest=`` added to whatever query it has."""
    return httpx.URL(location).copy_merge_params({"digest": digest})


def assert_error(response: httpx.Response, status: int | tuple[int, ...], *codes: str) -> None:
    """The response has one of the ``status`` values and an OCI error body whose first
    error code is one of ``codes``."""
    statuses = (status,) if isinstance(status, int) else status
    assert response.status_code in statuses, (
        f"expected HTTP {statuses}, got {response.status_code}: {response.text[:300]}"
    )
    if not codes:
        return
    try:
        doc = response.json()
    except ValueError as exc:
        raise AssertionError(f"error body is not JSON: {response.text[:300]!r}") from exc
    errors = doc.get("errors")
    assert isinstance(errors, list) and errors, f"no errors list in {doc}"
    assert all("code" in e and "message" in e for e in errors), doc
    assert errors[0]["code"] in codes, f"expected code in {codes}, got {errors}"


# --- pushing ---------------------------------------------------------------------------


async def push_blob(
    client: httpx.AsyncClient, repo: str, data: bytes, algorithm: str = "sha256"
) -> str:
    """Single-POST push (or POST then PUT where a registry answers the POST with a session,
    as the spec allows); returns the digest. ``test_monolithic_post_with_digest`` checks
    that Portmesh takes the single POST."""
    digest = digest_of(data, algorithm)
    headers = {"Content-Type": "application/octet-stream"}
    response = await client.post(
        f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=data, headers=headers
    )
    if response.status_code == 202:
        location = response.headers["Location"]
        response = await client.put(with_digest(location, digest), content=data, headers=headers)
    assert response.status_code == 201, response.text
    return digest


async def start_upload(client: httpx.AsyncClient, repo: str) -> str:
    """POST a new upload session; returns its Location."""
    response = await client.post(f"/v2/{repo}/blobs/uploads/")
    assert response.status_code == 202, response.text
    return response.headers["Location"]


def image_manifest(
    config: dict[str, Any],
    layers: list[dict[str, Any]],
    *,
    media_type: str = OCI_MANIFEST,
    **extra: Any,
) -> bytes:
    doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": media_type, "config": config}
    doc["layers"] = layers
    doc.update(extra)
    return json.dumps(doc, indent=2).encode()


async def push_manifest(
    client: httpx.AsyncClient,
    repo: str,
    reference: str,
    body: bytes,
    media_type: str = OCI_MANIFEST,
) -> httpx.Response:
    return await client.put(
        f"/v2/{repo}/manifests/{reference}",
        content=body,
        headers={"Content-Type": media_type},
    )


@dataclass(frozen=True)
class Pushed:
    """A manifest pushed by ``push_image``: its bytes, digest and the blobs it references."""

    body: bytes
    digest: str
    media_type: str
    blobs: tuple[str, ...]

    def descriptor(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.body)}


async def push_image(
    client: httpx.AsyncClient,
    repo: str,
    reference: str | None = None,
    *,
    seed: str = "layer",
    docker: bool = False,
    **extra: Any,
) -> Pushed:
    """Push a config, one layer and a manifest (by ``reference``, else by digest)."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}).encode()
    layer = f"layer bytes for {seed}".encode() * 3
    config_digest = await push_blob(client, repo, config)
    layer_digest = await push_blob(client, repo, layer)
    media_type = DOCKER_MANIFEST if docker else OCI_MANIFEST
    body = image_manifest(
        {
            "mediaType": DOCKER_CONFIG if docker else OCI_CONFIG,
            "digest": config_digest,
            "size": len(config),
        },
        [
            {
                "mediaType": DOCKER_LAYER if docker else OCI_LAYER,
                "digest": layer_digest,
                "size": len(layer),
            }
        ],
        media_type=media_type,
        **extra,
    )
    digest = digest_of(body)
    response = await push_manifest(client, repo, reference or digest, body, media_type)
    assert response.status_code == 201, response.text
    return Pushed(body, digest, media_type, (config_digest, layer_digest))


# --- raw HTTP (paths that httpx would normalize) ----------------------------------------


async def raw_request(port: int, method: str, target: str) -> tuple[int, bytes]:
    """Send ``METHOD target HTTP/1.1`` verbatim; returns (status, body)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        request = (
            f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
        ).encode()
        await stream.send_all(request)
        data = b""
        with trio.fail_after(REQUEST_TIMEOUT):
            while b"\r\n\r\n" not in data:
                chunk = await stream.receive_some(65536)
                assert chunk, f"connection closed before the response head: {data!r}"
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                key, _, value = line.partition(b":")
                if key.strip().lower() == b"content-length":
                    length = int(value.strip())
            while len(body) < length:
                chunk = await stream.receive_some(65536)
                assert chunk, "connection closed before the whole body"
                body += chunk
    status = int(head.split(b" ", 2)[1])
    return status, body
