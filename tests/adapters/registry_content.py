"""Content for adapter integration tests, pushed over plain HTTP (a registry with Basic
authentication: ``support.servers.run_docker_registry(workdir, users)``)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import httpx

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"



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
