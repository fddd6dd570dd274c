"""Manifest routes: PUT/DELETE ``/v2/<name>/manifests/<reference>`` (GET and HEAD are
in ``pulls``)."""

from __future__ import annotations

from quart import Blueprint, Request, request

from node.api.http import Response
from node.registry import Registry
from portmesh.oci.errors import OCIError
from portmesh.oci.manifest import MAX_MANIFEST_SIZE
from portmesh.oci.names import check_name

__all__ = ["blueprint"]


def blueprint(registry: Registry) -> Blueprint:
    bp = Blueprint("manifests", __name__)

    @bp.route("/v2/<path:name>/manifests/<reference>", methods=["PUT"])
    async def put_manifest(name: str, reference: str) -> Response:
        repo = check_name(name)
        body = await _read_limited(request, MAX_MANIFEST_SIZE)
        stored = await registry.put_manifest(
            repo, reference, body, request.headers.get("Content-Type")
        )
        response = Response(b"", status=201)
        response.headers["Location"] = f"/v2/{repo}/manifests/{stored.digest}"
        response.headers["Docker-Content-Digest"] = str(stored.digest)
        if stored.parsed.subject is not None:
            response.headers["OCI-Subject"] = str(stored.parsed.subject.digest)
        return response

    @bp.route("/v2/<path:name>/manifests/<reference>", methods=["DELETE"])
    async def delete_manifest(name: str, reference: str) -> Response:
        await registry.delete_manifest(check_name(name), reference)
        return Response(b"", status=202)

    return bp


#: A manifest body past the limit is read and dropped up to this many bytes, so that the
#: client, which sends its whole body before it reads the answer, gets to see the 413.
DRAIN_LIMIT = 64 * 1024 * 1024


async def _read_limited(req: Request, limit: int) -> bytes:
    """The whole body, refusing (413 MANIFEST_INVALID) past ``limit`` bytes."""
    declared = req.headers.get("Content-Length")
    too_big = OCIError(
        "MANIFEST_INVALID",
        f"manifest is larger than {limit} bytes",
        {"limit": limit},
        status=413,
    )
    if declared is not None and declared.isdigit() and int(declared) > DRAIN_LIMIT:
        raise too_big
    data = bytearray()
    seen = 0
    async for chunk in req.body:
        seen += len(chunk)
        if seen > DRAIN_LIMIT:
            break
        if seen <= limit:
            data += chunk
    if seen > limit:
        raise too_big
    return bytes(data)
