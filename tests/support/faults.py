"""A loopback HTTP/1.1 fault proxy for tests: it forwards to an upstream address and does
what the test tells it to at run time.

Run it in the test's nursery and point the client at its port::

    proxy = FaultProxy(registry.address)          # "127.0.0.1:5000"
    port = await nursery.start(proxy.serve)
    proxy.respond(429, retry_after=7)            # every request now gets a 429
    proxy.cut_after(1000, match="/blobs/")       # blob bodies end after 1000 bytes
    proxy.pass_through()

Faults: :meth:`pass_through`, :meth:`delay` (sleep before answering), :meth:`cut_after`
(close the connection after K body bytes), :meth:`flip_byte` (XOR one body byte),
:meth:`respond` (answer 429/500/... itself, with an OCI error body), :meth:`reset`
(accept, then reset the connection), :meth:`refuse` (close the listening socket: the
port refuses connections until another fault is chosen, which re-binds the same port).
``match`` limits a fault to paths containing that text; ``times`` to the next N matching
requests, after which the proxy passes through again.

Counters by path (query string dropped): ``requests`` (received), ``forwarded`` (sent
upstream), ``forwarded_bytes`` (response body bytes read from upstream), so a test can say
"upstream fetched this blob once". Each request goes upstream on its own connection;
client connections are kept alive. A client that goes away mid-answer ends only its
handler. Leaving the nursery (cancellation) stops everything.
"""

from __future__ import annotations

import socket
import struct
from collections import Counter
from dataclasses import dataclass

import h11
import trio

__all__ = ["Fault", "FaultProxy"]

_CHUNK = 65536


@dataclass
class Fault:
    """What to do with a request: ``kind`` is pass, delay, cut, flip, respond, reset or
    refuse; the other fields are that kind's arguments."""

    kind: str = "pass"
    seconds: float = 0.0
    nbytes: int = 0
    at: int | None = None
    status: int = 500
    retry_after: str | None = None
    match: str | None = None
    times: int | None = None

    def applies_to(self, path: str) -> bool:
        return self.kind != "pass" and (self.match is None or self.match in path)


