"""Referrers index helpers: the empty index and client-side ``artifactType`` filtering.

Used when an upstream lacks the referrers API (the referrers tag schema's index holds every
referrer) or answers without applying the filter (no ``OCI-Filters-Applied`` header).
"""

from __future__ import annotations

import json

from portmesh.oci import mediatypes

from .errors import ProtocolError

__all__ = ["EMPTY_INDEX", "filter_index"]

EMPTY_INDEX = json.dumps(
    {"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX, "manifests": []},
    separators=(",", ":"),
).encode()


def filter_index(body: bytes, artifact_type: str | None, what: str) -> bytes:
    """``body`` (an image index) with only the descriptors of ``artifact_type``; the body
    unchanged when ``artifact_type`` is None. Raises ProtocolError if it is no index."""
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise ProtocolError(f"{what}: referrers index is not JSON") from exc
    manifests = doc.get("manifests") if isinstance(doc, dict) else None
    if not isinstance(manifests, list):
        raise ProtocolError(f"{what}: referrers answer is not an image index")
    if artifact_type is None:
        return body
    doc["manifests"] = [
        m for m in manifests if isinstance(m, dict) and m.get("artifactType") == artifact_type
    ]
    return json.dumps(doc, separators=(",", ":")).encode()
