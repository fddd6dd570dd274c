"""A blob body streamed from an httpx response: the ``BlobStream`` of the OCI client.

It reads the response's framing (200 vs 206 and ``Content-Range``) once, then yields the
body as it arrives: through httpx, or, where the response's network stream lets go of the
body (:class:`DirectBody`, the node's upstream transport) and the body has a plain
``Content-Length``, straight from the socket, without h11's buffer copies; over TLS the
connection's own TLS state decrypts what the socket brings, every record at once rather
than one 16 KiB record per trip through the TLS stream, h11 and httpx. If the
upstream ignored a ``Range`` (answered 200 to a ranged request), the unwanted bytes are
skipped here, so the caller always gets exactly what it asked for; ``status`` still tells
what the upstream did.
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import AsyncGenerator
from typing import Any, NamedTuple, Protocol, cast

import httpx
import trio

from .errors import ProtocolError, Unavailable, error_from_transport

__all__ = [
    "READ_SIZE",
    "DirectBody",
    "HTTPBlobStream",
    "TLSState",
    "abandon",
    "body_chunks",
]

_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
#: the most one read of an upstream connection takes, through h11 or directly: 2 MiB
#: (one cold 256 MiB GET cost the node 0.45 CPU-s against 0.52 with 1 MiB; 4 MiB and
#: 256 KiB did worse)
READ_SIZE = 2 * 1024 * 1024


class TLSState(NamedTuple):
    """A TLS connection's state, to go on reading it past its stream: the SSL object and
    its incoming and outgoing memory BIOs (ciphertext from and to the socket)."""

    ssl_object: ssl.SSLObject
    incoming: ssl.MemoryBIO
    outgoing: ssl.MemoryBIO


class DirectBody(Protocol):
    """A network stream (httpx's ``network_stream`` response extension) that can hand a
    response's body over: the bytes it already read (and decrypted) past the head, the
    trio socket to read the rest from, and the connection's TLS state (None: plain TCP);
    None when it cannot (part of the body went to h11, or TLS it cannot take over)."""

    def take_body(self) -> tuple[bytes, Any, TLSState | None] | None: ...


def _direct_chunks(response: httpx.Response, what: str) -> AsyncGenerator[bytes, None] | None:
    """The body of ``response`` read from its socket, or None where that cannot be done:
    no network stream that gives its body up, or a body that is not ``Content-Length``
    bytes as they are (a transfer or content encoding)."""
    length = _int_header(response, "content-length")
    encodings = {
        response.headers.get("transfer-encoding", "").strip().lower(),
        response.headers.get("content-encoding", "").strip().lower(),
    }
    stream = response.extensions.get("network_stream")
    if length is None or not encodings <= {"", "identity"} or not hasattr(stream, "take_body"):
        return None
    taken = cast(DirectBody, stream).take_body()
    if taken is None:
        return None
    timeout = response.request.extensions.get("timeout", {}).get("read")
    held, sock, tls = taken
    return _socket_chunks(held, sock, tls, length, what, idle=timeout)


async def _socket_chunks(
    held: bytes,
    sock: Any,
    tls: TLSState | None,
    length: int,
    what: str,
    *,
    idle: float | None,
) -> AsyncGenerator[bytes, None]:
    """``length`` bytes: ``held``, then what ``sock`` brings (each read at most
    ``READ_SIZE`` bytes, whatever is there), decrypted with ``tls`` if given;
    :class:`Unavailable` if the connection ends first or brings nothing for ``idle``
    seconds."""
    rest = length
    if held:
        piece = held[:rest]
        rest -= len(piece)
        yield piece
    while rest > 0:
        if tls is not None:
            data = _decrypted(tls, sock, min(rest, READ_SIZE), what)
            if data:
                rest -= len(data)
                await trio.lowlevel.checkpoint()
                yield data
                continue
        try:
            # TLS: whatever ciphertext there is; -1 once closed: EBADF
            data = os.read(sock.fileno(), READ_SIZE if tls else min(rest, READ_SIZE))
        except BlockingIOError:
            try:
                with trio.fail_after(idle if idle is not None else float("inf")):
                    await trio.lowlevel.wait_readable(sock)
            except trio.TooSlowError:
                raise Unavailable(f"{what}: no bytes for {idle} s (ReadTimeout)") from None
            continue
        except OSError as exc:
            raise Unavailable(f"{what}: {exc} (ReadError)") from exc
        if not data:
            raise Unavailable(f"{what}: the connection ended {rest} bytes short")
        if tls is not None:
            tls.incoming.write(data)
            continue
        rest -= len(data)
        await trio.lowlevel.checkpoint()
        yield data


def _decrypted(tls: TLSState, sock: Any, most: int, what: str) -> bytes:
    """Up to ``most`` bytes of plaintext from the ciphertext ``tls`` holds (b"" when it
    needs more). What the TLS layer has to say back (a key update) is sent at once."""
    parts: list[bytes] = []
    got = 0
    while got < most:
        try:
            piece = tls.ssl_object.read(most - got)
        except ssl.SSLWantReadError:  # more ciphertext first
            break
        except ssl.SSLZeroReturnError:
            raise Unavailable(f"{what}: the upstream ended TLS short of the body") from None
        except ssl.SSLError as exc:
            raise Unavailable(f"{what}: {exc} (TLS)") from exc
        if not piece:
            break
        parts.append(piece)
        got += len(piece)
    if tls.outgoing.pending:
        answer = tls.outgoing.read()
        try:
            sent = os.write(sock.fileno(), answer)
        except OSError as exc:
            raise Unavailable(f"{what}: {exc} (WriteError)") from exc
        if sent != len(answer):
            raise Unavailable(f"{what}: could not send a TLS answer (WriteError)")
    return parts[0] if len(parts) == 1 else b"".join(parts)


def body_chunks(response: httpx.Response) -> AsyncGenerator[bytes, None]:
    """``response.aiter_bytes()``, typed as the async generator it is (so it can be
    closed early with ``aclose`` / ``contextlib.aclosing``)."""
    return cast(AsyncGenerator[bytes, None], response.aiter_bytes())


async def abandon(response: httpx.Response, chunks: AsyncGenerator[bytes, None]) -> None:
    """Stop reading ``response`` early without leaking httpx's nested body generators.

    ``chunks.aclose()`` alone leaves the generators inside ``aiter_bytes`` suspended (trio
    then warns when they are collected); closing the response first makes the next read
    fail at the bottom, which unwinds every level. Shielded: it does no network waiting.
    """
    with trio.CancelScope(shield=True):
        await response.aclose()
        try:
            while True:
                await chunks.__anext__()
        except Exception:  # StopAsyncIteration, or the read error of the closed stream
            return


def _int_header(response: httpx.Response, name: str) -> int | None:
    value = response.headers.get(name)
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        return None
    return number if number >= 0 else None


class HTTPBlobStream:
    """See :class:`adapters.base.BlobStream`. Made by ``OCIClient.open_blob``; the
    response is closed by whoever opened it, not by this object."""

    def __init__(
        self, response: httpx.Response, offset: int, length: int | None, what: str
    ) -> None:
        self._response = response
        self._what = what
        self._skip = 0
        self._limit: int | None = None
        self._chunks: AsyncGenerator[bytes, None] | None = None
        #: the body is read from the socket (not through httpx)
        self._direct = False
        self.status: int = response.status_code
        self.offset: int = offset
        self.length: int | None = length
        self.total: int | None = None
        body_length = _int_header(response, "content-length")
        if self.status == 206:
            match = _CONTENT_RANGE.match(response.headers.get("content-range", "").strip())
            if match is None:
                raise ProtocolError(f"{what}: 206 without a usable Content-Range", status=206)
            start, end = int(match[1]), int(match[2])
            if start != offset or end < start:
                raise ProtocolError(
                    f"{what}: asked for bytes from {offset}, got Content-Range {match[0]!r}",
                    status=206,
                )
            self.offset = start
            self.length = end - start + 1
            self.total = int(match[3]) if match[3] != "*" else None
            if length is not None and self.length > length:
                self._limit = length
                self.length = length
        else:
            self.total = body_length
            self.offset = offset
            self._skip = offset
            if body_length is not None and offset > body_length:
                raise ProtocolError(
                    f"{what}: offset {offset} is past the blob's {body_length} bytes",
                    status=self.status,
                )
            if body_length is None:
                self.length = length
            else:
                rest = body_length - offset
                self.length = rest if length is None else min(rest, length)
            self._limit = self.length

    def __repr__(self) -> str:
        return (
            f"HTTPBlobStream(status={self.status}, offset={self.offset},"
            f" length={self.length}, total={self.total})"
        )

    def __aiter__(self) -> HTTPBlobStream:
        return self

    async def __anext__(self) -> bytes:
        if self._chunks is None:
            self._chunks = _direct_chunks(self._response, self._what)
            self._direct = self._chunks is not None
            if self._chunks is None:
                self._chunks = body_chunks(self._response)
        chunks = self._chunks
        while True:
            if self._limit is not None and self._limit <= 0:
                await self.aclose()  # the rest (if any) is not wanted
                raise StopAsyncIteration
            try:
                chunk = await chunks.__anext__()
            except StopAsyncIteration:
                self._chunks = None
                if self._limit:
                    raise Unavailable(
                        f"{self._what}: stream ended {self._limit} bytes short"
                    ) from None
                raise
            except httpx.HTTPError as exc:
                self._chunks = None
                raise error_from_transport(exc, self._what) from exc
            if self._skip:
                if len(chunk) <= self._skip:
                    self._skip -= len(chunk)
                    continue
                chunk, self._skip = chunk[self._skip :], 0
            if self._limit is not None:
                chunk = chunk[: self._limit]
                self._limit -= len(chunk)
            if chunk:
                return chunk

    async def aclose(self) -> None:
        """Stop reading the body; closes the response. Idempotent."""
        if self._chunks is not None:
            chunks, self._chunks = self._chunks, None
            if self._direct:  # done with the socket before the response closes it
                await chunks.aclose()
                await self._response.aclose()
            else:
                await abandon(self._response, chunks)
