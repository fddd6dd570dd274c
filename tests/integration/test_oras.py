"""oras-py pushes artifacts that refer to an image (``subject``); the referrers API finds them.

docker-registry has no referrers API, so these run against the Portmesh node only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
import oras.client
import oras.oci
import pytest
import trio

from support.clients import skopeo_copy
from support.images import OCI_INDEX, OCI_MANIFEST, Image, MiB, write_image
from support.servers import Server

pytestmark = pytest.mark.integration

SBOM_TYPE = "application/vnd.example.sbom.v1"
SIGNATURE_TYPE = "application/vnd.example.signature.v1"


def oras_push(
    server: Server,
    target: str,
    file: Path,
    file_type: str,
    artifact_type: str,
    subject: Image,
    *,
    chunked: bool,
) -> dict[str, str]:
    """Push ``file`` as an artifact whose subject is ``subject``; returns the manifest PUT's
    response headers, names in lower case.

    oras-py writes no ``artifactType`` field, so the artifact's type is its config's media
    type (an empty ``{}`` config), which the referrers API must report as artifactType.
    """
    client = oras.client.OrasClient(hostname=server.address, insecure=True)
    response = client.push(
        target=f"{server.address}/{target}",
        files=[f"{file}:{file_type}"],
        manifest_config=f"{file.parent / 'no-such-config'}:{artifact_type}",
        manifest_annotations={"org.example.kind": artifact_type.rsplit(".", 2)[-2]},
        subject=oras.oci.Subject(OCI_MANIFEST, subject.manifest_digest, len(subject.manifest)),
        disable_path_validation=True,
        do_chunked=chunked,
        chunk_size=256 * 1024,
        quiet=True,
    )
    assert response.status_code == 201, response.text
    return {name.lower(): value for name, value in response.headers.items()}


def oras_pull(server: Server, target: str, outdir: Path) -> dict[str, bytes]:
    """Pull artifact ``target`` into ``outdir``; returns file name -> content."""
    client = oras.client.OrasClient(hostname=server.address, insecure=True)
    files: list[str] = client.pull(target=f"{server.address}/{target}", outdir=str(outdir))
    return {Path(file).name: Path(file).read_bytes() for file in files}


async def get_referrers(
    server: Server, repository: str, digest: str, artifact_type: str | None = None
) -> tuple[httpx.Response, dict[str, Any]]:
    params = {"artifactType": artifact_type} if artifact_type else None
    async with httpx.AsyncClient(base_url=server.url, timeout=30.0) as client:
        response = await client.get(f"/v2/{repository}/referrers/{digest}", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].split(";")[0] == OCI_INDEX
    body = response.json()
    assert body["schemaVersion"] == 2
    assert body["mediaType"] == OCI_INDEX
    return response, body


async def test_oras_artifacts_and_referrers(
    portmesh_node: Server, skopeo: str, tmp_path: Path
) -> None:
    node = portmesh_node
    image = write_image(tmp_path / "src", "v1", layer_sizes=(256 * 1024,))
    await skopeo_copy(skopeo, f"oci:{image.layout}:v1", f"docker://{node.address}/it/app:v1")

    files = tmp_path / "files"
    files.mkdir()
    sbom = files / "sbom.spdx.json"
    sbom.write_bytes(json.dumps({"spdxVersion": "SPDX-2.3", "pad": os.urandom(MiB).hex()}).encode())
    signature = files / "signature.bin"
    signature.write_bytes(os.urandom(600))

    sbom_headers = await trio.to_thread.run_sync(
        lambda: oras_push(
            node, "it/app:sbom", sbom, "application/spdx+json", SBOM_TYPE, image, chunked=True
        )
    )
    signature_headers = await trio.to_thread.run_sync(
        lambda: oras_push(
            node,
            "it/app:signature",
            signature,
            "application/octet-stream",
            SIGNATURE_TYPE,
            image,
            chunked=False,
        )
    )
    for headers in (sbom_headers, signature_headers):
        # A registry that processes `subject` says so (distribution-spec v1.1).
        assert headers.get("oci-subject") == image.manifest_digest
    sbom_digest = sbom_headers["docker-content-digest"]
    signature_digest = signature_headers["docker-content-digest"]

    # Pulled back byte for byte.
    pulled = await trio.to_thread.run_sync(lambda: oras_pull(node, "it/app:sbom", tmp_path / "o"))
    assert pulled == {sbom.name: sbom.read_bytes()}

    # All referrers of the image.
    response, body = await get_referrers(node, "it/app", image.manifest_digest)
    by_digest = {entry["digest"]: entry for entry in body["manifests"]}
    assert set(by_digest) == {sbom_digest, signature_digest}
    for digest, artifact_type in ((sbom_digest, SBOM_TYPE), (signature_digest, SIGNATURE_TYPE)):
        entry = by_digest[digest]
        assert entry["mediaType"] == OCI_MANIFEST
        assert entry["artifactType"] == artifact_type
        assert entry["annotations"]["org.example.kind"] == artifact_type.rsplit(".", 2)[-2]
        async with httpx.AsyncClient(base_url=node.url) as client:
            manifest = await client.get(
                f"/v2/it/app/manifests/{digest}", headers={"Accept": OCI_MANIFEST}
            )
        assert entry["size"] == len(manifest.content)
        assert json.loads(manifest.content)["subject"]["digest"] == image.manifest_digest
    assert "OCI-Filters-Applied" not in response.headers

    # Filtered by artifactType.
    response, body = await get_referrers(node, "it/app", image.manifest_digest, SBOM_TYPE)
    assert [entry["digest"] for entry in body["manifests"]] == [sbom_digest]
    assert response.headers.get("OCI-Filters-Applied") == "artifactType"
    response, body = await get_referrers(
        node, "it/app", image.manifest_digest, "application/vnd.example.none"
    )
    assert body["manifests"] == []

    # A manifest nothing refers to has an empty (not missing) referrers list.
    _, body = await get_referrers(node, "it/app", sbom_digest)
    assert body["manifests"] == []
