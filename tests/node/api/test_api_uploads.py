"""Blob pushes: monolithic, POST+PUT, chunked, streamed, status, cancel, mount, digests."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio
from oci_helpers import (
    RunningNode,
    assert_error,
    blob_url,
    digest_of,
    make_config,
    push_blob,
    start_node,
    start_upload,
    with_digest,
)

REPO = "library/uploads"
DATA = os.urandom(50_000)
OCTET = {"Content-Type": "application/octet-stream"}
EMPTY_SHA256 = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def chunk_headers(start: int, data: bytes) -> dict[str, str]:
    return {
        **OCTET,
        "Content-Range": f"{start}-{start + len(data) - 1}",
        "Content-Length": str(len(data)),
    }


async def patch_chunk(
    client: httpx.AsyncClient, location: str, start: int, data: bytes
) -> httpx.Response:
    return await client.patch(location, content=data, headers=chunk_headers(start, data))


async def assert_blob(client: httpx.AsyncClient, repo: str, digest: str, data: bytes) -> None:
    response = await client.get(blob_url(repo, digest))
    assert response.status_code == 200, response.text[:200]
    assert response.content == data
    assert response.headers["Docker-Content-Digest"] == digest


def assert_created(response: httpx.Response, repo: str, digest: str) -> None:
    assert response.status_code == 201, response.text[:300]
    assert response.headers["Docker-Content-Digest"] == digest
    assert httpx.URL(response.headers["Location"]).path == blob_url(repo, digest)


# --- monolithic ------------------------------------------------------------------------


async def test_monolithic_post_with_digest(client: httpx.AsyncClient) -> None:
    digest = digest_of(DATA)
    response = await client.post(
        f"/v2/{REPO}/blobs/uploads/", params={"digest": digest}, content=DATA, headers=OCTET
    )
    assert_created(response, REPO, digest)
    await assert_blob(client, REPO, digest, DATA)


async def test_post_then_put_with_whole_body(client: httpx.AsyncClient) -> None:
    location = await start_upload(client, REPO)
    digest = digest_of(DATA)
    response = await client.put(with_digest(location, digest), content=DATA, headers=OCTET)
    assert_created(response, REPO, digest)
    await assert_blob(client, REPO, digest, DATA)


async def test_post_starts_a_session(client: httpx.AsyncClient) -> None:
    response = await client.post(f"/v2/{REPO}/blobs/uploads/")
    assert response.status_code == 202
    location = response.headers["Location"]
    assert httpx.URL(location).path.startswith(f"/v2/{REPO}/blobs/uploads/")
    assert "Docker-Upload-UUID" in response.headers
    assert response.content == b""


async def test_post_advertises_chunk_min_length(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        running = await start_node(nursery, make_config(tmp_path / "node", chunk_min_length=1024))
        try:
            response = await running.client.post(f"/v2/{REPO}/blobs/uploads/")
            assert response.status_code == 202
            assert response.headers["OCI-Chunk-Min-Length"] == "1024"
        finally:
            await running.aclose()


# --- chunked ---------------------------------------------------------------------------


async def test_chunked_upload_with_final_chunk_on_put(client: httpx.AsyncClient) -> None:
    location = await start_upload(client, REPO)
    first, second, last = DATA[:20_000], DATA[20_000:40_000], DATA[40_000:]

    response = await patch_chunk(client, location, 0, first)
    assert response.status_code == 202, response.text
    assert response.headers["Range"] == "0-19999"
    assert "Docker-Upload-UUID" in response.headers
    assert response.content == b""
    location = response.headers["Location"]

    response = await patch_chunk(client, location, 20_000, second)
    assert response.status_code == 202, response.text
    assert response.headers["Range"] == "0-39999"
    location = response.headers["Location"]

    digest = digest_of(DATA)
    response = await client.put(
        with_digest(location, digest), content=last, headers=chunk_headers(40_000, last)
    )
    assert_created(response, REPO, digest)
    await assert_blob(client, REPO, digest, DATA)


async def test_chunked_upload_finished_by_empty_put(client: httpx.AsyncClient) -> None:
    location = await start_upload(client, REPO)
    response = await patch_chunk(client, location, 0, DATA)
    assert response.status_code == 202
    digest = digest_of(DATA)
    response = await client.put(with_digest(response.headers["Location"], digest))
    assert_created(response, REPO, digest)
    await assert_blob(client, REPO, digest, DATA)


async def test_out_of_order_chunk_is_416_and_upload_continues(
    client: httpx.AsyncClient,
) -> None:
    location = await start_upload(client, REPO)
    location = (await patch_chunk(client, location, 0, DATA[:1000])).headers["Location"]

    for wrong_start in (0, 500, 1001, 5000):
        response = await patch_chunk(client, location, wrong_start, DATA[1000:2000])
        assert response.status_code == 416, (wrong_start, response.status_code)

    status = await client.get(location)
    assert status.status_code == 204
    assert status.headers["Range"] == "0-999"

    response = await patch_chunk(client, location, 1000, DATA[1000:])
    assert response.status_code == 202
    location = response.headers["Location"]
    digest = digest_of(DATA)
    assert_created(await client.put(with_digest(location, digest)), REPO, digest)
    await assert_blob(client, REPO, digest, DATA)


async def test_streamed_patch_without_content_range(client: httpx.AsyncClient) -> None:
    async def body() -> AsyncIterator[bytes]:
        for offset in range(0, len(DATA), 7_000):
            yield DATA[offset : offset + 7_000]

    location = await start_upload(client, REPO)
    response = await client.patch(location, content=body(), headers=OCTET)
    assert response.status_code == 202, response.text
    assert response.headers["Range"] == f"0-{len(DATA) - 1}"
    digest = digest_of(DATA)
    response = await client.put(with_digest(response.headers["Location"], digest))
    assert_created(response, REPO, digest)
    await assert_blob(client, REPO, digest, DATA)


async def test_two_streamed_patches_append(client: httpx.AsyncClient) -> None:
    location = await start_upload(client, REPO)
    response = await client.patch(location, content=DATA[:100], headers=OCTET)
    assert response.status_code == 202
    response = await client.patch(response.headers["Location"], content=DATA[100:], headers=OCTET)
    assert response.status_code == 202
    assert response.headers["Range"] == f"0-{len(DATA) - 1}"


async def test_upload_status(client: httpx.AsyncClient) -> None:
    location = await start_upload(client, REPO)
    location = (await patch_chunk(client, location, 0, DATA[:4096])).headers["Location"]
    response = await client.get(location)
    assert response.status_code == 204
    assert response.headers["Range"] == "0-4095"
    assert httpx.URL(response.headers["Location"]).path == httpx.URL(location).path
    assert "Docker-Upload-UUID" in response.headers


@pytest.mark.parametrize(
    "content_range",
    [
        pytest.param("garbage", id="garbage"),
        pytest.param("10-5", id="reversed"),
        pytest.param("0-", id="open"),
        pytest.param("-5", id="no-start"),
        pytest.param("0-99", id="longer-than-body"),
    ],
)
async def test_bad_content_range_is_rejected(client: httpx.AsyncClient, content_range: str) -> None:
    location = await start_upload(client, REPO)
    response = await client.patch(
        location, content=DATA[:10], headers={**OCTET, "Content-Range": content_range}
    )
    assert response.status_code in (400, 416), response.status_code
    assert (await client.get(location)).status_code in (204, 404)


# --- cancel and unknown sessions -------------------------------------------------------


async def test_delete_upload_then_it_is_unknown(client: httpx.AsyncClient) -> None:
    location = await start_upload(client, REPO)
    location = (await patch_chunk(client, location, 0, DATA[:100])).headers["Location"]
    response = await client.delete(location)
    assert response.status_code == 204
    assert_error(await client.get(location), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(
        await patch_chunk(client, location, 100, DATA[100:200]), 404, "BLOB_UPLOAD_UNKNOWN"
    )
    assert_error(
        await client.put(with_digest(location, digest_of(DATA[:100]))), 404, "BLOB_UPLOAD_UNKNOWN"
    )
    assert_error(await client.delete(location), 404, "BLOB_UPLOAD_UNKNOWN")


@pytest.mark.parametrize("method", ["GET", "PATCH", "PUT", "DELETE"])
async def test_unknown_upload_id_is_blob_upload_unknown(
    client: httpx.AsyncClient, method: str
) -> None:
    url = f"/v2/{REPO}/blobs/uploads/00000000-0000-0000-0000-000000000000"
    params = {"digest": digest_of(b"abc")} if method == "PUT" else None
    content = b"abc" if method in ("PATCH", "PUT") else None
    response = await client.request(method, url, params=params, content=content)
    assert_error(response, 404, "BLOB_UPLOAD_UNKNOWN")


async def test_upload_session_belongs_to_its_repository(client: httpx.AsyncClient) -> None:
    location = await start_upload(client, "team/one")
    session = httpx.URL(location).path.rsplit("/", 1)[1]
    other = f"/v2/team/two/blobs/uploads/{session}"
    assert_error(await client.get(other), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(
        await client.put(other, params={"digest": digest_of(b"x")}, content=b"x"),
        404,
        "BLOB_UPLOAD_UNKNOWN",
    )


# --- digests ---------------------------------------------------------------------------


async def test_wrong_digest_on_put_is_digest_invalid_and_leaves_nothing(
    client: httpx.AsyncClient,
) -> None:
    location = await start_upload(client, REPO)
    claimed = digest_of(b"something else")
    response = await client.put(with_digest(location, claimed), content=DATA, headers=OCTET)
    assert_error(response, 400, "DIGEST_INVALID")
    assert (await client.head(blob_url(REPO, claimed))).status_code == 404
    assert (await client.head(blob_url(REPO, digest_of(DATA)))).status_code == 404


async def test_wrong_digest_on_monolithic_post_leaves_nothing(
    client: httpx.AsyncClient,
) -> None:
    claimed = digest_of(b"something else")
    response = await client.post(
        f"/v2/{REPO}/blobs/uploads/", params={"digest": claimed}, content=DATA, headers=OCTET
    )
    assert_error(response, 400, "DIGEST_INVALID")
    assert (await client.head(blob_url(REPO, claimed))).status_code == 404
    assert (await client.head(blob_url(REPO, digest_of(DATA)))).status_code == 404


async def test_put_without_digest_is_rejected(client: httpx.AsyncClient) -> None:
    location = await start_upload(client, REPO)
    response = await client.put(location, content=DATA, headers=OCTET)
    assert_error(response, 400, "DIGEST_INVALID", "BLOB_UPLOAD_INVALID")


@pytest.mark.parametrize(
    "digest",
    [
        pytest.param("md5:" + hashlib.md5(DATA).hexdigest(), id="md5"),
        pytest.param("foo:bar", id="unknown-algorithm"),
        pytest.param("sha256:XYZ", id="bad-encoding"),
        pytest.param("sha256:" + "a" * 63, id="wrong-length"),
        pytest.param("", id="empty"),
    ],
)
async def test_invalid_digest_algorithm_is_a_client_error(
    client: httpx.AsyncClient, digest: str
) -> None:
    response = await client.post(
        f"/v2/{REPO}/blobs/uploads/", params={"digest": digest}, content=DATA, headers=OCTET
    )
    assert_error(response, (400, 405), "DIGEST_INVALID", "UNSUPPORTED")
    location = await start_upload(client, REPO)
    response = await client.put(with_digest(location, digest), content=DATA, headers=OCTET)
    assert_error(response, (400, 405), "DIGEST_INVALID", "UNSUPPORTED")


async def test_sha512_monolithic(client: httpx.AsyncClient) -> None:
    digest = await push_blob(client, REPO, DATA, "sha512")
    assert digest.startswith("sha512:")
    await assert_blob(client, REPO, digest, DATA)
    head = await client.head(blob_url(REPO, digest))
    assert head.headers["Docker-Content-Digest"] == digest


async def test_sha512_chunked(client: httpx.AsyncClient) -> None:
    location = await start_upload(client, REPO)
    response = await patch_chunk(client, location, 0, DATA[:30_000])
    assert response.status_code == 202
    digest = digest_of(DATA, "sha512")
    rest = DATA[30_000:]
    response = await client.put(
        with_digest(response.headers["Location"], digest),
        content=rest,
        headers=chunk_headers(30_000, rest),
    )
    assert_created(response, REPO, digest)
    await assert_blob(client, REPO, digest, DATA)


async def test_empty_blob_monolithic(client: httpx.AsyncClient) -> None:
    digest = await push_blob(client, REPO, b"")
    assert digest == EMPTY_SHA256
    response = await client.get(blob_url(REPO, digest))
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["Content-Length"] == "0"
    assert response.headers["Docker-Content-Digest"] == digest


async def test_empty_blob_by_post_then_put(client: httpx.AsyncClient) -> None:
    location = await start_upload(client, REPO)
    response = await client.put(with_digest(location, EMPTY_SHA256))
    assert_created(response, REPO, EMPTY_SHA256)
    head = await client.head(blob_url(REPO, EMPTY_SHA256))
    assert head.status_code == 200
    assert head.headers["Content-Length"] == "0"


async def test_repushing_an_existing_blob_succeeds(client: httpx.AsyncClient) -> None:
    digest = await push_blob(client, REPO, DATA)
    assert await push_blob(client, REPO, DATA) == digest
    await assert_blob(client, REPO, digest, DATA)


# --- cross-repository mount ------------------------------------------------------------


async def test_mount_from_repository_that_has_the_blob(client: httpx.AsyncClient) -> None:
    digest = await push_blob(client, "team/source", DATA)
    response = await client.post(
        "/v2/team/target/blobs/uploads/", params={"mount": digest, "from": "team/source"}
    )
    assert_created(response, "team/target", digest)
    await assert_blob(client, "team/target", digest, DATA)


async def test_mount_from_repository_without_the_blob_starts_upload(
    client: httpx.AsyncClient,
) -> None:
    digest = await push_blob(client, "team/elsewhere", DATA)
    await push_blob(client, "team/source", b"source exists but lacks the blob")
    response = await client.post(
        "/v2/team/target/blobs/uploads/", params={"mount": digest, "from": "team/source"}
    )
    assert response.status_code == 202
    location = response.headers["Location"]
    assert httpx.URL(location).path.startswith("/v2/team/target/blobs/uploads/")
    assert (await client.head(blob_url("team/target", digest))).status_code == 404
    # The session is a real one: the blob can be pushed through it.
    response = await client.put(with_digest(location, digest), content=DATA, headers=OCTET)
    assert_created(response, "team/target", digest)


async def test_mount_of_unknown_digest_starts_upload(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v2/team/target/blobs/uploads/",
        params={"mount": digest_of(b"never pushed"), "from": "team/nowhere"},
    )
    assert response.status_code == 202
    assert "Location" in response.headers


async def test_mount_with_invalid_source_name_does_not_500(client: httpx.AsyncClient) -> None:
    digest = await push_blob(client, "team/source", DATA)
    response = await client.post(
        "/v2/team/target/blobs/uploads/", params={"mount": digest, "from": "../Bad"}
    )
    assert response.status_code in (202, 400)
    assert (await client.head(blob_url("team/target", digest))).status_code == 404


# --- durability ------------------------------------------------------------------------


async def test_resumable_upload_survives_restart(node: RunningNode) -> None:
    location = await start_upload(node.client, REPO)
    response = await patch_chunk(node.client, location, 0, DATA[:25_000])
    assert response.status_code == 202
    path = httpx.URL(response.headers["Location"]).path  # the port changes on restart

    await node.restart()

    status = await node.client.get(path)
    assert status.status_code == 204
    assert status.headers["Range"] == "0-24999"
    response = await patch_chunk(node.client, path, 25_000, DATA[25_000:])
    assert response.status_code == 202, response.text
    digest = digest_of(DATA)
    response = await node.client.put(
        with_digest(httpx.URL(response.headers["Location"]).path, digest)
    )
    assert_created(response, REPO, digest)
    await assert_blob(node.client, REPO, digest, DATA)


async def test_pushed_blob_survives_restart(node: RunningNode) -> None:
    digest = await push_blob(node.client, REPO, DATA)
    await node.restart()
    await assert_blob(node.client, REPO, digest, DATA)


async def test_finished_upload_cannot_be_reused(client: httpx.AsyncClient) -> None:
    location = await start_upload(client, REPO)
    digest = digest_of(DATA)
    assert (await client.put(with_digest(location, digest), content=DATA)).status_code == 201
    assert_error(await client.get(location), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(await patch_chunk(client, location, 0, b"more"), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(
        await client.put(with_digest(location, digest), content=DATA), 404, "BLOB_UPLOAD_UNKNOWN"
    )


async def test_failed_digest_check_leaves_no_usable_session_data(
    client: httpx.AsyncClient,
) -> None:
    """After DIGEST_INVALID the client restarts; a fresh upload of the same bytes works."""
    location = await start_upload(client, REPO)
    location = (await patch_chunk(client, location, 0, DATA)).headers["Location"]
    response = await client.put(with_digest(location, digest_of(b"other")))
    assert_error(response, 400, "DIGEST_INVALID")
    assert (await client.head(blob_url(REPO, digest_of(DATA)))).status_code == 404
    digest = await push_blob(client, REPO, DATA)
    await assert_blob(client, REPO, digest, DATA)


async def test_large_blob_in_many_chunks(client: httpx.AsyncClient) -> None:
    data = os.urandom(6 * 1024 * 1024 + 123)
    location = await start_upload(client, REPO)
    step = 1024 * 1024
    for offset in range(0, len(data), step):
        response = await patch_chunk(client, location, offset, data[offset : offset + step])
        assert response.status_code == 202
        location = response.headers["Location"]
    digest = digest_of(data)
    assert_created(await client.put(with_digest(location, digest)), REPO, digest)
    await assert_blob(client, REPO, digest, data)


async def test_mount_without_from_does_not_fail(client: httpx.AsyncClient) -> None:
    """``mount`` without ``from``: the registry may mount automatically (201) or start an
    upload (202)."""
    digest = await push_blob(client, "team/source", DATA)
    response = await client.post("/v2/team/target/blobs/uploads/", params={"mount": digest})
    assert response.status_code in (201, 202)
    assert "Location" in response.headers


async def test_parallel_uploads_do_not_interfere(client: httpx.AsyncClient) -> None:
    blobs = [os.urandom(200_000 + i) for i in range(6)]
    digests: dict[int, str] = {}

    async def chunked(i: int) -> None:
        data = blobs[i]
        location = await start_upload(client, REPO)
        for offset in range(0, len(data), 64_000):
            response = await patch_chunk(client, location, offset, data[offset : offset + 64_000])
            assert response.status_code == 202
            location = response.headers["Location"]
        response = await client.put(with_digest(location, digest_of(data)))
        assert response.status_code == 201
        digests[i] = digest_of(data)

    async def monolithic(i: int) -> None:
        digests[i] = await push_blob(client, REPO, blobs[i])

    async with trio.open_nursery() as nursery:
        for i in range(len(blobs)):
            nursery.start_soon(chunked if i % 2 else monolithic, i)
    for i, data in enumerate(blobs):
        await assert_blob(client, REPO, digests[i], data)


async def send_truncated(port: int, head: str, body: bytes) -> None:
    """Send a request head that promises more body than ``body``, then end the stream and
    wait until the node has closed the connection (so it has seen the cut)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(head.encode() + body)
        await stream.send_eof()
        with trio.fail_after(60):
            while await stream.receive_some(65536):
                pass


