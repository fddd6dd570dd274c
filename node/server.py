"""The node's HTTP/1.1 server: ASGI applications over trio and h11, with zero-copy files.

Pulls are most of what a node serves, and two costs decide their speed: the per-request
machinery of the server (for a manifest GET it is most of the CPU) and copying blob bytes
through Python. This server keeps the first small (one task per connection, requests
handled inline, a small response goes out in one write) and removes the second: an
application may answer with ASGI's ``http.response.zerocopysend`` extension and the bytes
go from the page cache to the socket with ``os.sendfile``.

- HTTP/1.1 (and 1.0) with keep-alive and pipelining, chunked or sized request bodies
  streamed to the application as it reads them, ``Expect: 100-continue`` answered when
  the application first reads the body, HEAD, ``Connection: close``.
- A connection keeps trio's 16 KiB limit on unsent data (``TCP_NOTSENT_LOWAT``): without
  it a blob read from the page cache goes out at less than half the speed on loopback
  (1,900 against 5,000 MiB/s to one curl). A body the application streams in pieces (a
  cache fill's, at the upstream's pace) goes out without the limit (:meth:`unlimit`):
  with it, a client reading 32 KiB at a time (skopeo) wakes the connection per 64 KiB,
  and the node spent 0.9 instead of 0.75 CPU-s per cold 256 MiB pull.
- Limits: a request head larger than ``MAX_HEAD`` gets 431; a malformed one 400; an idle
  connection is closed after ``keep_alive`` seconds; a request head still incomplete
  ``read_timeout`` seconds after its first bytes, or a body that stalls that long, ends
  its connection.
- A request body the application left unread is read and dropped after the answer when
  at most ``DRAIN_MAX`` bytes of it are left (so the connection serves the next request);
  an answer to a request with more left says ``Connection: close``, and the connection
  then stops sending and reads for up to ``LINGER`` seconds before it closes, so that the
  answer reaches the client rather than a reset.
- An application that fails before answering gets a 500 for its request (the traceback
  goes to the log, never to the client); one that fails or stops mid-answer ends the
  connection, so a client never takes a short body for a whole one.
- Shutdown (cancelling :func:`serve`): the listeners close at once, idle connections
  close, requests in flight get ``grace`` seconds to finish.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any

import h11
import trio

from node.exchange import DRAIN_MAX, ClientGone, Exchange

__all__ = ["DRAIN_MAX", "MAX_HEAD", "Connection", "bind_sockets", "serve"]

App = Callable[..., Awaitable[None]]

MAX_HEAD = 64 * 1024
#: the queue of connections not yet accepted, per listening socket
BACKLOG = 1024
READ_SIZE = 256 * 1024
#: the largest piece of a file one ``sendfile`` call sends (other connections get turns)
SENDFILE_PIECE = 8 * 1024 * 1024
#: ``TCP_NOTSENT_LOWAT`` (Linux's number where the socket module lacks it), trio's value
#: of it, and no limit
TCP_NOTSENT_LOWAT = getattr(socket, "TCP_NOTSENT_LOWAT", 25)
NOTSENT_LOWAT = 16 * 1024
UNLIMITED = 0x7FFFFFFF
#: how long a connection closing with request bytes unread keeps reading them
LINGER = 2.0


class Connection:
    """One client connection: reads requests, runs the application for each, answers."""

    def __init__(self, server: _Server, stream: trio.SocketStream) -> None:
        self.server = server
        self.stream = stream
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        #: shielded: a shutdown reaches a connection through :meth:`_Server.close` only
        self.scope = trio.CancelScope(shield=True)
        self.idle = True
        sock = stream.socket
        self.client = _address(sock.getpeername())
        self.local = _address(sock.getsockname())
        #: the unsent-data limit is lifted for the response under way
        self.unlimited = False

    async def run(self) -> None:
        with self.scope:
            try:
                while not self.server.closing:
                    event = await self.next_event(self.server.keep_alive, self.server.read_timeout)
                    if not isinstance(event, h11.Request):
                        return
                    if _head_size(event) > MAX_HEAD:  # it arrived in one read
                        raise h11.RemoteProtocolError("request head too large", 431)
                    self.idle = False
                    keep = await Exchange(self, event).run()
                    self.idle = True
                    if self.unlimited:
                        self._set_lowat(NOTSENT_LOWAT)
                        self.unlimited = False
                    if not keep or self.h11.our_state is not h11.DONE:
                        return
                    if not await self._drain():
                        return
                    self.h11.start_next_cycle()
            except h11.RemoteProtocolError as exc:
                await self._refuse(exc)
            except (trio.BrokenResourceError, trio.ClosedResourceError, ClientGone, OSError):
                pass
            finally:
                with trio.CancelScope(shield=True):
                    await self._close()

    async def _drain(self) -> bool:
        """Read and drop what the application left of the request body (at most
        ``DRAIN_MAX`` bytes, each read within ``read_timeout``); whether it all came."""
        budget = DRAIN_MAX
        wait = self.server.read_timeout
        while self.h11.their_state is h11.SEND_BODY:
            event = await self.next_event(wait, wait)
            if isinstance(event, h11.Data):
                budget -= len(event.data)
                if budget < 0:
                    return False
            elif event is None:
                return False
        return self.h11.their_state is h11.DONE

    async def _close(self) -> None:
        """Close the connection; with request bytes still coming, stop sending first and
        read them for a while (closing a socket that holds unread bytes resets it, and the
        client could lose the answer it was sent)."""
        if self.h11.their_state is h11.SEND_BODY:
            with trio.move_on_after(LINGER):
                try:
                    await self.stream.send_eof()
                    while await self.stream.receive_some(READ_SIZE):
                        pass
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    pass
        await self.stream.aclose()

    async def next_event(self, wait: float, rest: float) -> Any:
        """The next h11 event, reading as needed; None when nothing arrives for ``wait``
        seconds or, once something did, the event is still incomplete ``rest`` seconds on."""
        event = self.h11.next_event()
        if event is not h11.NEED_DATA:  # pipelined, or body bytes already read
            return event
        with trio.move_on_after(wait) as waiting:
            data = await self.stream.receive_some(READ_SIZE)
            waiting.deadline = trio.current_time() + rest
            while True:
                self.h11.receive_data(data)
                event = self.h11.next_event()
                if event is not h11.NEED_DATA:
                    return event
                data = await self.stream.receive_some(READ_SIZE)
        return None

    async def _refuse(self, exc: h11.RemoteProtocolError) -> None:
        """Answer a request the client got wrong (400, or 431 for a huge head)."""
        if self.h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        status = exc.error_status_hint
        body = f'{{"errors":[{{"code":"UNSUPPORTED","message":"{status}: bad request"}}]}}'
        headers = [
            ("content-type", "application/json"),
            ("content-length", str(len(body))),
            ("connection", "close"),
        ]
        try:
            data = self.h11.send(h11.Response(status_code=status, headers=headers))
            await self.stream.send_all(data + body.encode())
        except (h11.LocalProtocolError, trio.BrokenResourceError, OSError):
            pass

    def unlimit(self) -> None:
        """Lift the limit on unsent data until the response under way ends."""
        if not self.unlimited:
            self.unlimited = True
            self._set_lowat(UNLIMITED)

    def _set_lowat(self, value: int) -> None:
        with contextlib.suppress(OSError):  # a closed socket, or a kernel without it
            self.stream.socket.setsockopt(socket.IPPROTO_TCP, TCP_NOTSENT_LOWAT, value)

    async def send(self, data: bytes | bytearray | memoryview) -> None:
        try:
            await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise ClientGone("the client went away") from exc

    async def sendfile(self, fd: int, offset: int, count: int) -> None:
        """Send ``count`` bytes of file ``fd`` from ``offset`` with ``os.sendfile``."""
        sock = self.stream.socket
        out = sock.fileno()
        end = offset + count
        while offset < end:
            try:
                sent = os.sendfile(out, fd, offset, min(end - offset, SENDFILE_PIECE))
            except BlockingIOError:
                await trio.lowlevel.wait_writable(sock)
                continue
            except OSError as exc:
                if exc.errno in (errno.EPIPE, errno.ECONNRESET):
                    raise ClientGone("the client went away") from exc
                raise
            if sent == 0:
                raise OSError(f"the file ended {end - offset} bytes early")
            offset += sent
            await trio.lowlevel.checkpoint()


class _Server:
    def __init__(self, app: App, keep_alive: float, read_timeout: float) -> None:
        self.app = app
        self.keep_alive = keep_alive
        self.read_timeout = read_timeout
        self.closing = False
        self.connections: set[Connection] = set()
        self.drained = trio.Event()

    async def handle(self, stream: trio.SocketStream) -> None:
        if self.closing:
            await stream.aclose()
            return
        try:
            conn = Connection(self, stream)
        except OSError:  # gone before it could be served
            await stream.aclose()
            return
        self.connections.add(conn)
        try:
            await conn.run()
        finally:
            self.connections.discard(conn)
            if self.closing and not self.connections:
                self.drained.set()

    def close(self, grace: float) -> None:
        """Close idle connections now and busy ones after ``grace`` seconds."""
        self.closing = True
        deadline = trio.current_time() + grace
        for conn in self.connections:
            if conn.idle:
                conn.scope.cancel()
            else:
                conn.scope.deadline = min(conn.scope.deadline, deadline)
        if not self.connections:
            self.drained.set()


async def serve(
    app: App,
    sockets: Sequence[socket.socket],
    *,
    keep_alive: float = 5.0,
    read_timeout: float = 60.0,
    grace: float = 5.0,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` on ``sockets`` until cancelled; ``task_status`` gets their
    ``host:port`` addresses once they accept. Sockets only bound are made to listen here."""
    server = _Server(app, keep_alive, read_timeout)
    for sock in sockets:
        if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            sock.listen(BACKLOG)
    listeners = [trio.SocketListener(trio.socket.from_stdlib_socket(s)) for s in sockets]
    binds = [_bind_text(s.getsockname()) for s in sockets]
    async with trio.open_nursery() as connections:
        try:
            async with trio.open_nursery() as accepting:
                await accepting.start(
                    partial(trio.serve_listeners, handler_nursery=connections),
                    server.handle,
                    listeners,
                )
                task_status.started(binds)
        finally:
            server.close(grace)
            with trio.CancelScope(shield=True):
                with trio.move_on_after(grace + 1):
                    await server.drained.wait()
            connections.cancel_scope.cancel()


def bind_sockets(listen: str, backlog: int = BACKLOG) -> list[socket.socket]:
    """Listening sockets for ``host:port`` (port 0: a free one)."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, int(port)))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return [sock]


def _head_size(request: h11.Request) -> int:
    return len(request.target) + sum(len(k) + len(v) + 4 for k, v in request.headers)


def _address(address: Any) -> tuple[str, int] | None:
    if isinstance(address, tuple) and len(address) >= 2:
        return str(address[0]), int(address[1])
    return None


def _bind_text(address: Any) -> str:
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
