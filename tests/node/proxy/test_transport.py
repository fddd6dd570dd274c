"""The upstream transport against a real HTTP/1.1 server on loopback: wide reads, response
heads kept apart from their bodies, and blob bodies read from the socket directly."""

from __future__ import annotations

import contextlib
import os
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio

from adapters.blobstream import HTTPBlobStream
from adapters.errors import Unavailable
from node.proxy.transport import READ_SIZE, tls_context, upstream_transport
from support.tls import TLSFiles, make_tls

BODY = os.urandom(16 * 1024 * 1024)


def _head(length: int, *extra: bytes) -> bytes:
    lines = [b"HTTP/1.1 200 OK", b"Content-Type: application/octet-stream", *extra]
    if length >= 0:
        lines.append(b"Content-Length: %d" % length)
    return b"\r\n".join(lines) + b"\r\n\r\n"


class Upstream:
    """Answers by path: ``/big`` BODY, ``/cut`` half of it then closes, ``/stall`` a MiB
    of it then nothing, ``/garbage`` (TLS only) a MiB of it then bytes that are no TLS,
    ``/chunked`` BODY chunked, ``/early`` a 103 then BODY, ``/split`` BODY after a head
    sent a byte at a time, ``/range`` BODY whatever Range asks for; anything else a short
    body (a HEAD its head). Counts connections."""

    def __init__(self) -> None:
        self.connections = 0

    async def serve(self, stream: trio.abc.Stream) -> None:
        self.connections += 1
        async with stream:
            buffer = b""
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = await stream.receive_some()
                    if not data:
                        return
                    buffer += data
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                method, path = head.split(b" ")[:2]
                if method == b"HEAD":
                    await stream.send_all(_head(5))
                elif not await self._answer(stream, path):
                    return

    async def _answer(self, stream: trio.abc.Stream, path: bytes) -> bool:
        size = len(BODY)
        if path in (b"/big", b"/range"):
            await stream.send_all(_head(size) + BODY)
        elif path == b"/cut":
            await stream.send_all(_head(size) + BODY[: size // 2])
            return False
        elif path == b"/stall":
            await stream.send_all(_head(size) + BODY[: 1 << 20])
            await trio.sleep_forever()
        elif path == b"/chunked":
            pieces = [
                b"%x\r\n%s\r\n" % (1 << 20, BODY[i : i + (1 << 20)])
                for i in range(0, size, 1 << 20)
            ]
            await stream.send_all(
                _head(-1, b"Transfer-Encoding: chunked") + b"".join(pieces) + b"0\r\n\r\n"
            )
        elif path == b"/early":
            await stream.send_all(
                b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" + _head(size) + BODY
            )
        elif path == b"/garbage" and isinstance(stream, trio.SSLStream):
            await stream.send_all(_head(size) + BODY[: 1 << 20])
            await stream.transport_stream.send_all(os.urandom(64 * 1024))  # not TLS records
            await trio.sleep_forever()
        elif path == b"/split":
            for byte in _head(size):
                await stream.send_all(bytes([byte]))
            await stream.send_all(BODY)
        else:
            await stream.send_all(_head(5) + b"short")
        return True


@asynccontextmanager
async def client(
    read_timeout: float = 30.0, tls: TLSFiles | None = None
) -> AsyncIterator[tuple[httpx.AsyncClient, Upstream]]:
    """A client of the transport under test and the upstream it talks to (over TLS,
    with a certificate signed by a CA the client is given, if ``tls``)."""
    upstream = Upstream()
    handler: Callable[[trio.SocketStream], Awaitable[None]] = upstream.serve
    tls_settings: ssl.SSLContext | None = None
    if tls is not None:
        server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_side.load_cert_chain(tls.cert, tls.key)

        async def handler(stream: trio.SocketStream) -> None:
            # A client that took a body over closes the connection without TLS's goodbye.
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await upstream.serve(trio.SSLStream(stream, server_side, server_side=True))

        tls_settings = tls_context(ca_file=str(tls.ca))
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        async with httpx.AsyncClient(
            base_url=f"{'https' if tls else 'http'}://127.0.0.1:{port}",
            transport=upstream_transport(tls=tls_settings),
            timeout=httpx.Timeout(30.0, read=read_timeout),
        ) as http:
            yield http, upstream
        nursery.cancel_scope.cancel()


@pytest.fixture(params=["tcp", "tls"])
def tls(request: pytest.FixtureRequest, tmp_path: Path) -> TLSFiles | None:
    """Each test of a blob body runs over plain TCP and over TLS."""
    return make_tls(tmp_path / "tls") if request.param == "tls" else None


async def blob(http: httpx.AsyncClient, path: str, offset: int = 0) -> tuple[bytes, list[int]]:
    """The body of ``path`` read as a proxy fill reads it (``HTTPBlobStream``)."""
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    response = await http.send(http.build_request("GET", path, headers=headers), stream=True)
    stream = HTTPBlobStream(response, offset, None, f"blob {path}")
    got, sizes = bytearray(), []
    try:
        async for chunk in stream:
            sizes.append(len(chunk))
            got += chunk
    finally:
        await stream.aclose()
        await response.aclose()
    return bytes(got), sizes


async def test_wide_reads_keep_bodies_intact_and_answers_unchanged() -> None:
    async with client() as (http, upstream):
        small = await http.get("/small")
        assert (small.status_code, small.content) == (200, b"short")
        sizes: list[int] = []
        got = bytearray()
        async with http.stream("GET", "/big") as response:
            async for chunk in response.aiter_raw():
                sizes.append(len(chunk))
                got += chunk
        assert got == BODY
        assert max(sizes) > 64 * 1024, "reads wider than httpcore's 64 KiB"
        assert max(sizes) <= READ_SIZE
        again = await http.get("/small")  # the same pooled connection still works
        assert again.content == b"short"
        assert upstream.connections == 1


async def test_heads_split_anywhere_and_informational_ones_reach_httpx_intact() -> None:
    async with client() as (http, upstream):
        for path in ("/split", "/early", "/chunked", "/big"):
            response = await http.get(path)
            assert (response.status_code, response.content) == (200, BODY), path
        head = await http.head("/small")
        assert head.status_code == 200
        assert (await http.get("/small")).content == b"short"
        assert upstream.connections == 1  # every answer left the connection reusable


async def test_a_blob_body_is_read_from_the_socket_and_its_connection_closed(
    tls: TLSFiles | None,
) -> None:
    async with client(tls=tls) as (http, upstream):
        for path in ("/big", "/split", "/early"):
            got, sizes = await blob(http, path)
            assert got == BODY, path
            assert max(sizes) <= READ_SIZE
        # Read past h11, each connection ends with its blob: three blobs, three connections.
        assert upstream.connections == 3
        got, _ = await blob(http, "/range", offset=12345)  # an upstream ignoring Range
        assert got == BODY[12345:]
        got, _ = await blob(http, "/chunked")  # not plain Content-Length bytes: through h11
        assert got == BODY
        assert (await http.get("/small")).content == b"short"
        assert upstream.connections == 5  # the chunked one kept its connection


async def test_a_cut_or_stalled_blob_body_is_unavailable_not_short(
    tls: TLSFiles | None,
) -> None:
    async with client(read_timeout=0.5, tls=tls) as (http, _):
        with pytest.raises(Unavailable, match="short"):
            await blob(http, "/cut")
        with pytest.raises(Unavailable, match="ReadTimeout"):
            await blob(http, "/stall")
        if tls is not None:
            with pytest.raises(Unavailable, match="TLS"):
                await blob(http, "/garbage")
        assert (await http.get("/small")).content == b"short"