async def test_truncated_patch_keeps_the_session_consistent(node: RunningNode) -> None:
    location = await start_upload(node.client, REPO)
    response = await patch_chunk(node.client, location, 0, DATA[:10_000])
    location = response.headers["Location"]
    path = httpx.URL(response.headers["Location"]).raw_path.decode()
    head = (
        f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: application/octet-stream\r\n"
        "Content-Range: 10000-19999\r\nContent-Length: 10000\r\n\r\n"
    )
    await send_truncated(node.port, head, DATA[10_000:15_000])

    # The session reports either the old offset or the bytes it kept, and continuing from
    # there completes the blob.
    status = await node.client.get(location)
    assert status.status_code == 204
    end = int(status.headers["Range"].split("-")[1])
    assert end in (9_999, 14_999), status.headers["Range"]
    response = await patch_chunk(node.client, location, end + 1, DATA[end + 1 :])
    assert response.status_code == 202, response.text
    location = response.headers["Location"]
    digest = digest_of(DATA)
    assert_created(await node.client.put(with_digest(location, digest)), REPO, digest)
    await assert_blob(node.client, REPO, digest, DATA)


async def test_truncated_monolithic_push_leaves_nothing(node: RunningNode) -> None:
    digest = digest_of(DATA)
    head = (
        f"POST /v2/{REPO}/blobs/uploads/?digest={digest} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {len(DATA)}\r\n\r\n"
    )
    await send_truncated(node.port, head, DATA[: len(DATA) // 2])
    assert (await node.client.head(blob_url(REPO, digest))).status_code == 404
    assert (await node.client.get(blob_url(REPO, digest))).status_code == 404
    # And the same blob can be pushed properly afterwards.
    assert await push_blob(node.client, REPO, DATA) == digest
