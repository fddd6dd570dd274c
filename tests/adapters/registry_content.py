"""Content for adapter integration tests, pushed over plain HTTP (a registry with Basic
authentication: ``support.servers.run_docker_registry(workdir, users)``)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import httpx

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"


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
    await push_blobs(client, base, repo, config, layer)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER, "digest": sha256(layer), "size": len(layer)}],
        },
        indent=1,
    ).encode()
    await put_manifest(client, base, repo, tag, manifest, OCI_MANIFEST)
    return Pushed(repo, tag, manifest, sha256(manifest), layer, sha256(layer))


async def push_blobs(client: httpx.AsyncClient, base: str, repo: str, *blobs: bytes) -> None:
    """Monolithic uploads of ``blobs`` into ``repo``."""
    for blob in blobs:
        start = await client.post(f"{base}/v2/{repo}/blobs/uploads/")
        assert start.status_code == 202, start.text
        location = httpx.URL(base).join(start.headers["location"])
        location = location.copy_merge_params({"digest": sha256(blob)})
        done = await client.put(location, content=blob)
        assert done.status_code == 201, done.text


async def put_manifest(
    client: httpx.AsyncClient, base: str, repo: str, reference: str, body: bytes, media_type: str
) -> None:
    put = await client.put(
        f"{base}/v2/{repo}/manifests/{reference}",
        content=body,
        headers={"Content-Type": media_type},
    )
    assert put.status_code == 201, put.text


async def push_referrer(
    client: httpx.AsyncClient, base: str, subject: Pushed, artifact_type: str, payload: bytes
) -> str:
    """Push an artifact whose ``subject`` is the image ``subject`` as a client does for a
    registry without the referrers API: the artifact manifest by digest, then the
    referrers tag schema's index (tag ``sha256-<hex>`` of the subject) listing it. Any
    referrers already in that index are kept. Returns the artifact manifest's digest."""
    empty = b"{}"
    await push_blobs(client, base, subject.repo, empty, payload)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": {"mediaType": OCI_EMPTY, "digest": sha256(empty), "size": len(empty)},
            "layers": [
                {"mediaType": artifact_type, "digest": sha256(payload), "size": len(payload)}
            ],
            "subject": {
                "mediaType": OCI_MANIFEST,
                "digest": subject.manifest_digest,
                "size": len(subject.manifest),
            },
        }
    ).encode()
    digest = sha256(manifest)
    await put_manifest(client, base, subject.repo, digest, manifest, OCI_MANIFEST)
    tag = subject.manifest_digest.replace(":", "-")
    existing = await client.get(
        f"{base}/v2/{subject.repo}/manifests/{tag}", headers={"Accept": OCI_INDEX}
    )
    entries = existing.json()["manifests"] if existing.status_code == 200 else []
    entries.append(
        {
            "mediaType": OCI_MANIFEST,
            "digest": digest,
            "size": len(manifest),
            "artifactType": artifact_type,
        }
    )
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
    await put_manifest(client, base, subject.repo, tag, index.encode(), OCI_INDEX)
    return digest
