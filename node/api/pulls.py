"""The pull hot path on plain ASGI: GET/HEAD of manifests and blobs.

Pulls are most of a registry's requests. Serving them without the web framework's
request and response machinery roughly halves the CPU each one costs; every other route
goes on to the Quart app. Both render errors with the same ``OCIError`` body.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

from node.api.http import parse_range
from node.proxy.cache import ProxyCache
from node.proxy.fill import Fill
from node.proxy.router import Route, Router
from node.registry import Registry
from node.storage.base import BlobReader, ManifestRecord
from node.storage.fs import FsBlobReader
from portmesh.oci.digest import Digest, parse_digest
from portmesh.oci.errors import OCIError
from portmesh.oci.names import check_name

__all__ = ["PullRoutes"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_PULL = re.compile(r"^/v2/(?P<name>.+)/(?P<kind>manifests|blobs)/(?P<ref>[^/]+)\Z")
API_VERSION = (b"docker-distribution-api-version", b"registry/2.0")
ZEROCOPY = "http.response.zerocopysend"
#: a range starting this far beyond what a fill has written goes upstream by itself
RANGE_AHEAD = 8 * 1024 * 1024


class PullRoutes:
    """ASGI app: answers manifest and blob GET/HEAD itself, hands the rest to ``app``.

    With a ``router``, pulls of proxied repositories go through ``proxy``.
    """

    def __init__(
        self,
        registry: Registry,
        app: Any,
        accel: Callable[[Digest], str] | None = None,
        router: Router | None = None,
        proxy: ProxyCache | None = None,
    ) -> None:
        self.registry = registry
        self.app = app
        #: blob -> internal URL of a front proxy that sends the file itself
        self.accel = accel
        self.router = router
        self.proxy = proxy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            match = _PULL.match(scope["path"])
            if match is not None:
                head = scope["method"] == "HEAD"
                try:
                    await self._pull(match["kind"], match["name"], match["ref"], head, scope, send)
                except OCIError as exc:
                    headers = [(k.lower().encode(), v.encode()) for k, v in exc.headers.items()]
                    headers += [(b"content-type", b"application/json"), API_VERSION]
                    await _respond(send, exc.status, headers, exc.body(), head=head)
                return
        await self.app(scope, receive, send)

    async def _pull(
        self, kind: str, name: str, ref: str, head: bool, scope: Scope, send: Send
    ) -> None:
        name = check_name(name)
        route = None
        if self.router is not None:
            route = self.router.route(name, query_param(scope, "ns"))
        if kind == "manifests":
            if route is not None and self.proxy is not None:
                cached = await self.proxy.manifest(route, ref)
                extra = [(b"x-portmesh-cache", cached.state.encode())]
                if cached.state == "stale":
                    extra.append((b"warning", b'110 - "Response is Stale"'))
                await _manifest(cached.record, extra, head, scope, send)
            else:
                record = await self.registry.get_manifest(name, ref)
                await _manifest(record, [], head, scope, send)
            return
        digest = parse_digest(ref)
        if route is not None and self.proxy is not None:
            await self._proxied_blob(route, digest, head, scope, send)
        else:
            await self._blob(name, digest, head, scope, send)

    async def _blob(self, name: str, digest: Digest, head: bool, scope: Scope, send: Send) -> None:
        headers = _blob_headers(digest)
        if _not_modified(scope, headers[1][1]):
            await self.registry.blob_size(name, digest)
            await _respond(send, 304, headers[:2])
            return
        if head:
            size = await self.registry.blob_size(name, digest)
            await _respond(send, 200, headers, head=True, length=size)
            return
        if self.accel is not None:
            # The front proxy sends the file (and answers Range) with sendfile; its config
            # copies this answer's headers.
            await self.registry.blob_size(name, digest, pulled=True)
            headers = [h for h in headers if h[0] != b"accept-ranges"]  # nginx adds its own
            headers.append((b"x-accel-redirect", self.accel(digest).encode()))
            await _respond(send, 200, headers)
            return
        reader = await self.registry.open_blob(name, digest)
        try:
            await _stream(reader.size, reader.chunks, scope, headers, send, _file_of(reader))
        finally:
            await reader.aclose()

    async def _proxied_blob(
        self, route: Route, digest: Digest, head: bool, scope: Scope, send: Send
    ) -> None:
        assert self.proxy is not None
        proxy = self.proxy
        source = await proxy.blob(route, digest)
        headers = _blob_headers(digest)
        if isinstance(source, Fill):
            headers.append((b"x-portmesh-cache", b"miss"))
            fill = source
            if head:  # the fill goes on: the GET that follows a HEAD joins it
                if fill.size is not None:
                    headers.append(_length(fill.size))
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": b""})
                return

            def chunks(start: int, length: int | None) -> AsyncIterator[bytes]:
                if start > fill.written + RANGE_AHEAD and not fill.done:
                    # Far ahead of the fill (a lazy-pulling snapshotter): ask for the range.
                    return proxy.ranged(route, digest, start, length)
                return proxy.fills.read(fill, start, length)

            await _stream(fill.size, chunks, scope, headers, send)
            return
        reader = source
        headers.append((b"x-portmesh-cache", b"hit"))
        try:
            if head:
                await _respond(send, 200, headers, head=True, length=reader.size)
            else:
                await _stream(reader.size, reader.chunks, scope, headers, send, _file_of(reader))
        finally:
            await reader.aclose()


async def _manifest(
    record: ManifestRecord,
    extra: list[tuple[bytes, bytes]],
    head: bool,
    scope: Scope,
    send: Send,
) -> None:
    digest = str(record.digest).encode()
    etag = b'"' + digest + b'"'
    headers = [(b"docker-content-digest", digest), (b"etag", etag), *extra]
    if _not_modified(scope, etag):
        await _respond(send, 304, headers)
        return
    headers.append((b"content-type", record.media_type.encode()))
    await _respond(send, 200, headers, record.body, head=head)


def _blob_headers(digest: Digest) -> list[tuple[bytes, bytes]]:
    """Docker-Content-Digest and ETag first (a 304 sends only those), then the rest."""
    text = str(digest).encode()
    return [
        (b"docker-content-digest", text),
        (b"etag", b'"' + text + b'"'),
        (b"content-type", b"application/octet-stream"),
        (b"accept-ranges", b"bytes"),
    ]


async def _stream(
    size: int | None,
    chunks: Callable[[int, int | None], AsyncIterator[bytes]],
    scope: Scope,
    headers: list[tuple[bytes, bytes]],
    send: Send,
    fileno: int | None = None,
) -> None:
    """Send a blob body (or the requested range of it) from ``chunks(start, length)``,
    or, given the open file's ``fileno`` and a server that takes ASGI's zerocopysend,
    let the server send the file itself.

    An exception from ``chunks`` after the headers went out cuts the response short.
    """
    status, start, length = 200, 0, size
    if size is not None:
        span = parse_range(_header(scope, b"range"), size)
        if span is not None:
            status, start, length = 206, span[0], span[1] - span[0] + 1
            headers.append((b"content-range", f"bytes {span[0]}-{span[1]}/{size}".encode()))
        headers.append(_length(length or 0))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    if fileno is not None and ZEROCOPY in scope.get("extensions", ()):
        await send({"type": ZEROCOPY, "file": fileno, "offset": start, "count": length})
        return
    async for chunk in chunks(start, length):
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


def _file_of(reader: BlobReader) -> int | None:
    """The open file of a filesystem store's reader (None for other stores)."""
    return reader.fileno() if isinstance(reader, FsBlobReader) else None


def _length(size: int) -> tuple[bytes, bytes]:
    return (b"content-length", str(size).encode())


def _not_modified(scope: Scope, etag: bytes) -> bool:
    """``If-None-Match`` names this content's ETag (content by digest never changes)."""
    match = _header(scope, b"if-none-match")
    if match is None:
        return False
    return match.strip() == "*" or etag.decode() in (t.strip() for t in match.split(","))


def query_param(scope: Scope, name: str) -> str | None:
    query = scope.get("query_string", b"")
    if not query:
        return None
    values = parse_qs(bytes(query).decode("latin-1")).get(name)
    return values[0] if values else None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None
