"""The upstream transport against a real HTTP/1.1 server on loopback."""

from __future__ import annotations

import os
from functools import partial

import httpx
import trio

from node.proxy.transport import READ_SIZE, upstream_transport

BODY = os.urandom(16 * 1024 * 1024)


async def _serve(stream: trio.SocketStream) -> None:
    """Answers each request on the connection: ``/big`` with BODY, anything else short."""
    async with stream:
        buffer = b""
        while True:
            while b"\r\n\r\n" not in buffer:
                data = await stream.receive_some()
                if not data:
                    return
                buffer += data
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            body = BODY if head.split(b" ")[1] == b"/big" else b"short"
            await stream.send_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body) + body
            )


async def test_wide_reads_keep_bodies_intact_and_answers_unchanged(
    nursery: trio.Nursery,
) -> None:
    listeners = await nursery.start(partial(trio.serve_tcp, _serve, 0, host="127.0.0.1"))
    port = listeners[0].socket.getsockname()[1]
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", transport=upstream_transport()
    ) as client:
        small = await client.get("/small")
        assert (small.status_code, small.content) == (200, b"short")
        sizes: list[int] = []
        got = bytearray()
        async with client.stream("GET", "/big") as response:
            async for chunk in response.aiter_raw():
                sizes.append(len(chunk))
                got += chunk
        assert got == BODY
        assert max(sizes) > 64 * 1024, "reads wider than httpcore's 64 KiB"
        assert max(sizes) <= READ_SIZE
        again = await client.get("/small")  # the same pooled connection still works
        assert again.content == b"short"
