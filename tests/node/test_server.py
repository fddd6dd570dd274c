"""The node's HTTP/1.1 server (``node.server``) on a real loopback socket: keep-alive and
pipelining, streamed and chunked request bodies, ``Expect: 100-continue``, zero-copy file
answers (whole, ranged, HEAD), limits, failing applications and graceful shutdown."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from node.app import serve as serve_node
from node.config import NodeConfig
from node.server import MAX_HEAD, NOTSENT_LOWAT, TCP_NOTSENT_LOWAT, UNLIMITED, bind_sockets, serve

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


async def answer(send: Any, status: int, body: bytes, *headers: tuple[bytes, bytes]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": list(headers)})
    await send({"type": "http.response.body", "body": body})


async def echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers with the sha256 and size of the request body, read as it streams."""
    digest, size = hashlib.sha256(), 0
    while True:
        message = await receive()
        assert message["type"] == "http.request"
        digest.update(message["body"])
        size += len(message["body"])
        if not message.get("more_body"):
            break
    text = f"{scope['method']} {scope['path']} {scope['query_string'].decode()} {size} "
    await answer(send, 200, (text + digest.hexdigest()).encode())


@asynccontextmanager
async def running(app: App, **options: Any) -> AsyncIterator[tuple[str, trio.CancelScope]]:
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(
            lambda task_status: serve(
                app, bind_sockets("127.0.0.1:0"), task_status=task_status, **options
            )
        )
        yield binds[0], nursery.cancel_scope
        nursery.cancel_scope.cancel()


async def pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    """``data`` in ``size``-byte pieces: httpx sends such a body chunked."""
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def connect(address: str) -> trio.SocketStream:
    """A new connection to the server at ``host:port``."""
    host, port = address.rsplit(":", 1)
    return await trio.open_tcp_stream(host, int(port))


async def raw(address: str, data: bytes, *, until_closed: bool = True) -> bytes:
    """Send ``data`` on a new connection; everything the server answers until it closes
    (or, without ``until_closed``, what arrives within half a second)."""
    async with await connect(address) as stream:
        await stream.send_all(data)
        got = b""
        with trio.move_on_after(10 if until_closed else 0.5):
            while chunk := await stream.receive_some(65536):
                got += chunk
        return got


async def test_keep_alive_pipelining_and_streamed_bodies() -> None:
    async with running(echo_app) as (address, _), httpx.AsyncClient() as http:
        url = f"http://{address}"
        first = await http.get(f"{url}/v2/a%2Fb?n=1")
        assert first.status_code == 200 and first.reason_phrase == "OK"
        assert first.text.startswith("GET /v2/a/b n=1 0 ")
        body = os.urandom(3 * 1024 * 1024 + 17)
        streamed = await http.patch(f"{url}/up", content=pieces(body, 100_000))  # chunked
        assert streamed.text == f"PATCH /up  {len(body)} {hashlib.sha256(body).hexdigest()}"
        assert first.extensions["network_stream"] is streamed.extensions["network_stream"]
    async with running(echo_app) as (address, _):
        two = b"GET /one HTTP/1.1\r\nHost: x\r\n\r\nPOST /two HTTP/1.1\r\nHost: x\r\n"
        two += b"Content-Length: 3\r\nConnection: close\r\n\r\nabc"
        got = await raw(address, two)
        assert got.count(b"HTTP/1.1 200 OK") == 2
        assert b"GET /one  0 " in got and b"POST /two  3 " in got


def unsent_limit(client: tuple[str, int]) -> int:
    """``TCP_NOTSENT_LOWAT`` of this process's connection from ``client``."""
    for name in os.listdir("/proc/self/fd"):
        try:
            sock = socket.socket(fileno=os.dup(int(name)))
        except OSError:  # not a socket
            continue
        with sock:
            try:
                if sock.type == socket.SOCK_STREAM and sock.getpeername() == client:
                    return sock.getsockopt(socket.IPPROTO_TCP, TCP_NOTSENT_LOWAT)
            except OSError:  # a listener, or not TCP
                continue
    raise AssertionError(f"no connection from {client}")


