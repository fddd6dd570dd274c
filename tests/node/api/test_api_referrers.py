"""The referrers API: GET /v2/<name>/referrers/<digest> (distribution-spec v1.1)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from oci_helpers import (
    EMPTY_CONFIG,
    EMPTY_JSON,
    OCI_INDEX,
    OCI_MANIFEST,
    Pushed,
    assert_error,
    digest_of,
    image_manifest,
    push_blob,
    push_image,
    push_manifest,
)

REPO = "library/referred"
SIG = "application/vnd.example.signature"
SBOM = "application/vnd.example.sbom"


async def push_referrer(
    client: httpx.AsyncClient,
    repo: str,
    subject: Pushed,
    artifact_type: str | None,
    *,
    annotations: dict[str, str] | None = None,
    config_media_type: str | None = None,
) -> tuple[bytes, str]:
    """Push a manifest whose ``subject`` is ``subject``; returns (body, digest)."""
    await push_blob(client, repo, EMPTY_JSON)
    config = dict(EMPTY_CONFIG)
    if config_media_type:
        config["mediaType"] = config_media_type
    extra: dict[str, Any] = {"subject": subject.descriptor()}
    if artifact_type:
        extra["artifactType"] = artifact_type
    if annotations:
        extra["annotations"] = annotations
    body = image_manifest(config, [EMPTY_CONFIG], **extra)
    response = await push_manifest(client, repo, digest_of(body), body)
    assert response.status_code == 201, response.text
    return body, digest_of(body)


async def get_referrers(
    client: httpx.AsyncClient, repo: str, digest: str, **params: str
) -> httpx.Response:
    return await client.get(f"/v2/{repo}/referrers/{digest}", params=params)


def assert_index(response: httpx.Response) -> list[dict]:
    assert response.status_code == 200, response.text[:300]
    assert response.headers["Content-Type"] == OCI_INDEX
    doc = response.json()
    assert doc["schemaVersion"] == 2
    assert doc["mediaType"] == OCI_INDEX
    assert isinstance(doc["manifests"], list)
    return doc["manifests"]


async def test_referrers_lists_descriptors(client: httpx.AsyncClient) -> None:
    subject = await push_image(client, REPO, "v1")
    sig_body, sig_digest = await push_referrer(
        client, REPO, subject, SIG, annotations={"org.example.signed-by": "alice"}
    )
    sbom_body, sbom_digest = await push_referrer(client, REPO, subject, SBOM)

    manifests = assert_index(await get_referrers(client, REPO, subject.digest))
    by_digest = {m["digest"]: m for m in manifests}
    assert set(by_digest) == {sig_digest, sbom_digest}
    sig = by_digest[sig_digest]
    assert sig["mediaType"] == OCI_MANIFEST
    assert sig["size"] == len(sig_body)
    assert sig["artifactType"] == SIG
    assert sig["annotations"] == {"org.example.signed-by": "alice"}
    sbom = by_digest[sbom_digest]
    assert sbom["size"] == len(sbom_body)
    assert sbom["artifactType"] == SBOM


async def test_artifact_type_falls_back_to_config_media_type(client: httpx.AsyncClient) -> None:
    subject = await push_image(client, REPO, "v1")
    await push_blob(client, REPO, EMPTY_JSON)
    _, digest = await push_referrer(
        client, REPO, subject, None, config_media_type="application/vnd.example.config"
    )
    manifests = assert_index(await get_referrers(client, REPO, subject.digest))
    assert [m["digest"] for m in manifests] == [digest]
    assert manifests[0]["artifactType"] == "application/vnd.example.config"


async def test_referrers_of_digest_without_referrers_is_empty(client: httpx.AsyncClient) -> None:
    subject = await push_image(client, REPO, "v1")
    assert assert_index(await get_referrers(client, REPO, subject.digest)) == []


async def test_referrers_of_unknown_digest_is_empty(client: httpx.AsyncClient) -> None:
    await push_image(client, REPO, "v1")
    assert assert_index(await get_referrers(client, REPO, digest_of(b"unknown"))) == []


async def test_referrers_for_absent_subject_are_listed(client: httpx.AsyncClient) -> None:
    """A referrer may be pushed before its subject (the spec allows it)."""
    absent = Pushed(b"{}", digest_of(b"absent subject"), OCI_MANIFEST, ())
    _, digest = await push_referrer(client, REPO, absent, SIG)
    manifests = assert_index(await get_referrers(client, REPO, absent.digest))
    assert [m["digest"] for m in manifests] == [digest]


async def test_artifact_type_filter(client: httpx.AsyncClient) -> None:
    subject = await push_image(client, REPO, "v1")
    _, sig_digest = await push_referrer(client, REPO, subject, SIG)
    await push_referrer(client, REPO, subject, SBOM)
    response = await get_referrers(client, REPO, subject.digest, artifactType=SIG)
    manifests = assert_index(response)
    assert [m["digest"] for m in manifests] == [sig_digest]
    assert response.headers["OCI-Filters-Applied"] == "artifactType"


async def test_artifact_type_filter_matching_nothing(client: httpx.AsyncClient) -> None:
    subject = await push_image(client, REPO, "v1")
    await push_referrer(client, REPO, subject, SIG)
    response = await get_referrers(client, REPO, subject.digest, artifactType="application/none")
    assert assert_index(response) == []
    assert response.headers["OCI-Filters-Applied"] == "artifactType"


async def test_no_filter_header_without_filter(client: httpx.AsyncClient) -> None:
    subject = await push_image(client, REPO, "v1")
    response = await get_referrers(client, REPO, subject.digest)
    assert_index(response)
    assert "OCI-Filters-Applied" not in response.headers


async def test_referrers_are_per_repository(client: httpx.AsyncClient) -> None:
    subject = await push_image(client, REPO, "v1")
    await push_image(client, "team/other", "v1")
    await push_referrer(client, REPO, subject, SIG)
    assert assert_index(await get_referrers(client, "team/other", subject.digest)) == []


async def test_deleted_referrer_disappears(client: httpx.AsyncClient) -> None:
    subject = await push_image(client, REPO, "v1")
    _, digest = await push_referrer(client, REPO, subject, SIG)
    assert (await client.delete(f"/v2/{REPO}/manifests/{digest}")).status_code == 202
    assert assert_index(await get_referrers(client, REPO, subject.digest)) == []


async def test_index_with_subject_is_a_referrer(client: httpx.AsyncClient) -> None:
    subject = await push_image(client, REPO, "v1")
    child = await push_image(client, REPO, seed="child")
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "artifactType": SBOM,
            "manifests": [child.descriptor()],
            "subject": subject.descriptor(),
        }
    ).encode()
    response = await push_manifest(client, REPO, digest_of(body), body, OCI_INDEX)
    assert response.status_code == 201, response.text
    assert response.headers["OCI-Subject"] == subject.digest
    manifests = assert_index(await get_referrers(client, REPO, subject.digest))
    assert manifests == [
        {"mediaType": OCI_INDEX, "digest": digest_of(body), "size": len(body), "artifactType": SBOM}
    ]


@pytest.mark.parametrize(
    "digest",
    [
        pytest.param("sha256:nothex", id="short"),
        pytest.param("not-a-digest", id="no-colon"),
        pytest.param("sha256:" + "Z" * 64, id="bad-hex"),
    ],
)
async def test_invalid_digest_is_400(client: httpx.AsyncClient, digest: str) -> None:
    await push_image(client, REPO, "v1")
    response = await get_referrers(client, REPO, digest)
    assert_error(response, 400, "DIGEST_INVALID", "MANIFEST_INVALID", "UNSUPPORTED")


async def test_invalid_name_is_400(client: httpx.AsyncClient) -> None:
    response = await get_referrers(client, "Bad/Name", digest_of(b"x"))
    assert_error(response, 400, "NAME_INVALID")
