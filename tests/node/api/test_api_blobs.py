"""Blob pulls: GET/HEAD by digest, Range requests, per-repository visibility, DELETE."""

from __future__ import annotations

import os

import httpx
import pytest
from oci_helpers import assert_error, blob_url, digest_of, push_blob

REPO = "library/blobs"
DATA = os.urandom(100_000)


async def test_get_blob_returns_bytes_and_headers(client: httpx.AsyncClient) -> None:
    digest = await push_blob(client, REPO, DATA)
    response = await client.get(blob_url(REPO, digest))
    assert response.status_code == 200
    assert response.content == DATA
    assert response.headers["Content-Length"] == str(len(DATA))
    assert response.headers["Docker-Content-Digest"] == digest
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["ETag"].strip('"').removeprefix("W/").strip('"') == digest


async def test_head_blob_has_headers_and_no_body(client: httpx.AsyncClient) -> None:
    digest = await push_blob(client, REPO, DATA)
    response = await client.head(blob_url(REPO, digest))
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["Content-Length"] == str(len(DATA))
    assert response.headers["Docker-Content-Digest"] == digest
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert "ETag" in response.headers


async def test_conditional_get_with_etag_is_not_modified(client: httpx.AsyncClient) -> None:
    digest = await push_blob(client, REPO, DATA)
    etag = (await client.head(blob_url(REPO, digest))).headers["ETag"]
    response = await client.get(blob_url(REPO, digest), headers={"If-None-Match": etag})
    assert response.status_code == 304
    assert response.content == b""


async def test_unknown_blob_is_blob_unknown(client: httpx.AsyncClient) -> None:
    await push_blob(client, REPO, b"something so the repository exists")
    missing = digest_of(b"never pushed")
    assert_error(await client.get(blob_url(REPO, missing)), 404, "BLOB_UNKNOWN")
    head = await client.head(blob_url(REPO, missing))
    assert head.status_code == 404
    assert head.content == b""


async def test_unknown_blob_in_unknown_repo_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get(blob_url("no/such/repo", digest_of(b"x")))
    assert_error(response, 404, "BLOB_UNKNOWN", "NAME_UNKNOWN")


@pytest.mark.parametrize(
    "digest",
    [
        pytest.param("sha256:short", id="short-hex"),
        pytest.param("sha256:" + "G" * 64, id="not-hex"),
        pytest.param("nodigest", id="no-colon"),
        pytest.param("md5:" + "0" * 32, id="unknown-algorithm"),
    ],
)
async def test_malformed_digest_in_blob_path_is_client_error(
    client: httpx.AsyncClient, digest: str
) -> None:
    response = await client.get(blob_url(REPO, digest))
    assert_error(response, (400, 404, 405), "DIGEST_INVALID", "UNSUPPORTED", "BLOB_UNKNOWN")


async def test_blob_is_visible_only_in_repositories_that_have_it(
    client: httpx.AsyncClient,
) -> None:
    digest = await push_blob(client, "team/one", DATA)
    await push_blob(client, "team/two", b"another blob, so team/two exists")
    assert (await client.head(blob_url("team/one", digest))).status_code == 200
    assert_error(await client.get(blob_url("team/two", digest)), 404, "BLOB_UNKNOWN")
    assert (await client.head(blob_url("team/two", digest))).status_code == 404
    assert (await client.head(blob_url("team/three", digest))).status_code == 404


