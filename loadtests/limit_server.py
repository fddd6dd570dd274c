"""The physical-limit reference: a minimal HTTP/1.1 server that answers every GET with one
file through ``os.sendfile`` (zero-copy from the page cache), on trio.

    python -m loadtests.limit_server --port PORT --file PATH

``GET /v2/`` answers ``{}`` (readiness); any other GET answers the whole file. Keep-alive,
no Range, no parsing beyond the request line: it is the floor any registry can approach
on this machine, not a registry. Listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Awaitable, Callable
from functools import partial

import trio

_MAX_HEAD = 64 * 1024


async def _serve_file(sock: socket.socket, path: str, size: int) -> bool:
    fd = os.open(path, os.O_RDONLY)
    try:
        off = 0
        while off < size:
            try:
                n = os.sendfile(sock.fileno(), fd, off, min(size - off, 8 << 20))
            except BlockingIOError:
                await trio.lowlevel.wait_writable(sock)
                continue
            if n == 0:
                return False
            off += n
            await trio.lowlevel.checkpoint()
        return True
    finally:
        os.close(fd)


def handler(path: str) -> Callable[[trio.SocketStream], Awaitable[None]]:
    """The connection handler serving ``path``."""
    size = os.path.getsize(path)

    async def handle(stream: trio.SocketStream) -> None:
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = await stream.receive_some(65536)
                    if not data or len(buf) > _MAX_HEAD:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                target = head.split(b" ", 2)[1] if head.count(b" ") >= 2 else b""
                if target.rstrip(b"/") == b"/v2":
                    await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                    continue
                await stream.send_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                    b"Content-Length: %d\r\n\r\n" % size
                )
                raw = stream.socket
                assert isinstance(raw, trio.socket.SocketType)
                if not await _serve_file(raw, path, size):  # type: ignore[arg-type]
                    return
        except (trio.BrokenResourceError, ConnectionError):
            return

    return handle


def main() -> None:
    p = argparse.ArgumentParser(prog="loadtests.limit_server")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--file", required=True)
    a = p.parse_args()
    trio.run(partial(trio.serve_tcp, handler(a.file), a.port, host="127.0.0.1"))


if __name__ == "__main__":
    main()
