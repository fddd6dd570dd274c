"""One request on the node's HTTP/1.1 server (:mod:`node.server`): its ASGI scope,
``receive`` and ``send``, including ``http.response.zerocopysend`` (the file goes to the
socket with ``os.sendfile``; h11 frames it through its data passthrough)."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import MutableMapping
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import h11
import trio

if TYPE_CHECKING:
    from node.server import Connection

__all__ = ["DRAIN_MAX", "ClientGone", "Exchange"]

log = logging.getLogger("portmesh.node.server")

Message = MutableMapping[str, Any]

_ASGI = {"version": "3.0", "spec_version": "2.3"}
_EXTENSIONS: dict[str, Any] = {"http.response.zerocopysend": {}}
#: the most request body bytes left unread that the server reads and drops after the
#: answer, to keep the connection
DRAIN_MAX = 1024 * 1024
_NO_BODY = frozenset((204, 304))
_REASONS = {int(s): s.phrase.encode() for s in HTTPStatus}


class ClientGone(Exception):
    """The client closed the connection while its answer was being sent."""


class _FileSpan:
    """A placeholder for ``count`` bytes of a file in h11's data passthrough."""

    __slots__ = ("count",)

    def __init__(self, count: int) -> None:
        self.count = count

    def __len__(self) -> int:
        return self.count


class Exchange:
    """One request and its answer: the ASGI ``receive`` and ``send`` of the application."""

    __slots__ = ("body_done", "conn", "finished", "gone", "head", "request", "start", "started")

    def __init__(self, conn: Connection, request: h11.Request) -> None:
        self.conn = conn
        self.request = request
        self.start: Message | None = None
        self.started = False
        self.finished = False
        self.body_done = False
        #: the client left before the request body ended
        self.gone = False
        self.head = request.method == b"HEAD"

    async def run(self) -> bool:
        """Run the application; whether the connection may serve another request."""
        request = self.request
        target = bytes(request.target)
        raw_path, _, query = target.partition(b"?")
        scope = {
            "type": "http",
            "asgi": _ASGI,
            "http_version": request.http_version.decode("ascii"),
            "method": request.method.decode("ascii"),
            "scheme": "http",
            "path": unquote(raw_path.decode("latin-1")),
            "raw_path": raw_path,
            "query_string": query,
            "root_path": "",
            "headers": list(request.headers),
            "client": self.conn.client,
            "server": self.conn.local,
            "extensions": _EXTENSIONS,
        }
        try:
            await self.conn.server.app(scope, self.receive, self.send)
        except Exception as exc:
            if self.gone or _client_gone(exc):
                log.debug("request %s %s: the client left", scope["method"], scope["path"])
                return False
            log.exception("request %s %s failed", scope["method"], scope["path"])
            if not self.started:
                await self._fail()
            return False
        if not self.started:
            if not self.gone:
                log.error("request %s %s ended without an answer", scope["method"], scope["path"])
                await self._fail()
            return False
        return self.finished

    async def _fail(self) -> None:
        body = b'{"errors":[{"code":"UNKNOWN","message":"internal server error"}]}'
        headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
        self.start = {"status": 500, "headers": headers}
        with contextlib.suppress(ClientGone, h11.LocalProtocolError, OSError):
            await self.send({"type": "http.response.body", "body": body})

    # -- ASGI receive

    async def receive(self) -> Message:
        if self.gone or self.finished:
            return {"type": "http.disconnect"}
        if self.body_done:
            await trio.sleep_forever()  # the application cancels its waiter when it answers
        conn = self.conn
        if conn.h11.they_are_waiting_for_100_continue:
            proceed = h11.InformationalResponse(status_code=100, headers=[])
            await conn.send(conn.h11.send(proceed) or b"")
        try:
            timeout = conn.server.read_timeout
            event = await conn.next_event(timeout, timeout)
        except (h11.RemoteProtocolError, trio.BrokenResourceError, OSError):
            event = None  # the client left (or broke the framing) mid-body
        if isinstance(event, h11.Data):
            return {"type": "http.request", "body": bytes(event.data), "more_body": True}
        if isinstance(event, h11.EndOfMessage):
            self.body_done = True
            return {"type": "http.request", "body": b"", "more_body": False}
        self.gone = True
        return {"type": "http.disconnect"}

    # -- ASGI send

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            if self.start is not None:
                raise RuntimeError("the response has already started")
            self.start = message
        elif kind == "http.response.body":
            await self._body(bytes(message.get("body", b"")), message.get("more_body", False))
        elif kind == "http.response.zerocopysend":
            await self._file(message)
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r}")

    def _response_head(self, body: bytes | None) -> bytes:
        """The status line and headers; ``body`` (a whole answer) fixes Content-Length."""
        start = self.start
        if start is None:
            raise RuntimeError("a body before http.response.start")
        status = int(start["status"])
        headers = start.get("headers", [])
        sized = any(name.lower() == b"content-length" for name, _ in headers)
        if self.conn.h11.their_state is h11.SEND_BODY and not self._drainable():
            headers = [*headers, (b"connection", b"close")]
        if body is not None and status not in _NO_BODY and not self.head and not sized:
            headers = [*headers, (b"content-length", str(len(body)).encode())]
        self.started = True
        reason = _REASONS.get(status, b"")
        response = h11.Response(status_code=status, headers=headers, reason=reason)
        return self.conn.h11.send(response) or b""

    def _drainable(self) -> bool:
        """Whether the request body can be read to its end after the answer: none at all,
        or a declared length of at most ``DRAIN_MAX`` (a chunked one cannot tell)."""
        length = 0
        for name, value in self.request.headers:
            if name == b"transfer-encoding":
                return False
            if name == b"content-length":
                length = int(value)
        return length <= DRAIN_MAX

    async def _body(self, body: bytes, more: bool) -> None:
        if self.finished:
            raise RuntimeError("the response is complete")
        h = self.conn.h11
        if more and not self.started:
            self.conn.unlimit()  # a body in pieces: see node.server
        out = b"" if self.started else self._response_head(None if more else body)
        if body and not self.head:
            pieces = h.send_with_data_passthrough(h11.Data(data=body)) or []
            out = pieces[0] if len(pieces) == 1 and not out else b"".join([out, *pieces])
        if not more:
            out += h.send(h11.EndOfMessage()) or b""
            self.finished = True
        if out:
            await self.conn.send(out)

    async def _file(self, message: Message) -> None:
        if self.finished:
            raise RuntimeError("the response is complete")
        file = message["file"]
        fd = file if isinstance(file, int) else file.fileno()
        offset = message.get("offset") or 0
        count = message.get("count")
        if count is None:
            count = os.fstat(fd).st_size - offset
        more = message.get("more_body", False)
        h = self.conn.h11
        head = b"" if self.started else self._response_head(None)
        if head:
            await self.conn.send(head)
        if count and not self.head:
            span = h11.Data(data=_FileSpan(count))  # type: ignore[arg-type]
            for piece in h.send_with_data_passthrough(span) or []:
                if isinstance(piece, _FileSpan):
                    await self.conn.sendfile(fd, offset, piece.count)
                else:
                    await self.conn.send(piece)
        if not more:
            await self.conn.send(h.send(h11.EndOfMessage()) or b"")
            self.finished = True


def _client_gone(exc: BaseException) -> bool:
    """Whether ``exc`` is (or only holds) the client going away."""
    if isinstance(exc, BaseExceptionGroup):
        rest = exc.split(ClientGone)[1]
        return rest is None
    return isinstance(exc, ClientGone)
