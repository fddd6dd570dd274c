"""Manifest and index parsing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from portmesh.oci.digest import Digest
from portmesh.oci.errors import OCIError
from portmesh.oci.manifest import MAX_MANIFEST_SIZE, parse_manifest
from portmesh.oci.mediatypes import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    EMPTY_JSON,
    OCI_INDEX,
    OCI_MANIFEST,
)

CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
EMPTY = {"mediaType": EMPTY_JSON, "digest": str(Digest.of(b"{}")), "size": 2}


def desc(media_type: str, content: bytes, **extra: Any) -> dict[str, Any]:
    return {
        "mediaType": media_type,
        "digest": str(Digest.of(content)),
        "size": len(content),
        **extra,
    }


def image(**extra: Any) -> dict[str, Any]:
    return {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": desc(CONFIG, b"config"),
        "layers": [desc(LAYER, b"layer1"), desc(LAYER, b"layer2")],
        **extra,
    }


def encode(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def invalid(body: bytes, content_type: str | None = None) -> OCIError:
    with pytest.raises(OCIError) as info:
        parse_manifest(body, content_type)
    assert info.value.code == "MANIFEST_INVALID"
    return info.value


def test_image_manifest() -> None:
    parsed = parse_manifest(encode(image(annotations={"a": "b"})), OCI_MANIFEST)
    assert parsed.media_type == OCI_MANIFEST
    assert not parsed.is_index
    assert [d.digest for d in parsed.blobs] == [
        Digest.of(b"config"), Digest.of(b"layer1"), Digest.of(b"layer2")
    ]  # fmt: skip
    assert parsed.blobs[1].size == 6 and parsed.blobs[1].media_type == LAYER
    assert parsed.manifests == ()
    assert parsed.subject is None
    assert parsed.artifact_type == CONFIG  # the config's type stands in for artifactType
    assert parsed.annotations == {"a": "b"}


def test_media_type_may_come_from_content_type_only() -> None:
    doc = image()
    del doc["mediaType"]
    assert parse_manifest(encode(doc), f"{OCI_MANIFEST}; charset=utf-8").media_type == OCI_MANIFEST
    # Neither: told apart by shape.
    assert parse_manifest(encode(doc), None).media_type == OCI_MANIFEST
    assert parse_manifest(encode(doc), "application/json").media_type == OCI_MANIFEST


def test_image_index() -> None:
    child = desc(OCI_MANIFEST, b"m1", platform={"architecture": "amd64", "os": "linux"})
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [child, desc(OCI_MANIFEST, b"m2")],
    }
    parsed = parse_manifest(encode(doc), OCI_INDEX)
    assert parsed.is_index
    assert parsed.blobs == ()
    assert [d.digest for d in parsed.manifests] == [Digest.of(b"m1"), Digest.of(b"m2")]
    assert parsed.manifests[0].platform == {"architecture": "amd64", "os": "linux"}
    del doc["mediaType"]
    assert parse_manifest(encode(doc), None).media_type == OCI_INDEX


def test_docker_types() -> None:
    doc = image(mediaType=DOCKER_MANIFEST)
    doc["config"]["mediaType"] = "application/vnd.docker.container.image.v1+json"
    parsed = parse_manifest(encode(doc), DOCKER_MANIFEST)
    assert parsed.media_type == DOCKER_MANIFEST and len(parsed.blobs) == 3
    lst = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST_LIST,
        "manifests": [desc(DOCKER_MANIFEST, b"m")],
    }
    parsed = parse_manifest(encode(lst), DOCKER_MANIFEST_LIST)
    assert parsed.is_index and parsed.manifests[0].media_type == DOCKER_MANIFEST


def test_artifact_with_empty_config_and_subject() -> None:
    subject = desc(OCI_MANIFEST, b"the image")
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.sbom",
        "config": EMPTY,
        "layers": [desc("application/spdx+json", b"sbom")],
        "subject": subject,
    }
    parsed = parse_manifest(encode(doc), OCI_MANIFEST)
    assert parsed.artifact_type == "application/vnd.example.sbom"
    assert parsed.blobs[0].media_type == EMPTY_JSON
    assert parsed.subject is not None
    assert parsed.subject.digest == Digest.of(b"the image")
    assert parsed.subject.media_type == OCI_MANIFEST


def test_index_may_carry_artifact_type_and_subject() -> None:
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "artifactType": "application/vnd.example.bundle",
        "manifests": [],
        "subject": desc(OCI_MANIFEST, b"s"),
    }
    parsed = parse_manifest(encode(doc), None)
    assert parsed.artifact_type == "application/vnd.example.bundle"
    assert parsed.subject is not None and parsed.subject.digest == Digest.of(b"s")


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe", b"", b"[1, 2]", b'"text"'])
def test_not_a_json_object(body: bytes) -> None:
    assert invalid(body).status == 400


@pytest.mark.parametrize("version", [1, "2", None, 3])
def test_schema_version_must_be_2(version: Any) -> None:
    error = invalid(encode(image(schemaVersion=version)), OCI_MANIFEST)
    assert "schemaVersion" in error.message


def test_media_type_must_match_content_type() -> None:
    error = invalid(encode(image()), OCI_INDEX)
    assert "does not match" in error.message


def test_unsupported_media_type() -> None:
    invalid(encode(image(mediaType="application/vnd.docker.distribution.manifest.v1+json")))


def test_oversize_manifest_is_413() -> None:
    doc = image(annotations={"pad": "x" * MAX_MANIFEST_SIZE})
    error = invalid(encode(doc), OCI_MANIFEST)
    assert error.status == 413
    assert error.detail["limit"] == MAX_MANIFEST_SIZE


def test_manifest_of_exactly_the_limit_is_parsed() -> None:
    body = encode(image(annotations={"pad": ""}))
    pad = MAX_MANIFEST_SIZE - len(body)
    body = encode(image(annotations={"pad": "x" * pad}))
    assert len(body) == MAX_MANIFEST_SIZE
    assert parse_manifest(body, OCI_MANIFEST).annotations["pad"] == "x" * pad


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("config", None),
        ("config", "not an object"),
        ("config", {"mediaType": CONFIG, "size": 1}),
        ("config", {"mediaType": CONFIG, "digest": "sha256:abc", "size": 1}),
        ("config", {"mediaType": CONFIG, "digest": str(Digest.of(b"c")), "size": -1}),
        ("config", {"mediaType": CONFIG, "digest": str(Digest.of(b"c")), "size": True}),
        ("config", {"digest": str(Digest.of(b"c")), "size": 1}),
        ("layers", {"not": "a list"}),
        ("layers", [{"mediaType": LAYER}]),
        ("manifests", []),
        ("annotations", {"k": 1}),
        ("artifactType", 7),
        ("mediaType", 7),
        ("subject", {"mediaType": OCI_MANIFEST}),
    ],
)
def test_invalid_image_fields(field: str, value: Any) -> None:
    invalid(encode(image(**{field: value})))


def test_index_rejects_layers_and_requires_manifests() -> None:
    invalid(encode({"schemaVersion": 2, "mediaType": OCI_INDEX}))
    invalid(encode({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [], "layers": []}))
    invalid(encode({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [{"size": 1}]}))


def test_descriptor_digest_of_unknown_algorithm_is_manifest_invalid() -> None:
    doc = image()
    doc["layers"][0]["digest"] = "md5:" + "0" * 32
    error = invalid(encode(doc))
    assert "layers[0].digest" in error.message