class FaultProxy:
    """See the module docstring. ``upstream`` is ``HOST:PORT``."""

    def __init__(self, upstream: str, *, host: str = "127.0.0.1") -> None:
        up_host, _, up_port = upstream.rpartition(":")
        self.upstream = (up_host, int(up_port))
        self.host = host
        self.port: int | None = None
        self.requests: Counter[str] = Counter()
        self.forwarded: Counter[str] = Counter()
        self.forwarded_bytes: Counter[str] = Counter()
        self.fault = Fault()
        self._accepting: trio.CancelScope | None = None
        self._resume = trio.Event()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    # -- switches ---------------------------------------------------------------------

    def _set(self, fault: Fault) -> None:
        self.fault = fault
        if fault.kind == "refuse":
            self._resume = trio.Event()
            if self._accepting is not None:
                self._accepting.cancel()
        else:
            self._resume.set()

    def pass_through(self) -> None:
        self._set(Fault())

    def delay(self, seconds: float, *, match: str | None = None, times: int | None = None) -> None:
        self._set(Fault("delay", seconds=seconds, match=match, times=times))

    def cut_after(self, nbytes: int, *, match: str | None = None, times: int | None = None) -> None:
        self._set(Fault("cut", nbytes=nbytes, match=match, times=times))

    def flip_byte(
        self, at: int | None = None, *, match: str | None = None, times: int | None = None
    ) -> None:
        """XOR one response body byte (at offset ``at``; default: the middle one)."""
        self._set(Fault("flip", at=at, match=match, times=times))

    def respond(
        self,
        status: int,
        *,
        retry_after: str | float | None = None,
        match: str | None = None,
        times: int | None = None,
    ) -> None:
        ra = None if retry_after is None else str(retry_after)
        self._set(Fault("respond", status=status, retry_after=ra, match=match, times=times))

    def reset(self, *, match: str | None = None, times: int | None = None) -> None:
        self._set(Fault("reset", match=match, times=times))

    def refuse(self) -> None:
        self._set(Fault("refuse"))

    # -- serving ----------------------------------------------------------------------

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen on ``host`` (a free port first, the same port after a refusal) and
        proxy until cancelled; ``task_status.started(port)`` once listening."""
        started = False
        async with trio.open_nursery() as nursery:
            while True:
                listeners = await trio.open_tcp_listeners(self.port or 0, host=self.host)
                self.port = int(listeners[0].socket.getsockname()[1])
                if not started:
                    task_status.started(self.port)
                    started = True
                with trio.CancelScope() as scope:
                    self._accepting = scope
                    async with listeners[0] as listener:
                        if self.fault.kind == "refuse":
                            scope.cancel()
                        while True:
                            stream = await listener.accept()
                            nursery.start_soon(self._handle, stream)
                self._accepting = None
                await self._resume.wait()

    def _take(self, path: str) -> Fault:
        fault = self.fault
        if not fault.applies_to(path):
            return Fault()
        if fault.times is not None:
            fault.times -= 1
            if fault.times <= 0:
                self.fault = Fault()
        return fault

    async def _handle(self, client: trio.SocketStream) -> None:
        try:
            async with client:
                conn = h11.Connection(h11.SERVER)
                while True:
                    received = await _read_message(client, conn)
                    if received is None:
                        return
                    request, body = received
                    assert isinstance(request, h11.Request)
                    path = request.target.decode("latin-1").split("?", 1)[0]
                    self.requests[path] += 1
                    fault = self._take(path)
                    if not await self._answer(client, conn, request, body, path, fault):
                        return
                    if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                        return
                    conn.start_next_cycle()
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError, OSError):
            return

    async def _answer(
        self,
        client: trio.SocketStream,
        conn: h11.Connection,
        request: h11.Request,
        body: bytes,
        path: str,
        fault: Fault,
    ) -> bool:
        """Answer one request; False when the connection must end here."""
        if fault.kind == "reset":
            client.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            return False
        if fault.kind == "respond":
            await _send_error(client, conn, fault, head=request.method == b"HEAD")
            return True
        if fault.kind == "delay":
            await trio.sleep(fault.seconds)
        self.forwarded[path] += 1
        upstream = await trio.open_tcp_stream(*self.upstream)
        async with upstream:
            up = h11.Connection(h11.CLIENT)
            headers = [(k, v) for k, v in request.headers if k.lower() != b"connection"]
            headers.append((b"connection", b"close"))
            out = up.send(
                h11.Request(method=request.method, target=request.target, headers=headers)
            )
            if body:
                out = (out or b"") + (up.send(h11.Data(data=body)) or b"")
            out = (out or b"") + (up.send(h11.EndOfMessage()) or b"")
            await upstream.send_all(out)
            response = await _next_event(upstream, up)
            while isinstance(response, h11.InformationalResponse):
                response = await _next_event(upstream, up)
            assert isinstance(response, h11.Response)
            resp_headers = [(k, v) for k, v in response.headers if k.lower() != b"connection"]
            length = next((int(v) for k, v in resp_headers if k == b"content-length"), None)
            flip_at = fault.at if fault.at is not None else (length or 0) // 2
            await client.send_all(
                conn.send(
                    h11.Response(
                        status_code=response.status_code,
                        headers=resp_headers,
                        reason=response.reason,
                    )
                )
                or b""
            )
            sent = 0
            while True:
                event = await _next_event(upstream, up)
                if isinstance(event, h11.EndOfMessage):
                    break
                if not isinstance(event, h11.Data):
                    return False
                data = bytes(event.data)
                self.forwarded_bytes[path] += len(data)
                if fault.kind == "flip" and sent <= flip_at < sent + len(data):
                    i = flip_at - sent
                    data = data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1 :]
                if fault.kind == "cut" and sent + len(data) >= fault.nbytes:
                    await client.send_all(
                        conn.send(h11.Data(data=data[: fault.nbytes - sent])) or b""
                    )
                    return False
                sent += len(data)
                await client.send_all(conn.send(h11.Data(data=data)) or b"")
        await client.send_all(conn.send(h11.EndOfMessage()) or b"")
        return True


async def _next_event(stream: trio.SocketStream, conn: h11.Connection) -> h11.Event | type:
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        conn.receive_data(await stream.receive_some(_CHUNK))


async def _read_message(
    stream: trio.SocketStream, conn: h11.Connection
) -> tuple[h11.Request, bytes] | None:
    """A whole request (head and body), or None when the peer closed the connection."""
    head = await _next_event(stream, conn)
    if not isinstance(head, h11.Request):
        return None
    body = bytearray()
    while True:
        event = await _next_event(stream, conn)
        if isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            return head, bytes(body)
        else:
            return None


async def _send_error(
    client: trio.SocketStream, conn: h11.Connection, fault: Fault, *, head: bool
) -> None:
    code = "TOOMANYREQUESTS" if fault.status == 429 else "UNAVAILABLE"
    body = b'{"errors":[{"code":"%s","message":"injected by the fault proxy"}]}' % code.encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    if fault.retry_after is not None:
        headers.append((b"retry-after", fault.retry_after.encode()))
    out = conn.send(h11.Response(status_code=fault.status, headers=headers)) or b""
    if not head:
        out += conn.send(h11.Data(data=body)) or b""
    out += conn.send(h11.EndOfMessage()) or b""
    await client.send_all(out)
