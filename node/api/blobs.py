"""Blob routes: DELETE ``/v2/<name>/blobs/<digest>`` (GET and HEAD are in ``pulls``)."""

from __future__ import annotations

from quart import Blueprint

from node.api.http import Response
from node.registry import Registry
from portmesh.oci.digest import parse_digest
from portmesh.oci.names import check_name

__all__ = ["blueprint"]


def blueprint(registry: Registry) -> Blueprint:
    bp = Blueprint("blobs", __name__)

    @bp.route("/v2/<path:name>/blobs/<digest>", methods=["DELETE"])
    async def delete_blob(name: str, digest: str) -> Response:
        await registry.delete_blob(check_name(name), parse_digest(digest))
        return Response(b"", status=202)

    return bp
