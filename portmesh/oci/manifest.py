"""Manifest and index parsing and validation (no I/O).

:func:`parse_manifest` turns the bytes a client PUTs into a :class:`ParsedManifest` that
names what it references (blobs and child manifests), its ``subject`` and its artifact type,
or raises ``OCIError("MANIFEST_INVALID")`` with a reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from portmesh.oci.digest import Digest, parse_digest
from portmesh.oci.errors import OCIError
from portmesh.oci.mediatypes import IMAGE_TYPES, INDEX_TYPES, MANIFEST_TYPES

__all__ = ["MAX_MANIFEST_SIZE", "Descriptor", "ParsedManifest", "parse_manifest"]

MAX_MANIFEST_SIZE = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: Digest
    size: int
    artifact_type: str | None = None
    annotations: dict[str, str] | None = None
    platform: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ParsedManifest:
    media_type: str
    blobs: tuple[Descriptor, ...] = ()
    manifests: tuple[Descriptor, ...] = ()
    subject: Descriptor | None = None
    artifact_type: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES


def _invalid(reason: str) -> OCIError:
    return OCIError("MANIFEST_INVALID", f"manifest invalid: {reason}", {"reason": reason})


def _descriptor(obj: Any, where: str) -> Descriptor:
    if not isinstance(obj, dict):
        raise _invalid(f"{where} is not a descriptor object")
    media_type = obj.get("mediaType")
    digest = obj.get("digest")
    size = obj.get("size")
    if not isinstance(media_type, str) or not media_type:
        raise _invalid(f"{where}.mediaType is missing")
    if not isinstance(digest, str):
        raise _invalid(f"{where}.digest is missing")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise _invalid(f"{where}.size must be a non-negative integer")
    try:
        parsed = parse_digest(digest)
    except OCIError as exc:
        raise _invalid(f"{where}.digest: {exc.message}") from exc
    artifact_type = obj.get("artifactType")
    annotations = obj.get("annotations")
    platform = obj.get("platform")
    return Descriptor(
        media_type,
        parsed,
        size,
        artifact_type if isinstance(artifact_type, str) else None,
        _annotations(annotations, where) if annotations is not None else None,
        platform if isinstance(platform, dict) else None,
    )


def _annotations(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise _invalid(f"{where}.annotations must map strings to strings")
    return value


def _list(doc: dict[str, Any], key: str, required: bool) -> list[Any]:
    value = doc.get(key)
    if value is None:
        if required:
            raise _invalid(f"{key} is missing")
        return []
    if not isinstance(value, list):
        raise _invalid(f"{key} must be a list")
    return value


def parse_manifest(body: bytes, content_type: str | None) -> ParsedManifest:
    """Validate ``body`` as a manifest of ``content_type`` (or its own ``mediaType``)."""
    if len(body) > MAX_MANIFEST_SIZE:
        raise OCIError(
            "MANIFEST_INVALID",
            f"manifest is larger than {MAX_MANIFEST_SIZE} bytes",
            {"size": len(body), "limit": MAX_MANIFEST_SIZE},
            status=413,
        )
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _invalid(f"not valid JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise _invalid("not a JSON object")
    if doc.get("schemaVersion") != 2:
        raise _invalid("schemaVersion must be 2")
    own_type = doc.get("mediaType")
    if own_type is not None and not isinstance(own_type, str):
        raise _invalid("mediaType must be a string")
    ctype = (content_type or "").split(";")[0].strip() or None
    if ctype in (None, "application/json", "application/octet-stream"):
        ctype = None
    if own_type and ctype and own_type != ctype:
        raise _invalid(f"mediaType {own_type!r} does not match Content-Type {ctype!r}")
    media_type = own_type or ctype
    if media_type is None:
        # An OCI manifest may omit mediaType; tell image and index apart by shape.
        media_type = (
            "application/vnd.oci.image.index.v1+json"
            if "manifests" in doc
            else "application/vnd.oci.image.manifest.v1+json"
        )
    if media_type not in MANIFEST_TYPES:
        raise _invalid(f"unsupported manifest media type {media_type!r}")

    subject = _descriptor(doc["subject"], "subject") if doc.get("subject") is not None else None
    artifact_type = doc.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise _invalid("artifactType must be a string")
    annotations = _annotations(doc.get("annotations") or {}, "annotations")

    if media_type in IMAGE_TYPES:
        if "manifests" in doc:
            raise _invalid("an image manifest must not have manifests")
        config = _descriptor(doc.get("config"), "config")
        layers = tuple(
            _descriptor(d, f"layers[{i}]")
            for i, d in enumerate(_list(doc, "layers", required=False))
        )
        # The referrers API reports a manifest's artifactType, else its config's media type.
        artifact_type = artifact_type or config.media_type
        blobs = (config, *layers)
        return ParsedManifest(media_type, blobs, (), subject, artifact_type, annotations)

    if "layers" in doc or "config" in doc:
        raise _invalid("an index must not have config or layers")
    children = tuple(
        _descriptor(d, f"manifests[{i}]") for i, d in enumerate(_list(doc, "manifests", True))
    )
    return ParsedManifest(media_type, (), children, subject, artifact_type, annotations)
