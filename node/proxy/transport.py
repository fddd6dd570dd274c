"""The HTTP transport of the node's upstream clients: httpx's own, reading in wide slices.

httpcore reads an HTTP/1.1 connection 64 KiB at a time, so a blob body costs one trip
through h11, httpcore and httpx per 64 KiB (about 0.7 CPU-s per GiB received on the
project's 2-core VM). :class:`WideReads` lets every read take up to ``READ_SIZE`` bytes
instead: a read still returns whatever the socket holds at once and never waits for
more, so small answers are unchanged, and a cache fill's body costs about half as much.
Everything else (TLS, pooling, limits, errors) is httpx's ``AsyncHTTPTransport``. The
``timeout`` parameters are httpcore's interface (it times each call itself).
"""

from __future__ import annotations

import ssl
import typing
from collections.abc import Iterable

import httpcore
import httpx

__all__ = ["READ_SIZE", "WideReads", "upstream_transport"]

#: the most one read of an upstream connection takes (measured best: 1 MiB, against
#: 256 KiB and 4 MiB)
READ_SIZE = 1024 * 1024

_SocketOption: typing.TypeAlias = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)


class _WideStream(httpcore.AsyncNetworkStream):
    def __init__(self, inner: httpcore.AsyncNetworkStream, read_size: int) -> None:
        self._inner = inner
        self._read_size = read_size

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        return await self._inner.read(max(max_bytes, self._read_size), timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
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


def upstream_transport(
    *, verify: ssl.SSLContext | str | bool = True, read_size: int = READ_SIZE
) -> httpx.AsyncHTTPTransport:
    """httpx's transport with its default limits, on trio, reading in ``read_size`` slices.

    The caller hands it to ``httpx.AsyncClient(transport=...)``, which closes it.
    """
    context = httpx.create_ssl_context(verify=verify)
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
