"""Blob upload routes: ``/v2/<name>/blobs/uploads/[<id>]`` (POST, PATCH, PUT, GET, DELETE)."""

from __future__ import annotations

from quart import Blueprint, request

from node.api.http import Response, body_chunks, content_length, parse_content_range
from node.registry import Registry
from portmesh.oci.digest import Digest, parse_digest
from portmesh.oci.errors import OCIError
from portmesh.oci.names import check_name

__all__ = ["blueprint"]


def blueprint(registry: Registry) -> Blueprint:
    bp = Blueprint("uploads", __name__)

    @bp.route("/v2/<path:name>/blobs/uploads/", methods=["POST"])
    async def start(name: str) -> Response:
        repo = check_name(name)
        mount, source = request.args.get("mount"), request.args.get("from")
        if mount is not None and source:
            digest = parse_digest(mount)
            if await registry.mount(repo, check_name(source), digest):
                return _created(repo, digest)
        digest_arg = request.args.get("digest")
        if digest_arg is not None:
            digest = parse_digest(digest_arg)
            await registry.put_blob(repo, digest, body_chunks(request), content_length(request))
            return _created(repo, digest)
        upload = await registry.start_upload(repo)
        response = _session(repo, upload.id, 0, 202)
        if registry.chunk_min_length:
            response.headers["OCI-Chunk-Min-Length"] = str(registry.chunk_min_length)
        return response

    @bp.route("/v2/<path:name>/blobs/uploads/<upload_id>", methods=["PATCH"])
    async def patch(name: str, upload_id: str) -> Response:
        repo = check_name(name)
        span = parse_content_range(request.headers.get("Content-Range"))
        length = content_length(request)
        if span is not None and length is not None and span[1] - span[0] + 1 != length:
            raise OCIError("RANGE_INVALID", "Content-Range and Content-Length disagree")
        size = await registry.append(
            repo, upload_id, body_chunks(request), start=span[0] if span else None, length=length
        )
        return _session(repo, upload_id, size, 202)

    @bp.route("/v2/<path:name>/blobs/uploads/<upload_id>", methods=["PUT"])
    async def finish(name: str, upload_id: str) -> Response:
        repo = check_name(name)
        digest_arg = request.args.get("digest")
        if not digest_arg:
            raise OCIError("DIGEST_INVALID", "the digest query parameter is required")
        digest = parse_digest(digest_arg)
        span = parse_content_range(request.headers.get("Content-Range"))
        await registry.finish_upload(
            repo,
            upload_id,
            digest,
            body_chunks(request),
            start=span[0] if span else None,
            length=content_length(request),
        )
        return _created(repo, digest)

    @bp.route("/v2/<path:name>/blobs/uploads/<upload_id>", methods=["GET"])
    async def status(name: str, upload_id: str) -> Response:
        repo = check_name(name)
        size = await registry.upload_offset(repo, upload_id)
        return _session(repo, upload_id, size, 204)

    @bp.route("/v2/<path:name>/blobs/uploads/<upload_id>", methods=["DELETE"])
    async def cancel(name: str, upload_id: str) -> Response:
        await registry.cancel_upload(check_name(name), upload_id)
        return _empty(204, {})

    return bp


def _empty(status: int, headers: dict[str, str]) -> Response:
    response = Response(b"", status=status, headers=headers)
    response.headers["Content-Length"] = "0"
    return response


def _created(repo: str, digest: Digest) -> Response:
    return _empty(
        201, {"Location": f"/v2/{repo}/blobs/{digest}", "Docker-Content-Digest": str(digest)}
    )


def _session(repo: str, upload_id: str, size: int, status: int) -> Response:
    return _empty(
        status,
        {
            "Location": f"/v2/{repo}/blobs/uploads/{upload_id}",
            "Range": f"0-{max(size - 1, 0)}",
            "Docker-Upload-UUID": upload_id,
        },
    )