# --- Range -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        pytest.param("bytes=0-0", 0, 0, id="first-byte"),
        pytest.param("bytes=0-99", 0, 99, id="head"),
        pytest.param("bytes=1000-1999", 1000, 1999, id="middle"),
        pytest.param("bytes=99990-", 99990, 99999, id="open-end"),
        pytest.param("bytes=99000-200000", 99000, 99999, id="end-past-size"),
        pytest.param("bytes=-10", 99990, 99999, id="suffix"),
        pytest.param("bytes=-200000", 0, 99999, id="suffix-larger-than-blob"),
        pytest.param("bytes=99999-99999", 99999, 99999, id="last-byte"),
    ],
)
async def test_range_request_returns_partial_content(
    client: httpx.AsyncClient, header: str, start: int, end: int
) -> None:
    digest = await push_blob(client, REPO, DATA)
    response = await client.get(blob_url(REPO, digest), headers={"Range": header})
    assert response.status_code == 206, response.text[:200]
    assert response.content == DATA[start : end + 1]
    assert response.headers["Content-Range"] == f"bytes {start}-{end}/{len(DATA)}"
    assert response.headers["Content-Length"] == str(end - start + 1)
    assert response.headers["Docker-Content-Digest"] == digest


async def test_ranges_at_many_offsets_reassemble_the_blob(client: httpx.AsyncClient) -> None:
    digest = await push_blob(client, REPO, DATA)
    parts = []
    step = 33_333
    for offset in range(0, len(DATA), step):
        last = min(offset + step, len(DATA)) - 1
        response = await client.get(
            blob_url(REPO, digest), headers={"Range": f"bytes={offset}-{last}"}
        )
        assert response.status_code == 206
        parts.append(response.content)
    assert b"".join(parts) == DATA


async def test_head_with_range_reports_partial_length(client: httpx.AsyncClient) -> None:
    digest = await push_blob(client, REPO, DATA)
    response = await client.head(blob_url(REPO, digest), headers={"Range": "bytes=10-19"})
    assert response.status_code in (200, 206)
    if response.status_code == 206:
        assert response.headers["Content-Range"] == f"bytes 10-19/{len(DATA)}"
        assert response.headers["Content-Length"] == "10"


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("bytes=100000-", id="start-at-size"),
        pytest.param("bytes=200000-200010", id="start-past-size"),
        pytest.param("bytes=-0", id="empty-suffix"),
    ],
)
async def test_unsatisfiable_range_is_416(client: httpx.AsyncClient, header: str) -> None:
    digest = await push_blob(client, REPO, DATA)
    response = await client.get(blob_url(REPO, digest), headers={"Range": header})
    assert response.status_code == 416
    assert response.headers["Content-Range"] == f"bytes */{len(DATA)}"


async def test_malformed_range_is_ignored_or_rejected(client: httpx.AsyncClient) -> None:
    """RFC 9110 lets a server ignore a Range it does not understand (200, whole body)."""
    digest = await push_blob(client, REPO, DATA)
    response = await client.get(blob_url(REPO, digest), headers={"Range": "pages=1-2"})
    assert response.status_code in (200, 416)
    if response.status_code == 200:
        assert response.content == DATA


# --- DELETE ----------------------------------------------------------------------------


async def test_delete_blob_then_it_is_gone(client: httpx.AsyncClient) -> None:
    digest = await push_blob(client, REPO, DATA)
    response = await client.delete(blob_url(REPO, digest))
    assert response.status_code == 202
    assert_error(await client.get(blob_url(REPO, digest)), 404, "BLOB_UNKNOWN")
    assert (await client.head(blob_url(REPO, digest))).status_code == 404
    assert_error(await client.delete(blob_url(REPO, digest)), 404, "BLOB_UNKNOWN")


async def test_delete_blob_in_one_repo_keeps_it_in_another(client: httpx.AsyncClient) -> None:
    digest = await push_blob(client, "team/one", DATA)
    await push_blob(client, "team/two", DATA)
    assert (await client.delete(blob_url("team/one", digest))).status_code == 202
    assert (await client.head(blob_url("team/one", digest))).status_code == 404
    response = await client.get(blob_url("team/two", digest))
    assert response.status_code == 200
    assert response.content == DATA


async def test_delete_unknown_blob_is_blob_unknown(client: httpx.AsyncClient) -> None:
    await push_blob(client, REPO, b"repo exists")
    assert_error(await client.delete(blob_url(REPO, digest_of(b"nope"))), 404, "BLOB_UNKNOWN")
