"""OCIClient against a real docker-registry: anonymous and Basic auth, Range, tag pages,
and, through the loopback fault proxy, every failure mapped to its UpstreamError."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio
from registry_content import Pushed, push_image

from adapters.auth import Credentials
from adapters.errors import AuthFailed, NotFound, ProtocolError, RateLimited, Unavailable
from adapters.oci import OCIClient
from portmesh.oci.digest import parse_digest
from support.faults import FaultProxy
from support.servers import Server, run_docker_registry

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery staple"
TIMEOUT = httpx.Timeout(5.0)


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[Server]:
    async with run_docker_registry(tmp_path / "registry") as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


async def read_all(
    client: OCIClient, pushed: Pushed, offset: int = 0, length: int | None = None
) -> tuple[int, bytes]:
    digest = parse_digest(pushed.layer_digest)
    async with client.open_blob(pushed.repo, digest, offset, length) as stream:
        return stream.status, b"".join([chunk async for chunk in stream])


async def test_anonymous_pull_range_and_tag_pages(
    registry: Server, http: httpx.AsyncClient
) -> None:
    layer = os.urandom(300_000)
    pushed = await push_image(http, registry.url, "team/app", "v1", layer)
    for tag in ("v2", "v3", "v4", "v5"):
        await push_image(http, registry.url, "team/app", tag, os.urandom(100))
    client = OCIClient(registry.url, http=http, timeout=TIMEOUT, tag_page_size=2)

    resolved = await client.resolve("team/app", "v1")
    assert str(resolved.digest) == pushed.manifest_digest
    assert resolved.size == len(pushed.manifest)
    assert resolved.media_type == "application/vnd.oci.image.manifest.v1+json"
    fetched = await client.fetch_manifest("team/app", "v1")
    assert fetched.body == pushed.manifest
    assert (await client.fetch_manifest("team/app", pushed.manifest_digest)).body == pushed.manifest

    status, whole = await read_all(client, pushed)
    assert status == 200
    assert hashlib.sha256(whole).hexdigest() == pushed.layer_digest.split(":")[1]
    assert await read_all(client, pushed, 1000) == (206, layer[1000:])
    assert await read_all(client, pushed, 5, 10) == (206, layer[5:15])

    # docker-registry 2.8 ignores n/last on tags (pages are unit-tested with Link headers)
    tags = await client.list_tags("team/app")
    assert sorted(tags) == ["v1", "v2", "v3", "v4", "v5"]
    assert len(tags) == 5
    with pytest.raises(NotFound, match="MANIFEST_UNKNOWN"):
        await client.fetch_manifest("team/app", "nope")
    with pytest.raises(NotFound, match="answered 404"):  # a HEAD has no error body
        await client.resolve("team/app", "nope")
    with pytest.raises(NotFound):
        await read_all(client, Pushed("team/app", "", b"", "", b"", "sha256:" + "0" * 64))
    index = await client.referrers("team/app", parse_digest(pushed.manifest_digest))
    assert b'"manifests":[]' in index  # no referrers API here: the tag schema fallback


async def test_basic_auth_and_a_wrong_password(tmp_path: Path, http: httpx.AsyncClient) -> None:
    async with run_docker_registry(tmp_path / "auth", {"ci": PASSWORD}) as server:
        good = OCIClient(server.url, http=http, credentials=Credentials("ci", PASSWORD))
        pusher = httpx.AsyncClient(auth=("ci", PASSWORD))
        async with pusher:
            pushed = await push_image(pusher, server.url, "private/app", "1", os.urandom(5000))
        assert (await good.fetch_manifest("private/app", "1")).body == pushed.manifest
        assert (await read_all(good, pushed))[1] == pushed.layer

        with pytest.raises(AuthFailed, match="none are configured"):
            await OCIClient(server.url, http=http).resolve("private/app", "1")
        wrong = OCIClient(server.url, http=http, credentials=Credentials("ci", "guess"))
        with pytest.raises(AuthFailed) as info:
            await wrong.resolve("private/app", "1")
        assert "'ci' were rejected" in str(info.value)
        assert "guess" not in str(info.value) and "guess" not in repr(wrong)


async def test_faults_map_to_upstream_errors(registry: Server, http: httpx.AsyncClient) -> None:
    pushed = await push_image(http, registry.url, "lib/app", "1", os.urandom(200_000))
    proxy = FaultProxy(registry.address)
    async with trio.open_nursery() as nursery:
        await nursery.start(proxy.serve)
        client = OCIClient(proxy.url, http=http, timeout=httpx.Timeout(1.0))
        assert (await client.fetch_manifest("lib/app", "1")).body == pushed.manifest
        assert proxy.forwarded["/v2/lib/app/manifests/1"] == 1

        proxy.respond(500)
        with pytest.raises(Unavailable, match="500") as five:
            await client.fetch_manifest("lib/app", "1")
        assert five.value.codes == ["UNAVAILABLE"]

        proxy.respond(429, retry_after=17)
        with pytest.raises(RateLimited) as limited:
            await client.resolve("lib/app", "1")
        assert limited.value.retry_after == 17.0

        proxy.flip_byte(match="/manifests/")
        with pytest.raises(ProtocolError, match="does not hash to"):
            await client.fetch_manifest("lib/app", "1")

        proxy.cut_after(50_000, match="/blobs/")
        with pytest.raises(Unavailable):
            await read_all(client, pushed)
        assert proxy.forwarded[f"/v2/lib/app/blobs/{pushed.layer_digest}"] == 1

        proxy.delay(10, match="/manifests/")
        with trio.fail_after(3):  # the 1 s timeout, not the 10 s delay
            with pytest.raises(Unavailable, match="Timeout"):
                await client.fetch_manifest("lib/app", "1")

        proxy.reset()
        with pytest.raises(Unavailable):
            await client.resolve("lib/app", "1")

        proxy.refuse()
        await trio.sleep(0.05)
        with pytest.raises(Unavailable, match="ConnectError"):
            await client.resolve("lib/app", "1")

        proxy.pass_through()
        await trio.sleep(0.05)
        assert (await read_all(client, pushed))[1] == pushed.layer
        nursery.cancel_scope.cancel()
