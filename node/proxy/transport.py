"""The HTTP transport of the node's upstream clients: httpx's own, reading in wide slices.

httpcore reads an HTTP/1.1 connection 64 KiB at a time, so a blob body costs one trip
through h11, httpcore and httpx per 64 KiB (about 0.7 CPU-s per GiB received on the
project's 2-core VM). :class:`WideReads` lets every read take up to ``READ_SIZE`` bytes
instead: a read still returns whatever the socket holds at once and never waits for
more, so small answers are unchanged, and a cache fill's body costs about half as much.

A blob's body can skip h11 altogether: a stream gives h11 no byte past a response's head
until h11 asks for more, so that the blob reader can take the body over (``take_body``,
the ``DirectBody`` of :mod:`adapters.blobstream`) and read it from the socket itself,
without h11 copying every byte twice through its buffer. Over TLS it takes the
connection's TLS state along and decrypts every record the socket brought at once: through
trio's TLS stream each 16 KiB record was one trip through trio, httpcore, h11 and httpx,
and a cold 256 MiB fill from an HTTPS upstream cost the node 2.05 CPU-s.
Everything else (TLS, pooling, limits, errors) is httpx's ``AsyncHTTPTransport``. The
``timeout`` parameters are httpcore's interface (it times each call itself).
"""

from __future__ import annotations

import functools
import ssl
import typing
from collections.abc import Iterable

import httpcore
import httpx
import trio

from adapters.blobstream import READ_SIZE, TLSState

__all__ = ["READ_SIZE", "WideReads", "tls_context", "upstream_transport"]

#: the bytes of a response head up to its status code ("HTTP/1.1 200")
_STATUS_END = 12

_SocketOption: typing.TypeAlias = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)


class _WideStream(httpcore.AsyncNetworkStream):
    def __init__(self, inner: httpcore.AsyncNetworkStream, read_size: int) -> None:
        self._inner = inner
        self._read_size = read_size
        #: bytes read past a response's head that h11 has not asked for yet
        self._held = b""
        #: a request went out and its response's head is not complete yet
        self._in_head = False
        #: the last bytes of the head so far (a head end may span two reads)
        self._tail = b""
        #: the first bytes of the head so far (the status code)
        self._start = b""
        #: bytes given to h11 since the last response head
        self._given = 0
        self._taken = False

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        if self._taken:
            return b""
        if self._held:
            data, self._held = self._held, b""
        else:
            data = await self._inner.read(max(max_bytes, self._read_size), timeout)
        if self._in_head:
            return self._through_head(data)
        self._given += len(data)
        return data

    def _through_head(self, data: bytes) -> bytes:
        """The part of ``data`` that belongs to the response head being read; the rest is
        held for h11's next read. A 1xx head is followed by another one."""
        if len(self._start) < _STATUS_END:
            self._start += data[: _STATUS_END - len(self._start)]
        seam = (self._tail + data[:3]).find(b"\r\n\r\n")
        if seam >= 0:
            cut = seam + 4 - len(self._tail)
        else:
            found = data.find(b"\r\n\r\n")
            if found < 0:
                self._tail = (self._tail + data)[-3:]
                return data
            cut = found + 4
        informational = self._start[9:10] == b"1"  # "HTTP/1.1 1xx"
        self._tail, self._start = b"", b""
        if not informational:
            self._in_head, self._given = False, 0
        if cut == len(data):
            return data
        self._held = data[cut:]
        return data[:cut]

    def take_body(self) -> tuple[bytes, typing.Any, TLSState | None] | None:
        """Hand the body of the response just received over to the caller, to read from
        the socket directly (see ``adapters.blobstream.DirectBody``): the bytes already
        read past its head, the trio socket, and on TLS the connection's TLS state. None
        when h11 has had some of the body already or the TLS state is not to be found.
        The connection is then the caller's alone: this stream reads nothing more for
        httpcore, which closes it with the response."""
        if self._in_head or self._given or self._taken:
            return None
        tls = None
        if self._inner.get_extra_info("ssl_object") is not None:
            tls = _tls_state(self._inner)
            if tls is None:
                return None
        sock = self._inner.get_extra_info("socket")
        if sock is None:
            return None
        held, self._held = self._held, b""
        self._taken = True
        return held, sock, tls

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        self._in_head, self._tail, self._start = True, b"", b""  # a request: a head follows
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> httpcore.AsyncNetworkStream:
        inner = await self._inner.start_tls(ssl_context, server_hostname, timeout)
        return _WideStream(inner, self._read_size)

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


def _tls_state(stream: httpcore.AsyncNetworkStream) -> TLSState | None:
    """The TLS state of one of httpcore's trio streams, TLS straight over TCP: trio's
    ``SSLStream`` keeps it in private attributes, so anything unexpected is None (the body
    then goes through httpx as it would have)."""
    ssl_stream = getattr(stream, "_stream", None)
    if not isinstance(ssl_stream, trio.SSLStream):
        return None
    if not isinstance(ssl_stream.transport_stream, trio.SocketStream):
        return None  # TLS inside TLS (through an HTTPS proxy)
    ssl_object = getattr(ssl_stream, "_ssl_object", None)
    incoming = getattr(ssl_stream, "_incoming", None)
    outgoing = getattr(ssl_stream, "_outgoing", None)
    if not isinstance(ssl_object, ssl.SSLObject):
        return None
    if not (isinstance(incoming, ssl.MemoryBIO) and isinstance(outgoing, ssl.MemoryBIO)):
        return None
    return TLSState(ssl_object, incoming, outgoing)


class WideReads(httpcore.AsyncNetworkBackend):
    """A network backend whose streams read up to ``read_size`` bytes at a time."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend, read_size: int = READ_SIZE):
        self._inner = inner
        self._read_size = read_size

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109
        local_address: str | None = None,
        socket_options: Iterable[_SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return _WideStream(stream, self._read_size)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109
        socket_options: Iterable[_SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self._inner.connect_unix_socket(path, timeout, socket_options)
        return _WideStream(stream, self._read_size)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def tls_context(*, ca_file: str = "", insecure: bool = False) -> ssl.SSLContext:
    """TLS settings for one upstream: the public CAs (httpx's bundle) and those of
    ``ca_file``; or, ``insecure``, no check of the upstream's certificate at all. The
    plain default is made once and shared (loading the bundle takes tens of ms)."""
    if insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if not ca_file:
        return _public_cas()
    context = httpx.create_ssl_context()
    context.load_verify_locations(cafile=ca_file)
    return context


@functools.cache
def _public_cas() -> ssl.SSLContext:
    return httpx.create_ssl_context()


def upstream_transport(
    *, tls: ssl.SSLContext | None = None, read_size: int = READ_SIZE
) -> httpx.AsyncHTTPTransport:
    """httpx's transport with its default limits, on trio, reading in ``read_size`` slices,
    with the TLS settings ``tls`` (default: the public CAs, :func:`tls_context`).

    The caller hands it to ``httpx.AsyncClient(transport=...)``, which closes it.
    """
    context = tls or tls_context()
    transport = httpx.AsyncHTTPTransport(verify=context)
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)  # httpx's own
    # httpx takes no network backend, so its pool is replaced by the same pool with one.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=context,
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=WideReads(httpcore.TrioBackend(), read_size),
    )
    return transport
