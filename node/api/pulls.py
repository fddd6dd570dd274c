"""The pull hot path on plain ASGI: GET/HEAD of manifests and blobs.

Pulls are most of a registry's requests. Serving them without the web framework's
request and response machinery roughly halves the CPU each one costs; every other route
goes on to the Quart app. Both render errors with the same ``OCIError`` body.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from node.api.http import parse_range
from node.registry import Registry
from node.storage.base import BlobReader
from portmesh.oci.digest import Digest, parse_digest
from portmesh.oci.errors import OCIError
from portmesh.oci.names import check_name

__all__ = ["PullRoutes"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_PULL = re.compile(r"^/v2/(?P<name>.+)/(?P<kind>manifests|blobs)/(?P<ref>[^/]+)\Z")
API_VERSION = (b"docker-distribution-api-version", b"registry/2.0")


class PullRoutes:
    """ASGI app: answers manifest and blob GET/HEAD itself, hands the rest to ``app``."""

    def __init__(
        self, registry: Registry, app: Any, accel: Callable[[Digest], str] | None = None
    ) -> None:
        self.registry = registry
        self.app = app
        #: blob -> internal URL of a front proxy that sends the file itself
        self.accel = accel

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            match = _PULL.match(scope["path"])
            if match is not None:
                head = scope["method"] == "HEAD"
                try:
                    name = check_name(match["name"])
                    if match["kind"] == "manifests":
                        await self._manifest(name, match["ref"], head, scope, send)
                    else:
                        await self._blob(name, match["ref"], head, scope, send)
                except OCIError as exc:
                    headers = [(k.lower().encode(), v.encode()) for k, v in exc.headers.items()]
                    headers += [(b"content-type", b"application/json"), API_VERSION]
                    await _respond(send, exc.status, headers, exc.body(), head=head)
                return
        await self.app(scope, receive, send)

    async def _manifest(
        self, name: str, reference: str, head: bool, scope: Scope, send: Send
    ) -> None:
        record = await self.registry.get_manifest(name, reference)
        digest = str(record.digest).encode()
        etag = b'"' + digest + b'"'
        headers = [(b"docker-content-digest", digest), (b"etag", etag)]
        if _not_modified(scope, etag):
            await _respond(send, 304, headers)
            return
        headers.append((b"content-type", record.media_type.encode()))
        await _respond(send, 200, headers, record.body, head=head)

    async def _blob(
        self, name: str, reference: str, head: bool, scope: Scope, send: Send
    ) -> None:
        digest = parse_digest(reference)
        text = str(digest).encode()
        etag = b'"' + text + b'"'
        headers = [(b"docker-content-digest", text), (b"etag", etag)]
        if _not_modified(scope, etag):
            await self.registry.blob_size(name, digest)
            await _respond(send, 304, headers)
            return
        headers += [(b"content-type", b"application/octet-stream"), (b"accept-ranges", b"bytes")]
        if head:
            size = await self.registry.blob_size(name, digest)
            await _respond(send, 200, headers, head=True, length=size)
            return
        if self.accel is not None:
            # The front proxy sends the file (and answers Range) with sendfile; its config
            # copies this answer's headers.
            await self.registry.blob_size(name, digest, pulled=True)
            headers.append((b"x-accel-redirect", self.accel(digest).encode()))
            await _respond(send, 200, headers)
            return
        reader = await self.registry.open_blob(name, digest)
        try:
            await _stream_blob(reader, _header(scope, b"range"), headers, send)
        finally:
            await reader.aclose()


async def _stream_blob(
    reader: BlobReader, range_header: str | None, headers: list[tuple[bytes, bytes]], send: Send
) -> None:
    span = parse_range(range_header, reader.size)
    status, start, length = 200, 0, reader.size
    if span is not None:
        status, start, length = 206, span[0], span[1] - span[0] + 1
        headers.append((b"content-range", f"bytes {span[0]}-{span[1]}/{reader.size}".encode()))
    headers.append(_length(length))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    async for chunk in reader.chunks(start, length):
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def _respond(
    send: Send,
    status: int,
    headers: list[tuple[bytes, bytes]],
    body: bytes = b"",
    *,
    head: bool = False,
    length: int | None = None,
) -> None:
    """Send a whole response; ``length`` overrides Content-Length (HEAD of a blob)."""
    if status != 304:  # a 304's length, if sent, would have to be the full body's
        headers.append(_length(len(body) if length is None else length))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


def _length(size: int) -> tuple[bytes, bytes]:
    return (b"content-length", str(size).encode())


def _not_modified(scope: Scope, etag: bytes) -> bool:
    """``If-None-Match`` names this content's ETag (content by digest never changes)."""
    match = _header(scope, b"if-none-match")
    if match is None:
        return False
    return match.strip() == "*" or etag.decode() in (t.strip() for t in match.split(","))


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None
