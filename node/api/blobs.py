"""Blob routes: GET/HEAD/DELETE ``/v2/<name>/blobs/<digest>``."""

from __future__ import annotations

from collections.abc import AsyncIterator

from quart import Blueprint, request

from node.api.http import Response, parse_range
from node.registry import Registry
from node.storage.base import BlobReader
from portmesh.oci.digest import parse_digest
from portmesh.oci.names import check_name

__all__ = ["blueprint"]


def blueprint(registry: Registry) -> Blueprint:
    bp = Blueprint("blobs", __name__)

    @bp.route("/v2/<path:name>/blobs/<digest>", methods=["GET", "HEAD"])
    async def get_blob(name: str, digest: str) -> Response:
        repo, dgst = check_name(name), parse_digest(digest)
        headers = {
            "Docker-Content-Digest": str(dgst),
            "ETag": f'"{dgst}"',
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        if request.method == "HEAD":
            size = await registry.blob_size(repo, dgst)
            return _bodyless(200, size, headers)
        reader = await registry.open_blob(repo, dgst)
        try:
            span = parse_range(request.headers.get("Range"), reader.size)
        except BaseException:
            await reader.aclose()
            raise
        status, start, length = 200, 0, reader.size
        if span is not None:
            status, start, length = 206, span[0], span[1] - span[0] + 1
            headers["Content-Range"] = f"bytes {span[0]}-{span[1]}/{reader.size}"
        response = Response(_stream(reader, start, length), status=status, headers=headers)
        response.headers["Content-Length"] = str(length)
        response.timeout = None  # a large blob to a slow client may take hours
        return response

    @bp.route("/v2/<path:name>/blobs/<digest>", methods=["DELETE"])
    async def delete_blob(name: str, digest: str) -> Response:
        await registry.delete_blob(check_name(name), parse_digest(digest))
        return _bodyless(202, 0, {})

    return bp


def _bodyless(status: int, length: int, headers: dict[str, str]) -> Response:
    response = Response(b"", status=status, headers=headers)
    response.headers["Content-Length"] = str(length)
    return response


async def _stream(reader: BlobReader, start: int, length: int) -> AsyncIterator[bytes]:
    try:
        async for chunk in reader.chunks(start, length):
            yield chunk
    finally:
        await reader.aclose()