async def test_a_body_sent_in_pieces_goes_out_without_the_unsent_data_limit() -> None:
    seen: list[tuple[str, int]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        path, client = scope["path"], scope["client"]
        seen.append((f"{path} before", unsent_limit(client)))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        if path == "/pieces":
            for _ in range(3):
                await send({"type": "http.response.body", "body": b"x" * 1000, "more_body": True})
                seen.append((f"{path} sending", unsent_limit(client)))
        await send({"type": "http.response.body", "body": b"y"})

    async with running(app) as (address, _), httpx.AsyncClient() as http:
        for path in ("/whole", "/pieces", "/whole"):
            got = await http.get(f"http://{address}{path}")
            assert got.content == (b"x" * 3000 if path == "/pieces" else b"") + b"y"
    assert seen == [
        ("/whole before", NOTSENT_LOWAT),
        ("/pieces before", NOTSENT_LOWAT),
        *[("/pieces sending", UNLIMITED)] * 3,
        ("/whole before", NOTSENT_LOWAT),  # the same connection, its limit back
    ]


async def test_a_socket_only_bound_starts_listening_when_served() -> None:
    """How ``--workers`` hands sockets over: no connection is taken before serving."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", 0))
    address = f"127.0.0.1:{sock.getsockname()[1]}"
    with pytest.raises(OSError):  # refused: nothing listens yet
        await connect(address)
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(serve, echo_app, [sock]))
        async with httpx.AsyncClient() as http:
            got = await http.get(f"http://{address}/ready")
        assert got.status_code == 200 and got.text.startswith("GET /ready")
        nursery.cancel_scope.cancel()


async def test_expect_100_continue_is_answered_when_the_body_is_read() -> None:
    async with running(echo_app) as (address, _), await connect(address) as stream:
        await stream.send_all(
            b"PUT /x HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
        )
        interim = await stream.receive_some(1024)
        assert interim.startswith(b"HTTP/1.1 100 ")
        await stream.send_all(b"hello")
        final = await stream.receive_some(65536)
        assert final.startswith(b"HTTP/1.1 200 OK") and b"PUT /x  5 " in final


async def test_bad_requests_get_clear_errors() -> None:
    async with running(echo_app) as (address, _):
        huge = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (MAX_HEAD + 10) + b"\r\n\r\n"
        got = await raw(address, huge)
        assert got.startswith(b"HTTP/1.1 431 ")
        got = await raw(address, b"NOT HTTP AT ALL\r\n\r\n")
        assert got.startswith(b"HTTP/1.1 400 ") and b'"errors"' in got


async def test_failing_applications(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"] == "/before":
            raise RuntimeError("secret detail")
        if scope["path"] == "/silent":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"x" * 10, "more_body": True})
        raise RuntimeError("mid-body")

    with caplog.at_level(logging.ERROR, logger="portmesh.node.server"):
        async with running(app) as (address, _), httpx.AsyncClient() as http:
            before = await http.get(f"http://{address}/before")
            assert before.status_code == 500
            assert "secret" not in before.text and before.json()["errors"][0]["code"] == "UNKNOWN"
            assert (await http.get(f"http://{address}/silent")).status_code == 500
            with pytest.raises(httpx.RemoteProtocolError):
                await http.get(f"http://{address}/mid")  # chunked, never terminated
    assert sum("failed" in r.getMessage() for r in caplog.records) == 2


async def test_zerocopysend_whole_ranged_and_head(tmp_path: Path) -> None:
    data = os.urandom(20 * 1024 * 1024 + 5)
    path = tmp_path / "blob"
    path.write_bytes(data)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert "http.response.zerocopysend" in scope["extensions"]
        offset, count = (0, len(data)) if scope["path"] == "/all" else (1000, 5000)
        headers = [(b"content-length", str(count).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        with path.open("rb") as file:
            message = {"file": file, "offset": offset, "count": count}
            await send({"type": "http.response.zerocopysend", **message})

    async with running(app) as (address, _), httpx.AsyncClient() as http:
        whole = await http.get(f"http://{address}/all")
        assert whole.content == data
        part = await http.get(f"http://{address}/part")
        assert part.content == data[1000:6000]
        head = await http.head(f"http://{address}/all")
        assert head.headers["content-length"] == str(len(data)) and head.content == b""
        again = await http.get(f"http://{address}/part")  # the connection is still good
        assert again.content == data[1000:6000]


async def test_node_blob_gets_go_out_zero_copy_and_are_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The node's own pulls: a filesystem blob (whole and ranged) through zerocopysend, with
    its bytes in the sent-bytes metric and the access log."""
    sendfile, by_sendfile = os.sendfile, [0]

    def counting(out: int, fd: int, offset: int | None, count: int) -> int:
        sent = sendfile(out, fd, offset, count)
        by_sendfile[0] += sent
        return sent

    monkeypatch.setattr(os, "sendfile", counting)
    data = os.urandom(5 * 1024 * 1024 + 3)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    config = NodeConfig(data=tmp_path / "node", listen="127.0.0.1:0", no_auth=True)
    with caplog.at_level(logging.INFO, logger="portmesh.access"):
        async with trio.open_nursery() as nursery, httpx.AsyncClient() as http:
            port = await nursery.start(serve_node, config)
            url = f"http://127.0.0.1:{port}/v2/r/blobs"
            pushed = await http.post(f"{url}/uploads/", params={"digest": digest}, content=data)
            assert pushed.status_code == 201
            whole = await http.get(f"{url}/{digest}")
            assert whole.status_code == 200 and whole.content == data
            part = await http.get(f"{url}/{digest}", headers={"Range": "bytes=100-1099"})
            assert part.status_code == 206 and part.content == data[100:1100]
            metrics = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
            nursery.cancel_scope.cancel()
    assert by_sendfile[0] == len(data) + 1000
    sent = re.search(r'^portmesh_http_sent_bytes_total\{route="blob"\} (\S+)$', metrics, re.M)
    assert sent is not None and float(sent[1]) == len(data) + 1000
    outs = [r.getMessage() for r in caplog.records if '"route":"blob"' in r.getMessage()]
    assert f'"out":{len(data)},' in outs[-2] and '"out":1000,' in outs[-1]


async def test_a_client_leaving_mid_file_disturbs_no_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "blob"
    path.write_bytes(os.urandom(64 * 1024 * 1024))

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        size = path.stat().st_size
        headers = [(b"content-length", str(size).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        with path.open("rb") as file:
            await send({"type": "http.response.zerocopysend", "file": file, "count": size})

    with caplog.at_level(logging.ERROR, logger="portmesh.node.server"):
        async with running(app) as (address, _):
            got = await raw(address, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", until_closed=False)
            assert got.startswith(b"HTTP/1.1 200 OK")  # and the client leaves mid-body
            async with httpx.AsyncClient() as http:
                whole = await http.get(f"http://{address}/")
                assert len(whole.content) == path.stat().st_size
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_client_leaving_mid_upload_is_a_disconnect(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[str] = []
    reading, ended = trio.Event(), trio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            seen.append(message["type"])
            reading.set()
            if message["type"] == "http.disconnect":
                ended.set()
                return  # nobody to answer

    with caplog.at_level(logging.ERROR, logger="portmesh.node.server"):
        async with running(app) as (address, _):
            async with await connect(address) as stream:
                await stream.send_all(b"PATCH /u HTTP/1.1\r\nHost: x\r\n")
                await stream.send_all(b"Content-Length: 1000000\r\n\r\n" + b"x" * 1000)
                await reading.wait()
            with trio.fail_after(5):
                await ended.wait()
    assert seen[0] == "http.request" and seen[-1] == "http.disconnect"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_shutdown_lets_requests_in_flight_finish_and_closes_idle_ones() -> None:
    release = trio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"] == "/slow":
            await release.wait()
        await answer(send, 200, b"done")

    stop = trio.CancelScope()

    async def server(task_status: trio.TaskStatus[list[str]]) -> None:
        with stop:
            await serve(app, bind_sockets("127.0.0.1:0"), grace=10, task_status=task_status)

    results: list[httpx.Response] = []
    async with httpx.AsyncClient() as http, trio.open_nursery() as nursery:
        address = (await nursery.start(server))[0]

        async def slow() -> None:
            results.append(await http.get(f"http://{address}/slow"))

        async with await connect(address) as idle:
            nursery.start_soon(slow)
            await trio.sleep(0.3)  # the slow request is in the application
            stop.cancel()
            with trio.fail_after(5):
                assert await idle.receive_some(10) == b"", "idle connections close at once"
        with pytest.raises(OSError):
            await connect(address)
        release.set()
    assert [r.text for r in results] == ["done"]


async def test_idle_connections_and_stalled_heads_are_closed() -> None:
    async with running(echo_app, keep_alive=0.3, read_timeout=0.3) as (address, _):
        async with await connect(address) as stream:
            await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await stream.receive_some(65536)).startswith(b"HTTP/1.1 200 OK")
            with trio.fail_after(5):
                assert await stream.receive_some(10) == b""
        async with await connect(address) as stream:
            await stream.send_all(b"GET / HTTP/1.1\r\nHo")  # and nothing more
            with trio.fail_after(5):
                assert await stream.receive_some(10) == b""


async def refusing_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers 401 without reading the request body (as an auth check does)."""
    await answer(send, 401, b"who are you?")


async def test_an_unread_small_body_is_dropped_and_the_connection_kept() -> None:
    async with running(refusing_app) as (address, _), await connect(address) as stream:
        await stream.send_all(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n01234")
        with trio.fail_after(5):
            first = await stream.receive_some(65536)
        assert first.startswith(b"HTTP/1.1 401 ") and first.endswith(b"who are you?")
        assert b"connection: close" not in first.lower()
        # the rest of the body arrives after the answer; the next request is served
        await stream.send_all(b"56789GET /again HTTP/1.1\r\nHost: x\r\n\r\n")
        with trio.fail_after(5):
            second = await stream.receive_some(65536)
        assert second.startswith(b"HTTP/1.1 401 ")


async def test_an_answer_before_a_large_body_closes_without_a_reset() -> None:
    """A client still sending a large body gets the whole answer and a clean close."""
    async with running(refusing_app) as (address, _):
        size = 10 * 1024 * 1024
        async with await connect(address) as stream:
            head = f"PUT /up HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n".encode()
            await stream.send_all(head + bytes(1024 * 1024))
            await trio.sleep(0.2)  # the answer is out, the server is closing
            with trio.fail_after(5):
                await stream.send_all(bytes(2 * 1024 * 1024))
                got = b""
                while chunk := await stream.receive_some(65536):
                    got += chunk
            assert got.startswith(b"HTTP/1.1 401 ") and got.endswith(b"who are you?")
            assert b"connection: close" in got.lower()


async def test_answers_keep_the_connection_unless_a_large_body_is_left() -> None:
    """GETs (no body), small unread bodies: keep-alive; a chunked or large unread body:
    ``Connection: close``."""
    async with running(refusing_app) as (address, _), httpx.AsyncClient() as http:
        url = f"http://{address}/x"
        for method, content in (("GET", None), ("POST", b"small"), ("PUT", b"")):
            answer = await http.request(method, url, content=content)
            assert answer.status_code == 401 and "connection" not in answer.headers, method
        answer = await http.post(url, content=pieces(b"streamed", 100))  # chunked
        assert answer.headers["connection"] == "close"
        answer = await http.put(url, content=bytes(2 * 1024 * 1024))
        assert answer.headers["connection"] == "close"
