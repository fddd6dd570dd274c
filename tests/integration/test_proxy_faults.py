"""Pull-through under faults: docker-registry with Basic auth behind the loopback fault
proxy, a node in front. Wrong bytes are never cached, cached pulls keep working, nothing
hangs past the failure budget, and errors are clear otherwise."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import trio

from support.clients import digest_of
from support.faults import FaultProxy
from support.images import Image, MiB, write_image
from support.servers import Server, require_binary, run_docker_registry, run_node, run_tool

pytestmark = pytest.mark.integration

USER, PASSWORD = "edge", "correct horse"
ACCEPT = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
HANG_LIMIT = 20.0  # far above the 2 s budget: only a hang trips it


@dataclass
class Rig:
    node: Server
    faults: FaultProxy
    image: Image
    client: httpx.AsyncClient  # based at the node's /v2/hub

    @property
    def layer_path(self) -> str:
        return f"/team/app/blobs/{self.image.layers[0].digest}"

    @property
    def upstream_layer_path(self) -> str:
        return f"/v2/team/app/blobs/{self.image.layers[0].digest}"


@asynccontextmanager
async def rig(
    tmp_path: Path,
    nursery: trio.Nursery,
    *,
    password: str = PASSWORD,
    tag_ttl: float = 0.0,
    workers: int = 1,
    auth: bool = True,
) -> AsyncIterator[Rig]:
    """``auth=False``: an anonymous upstream, so no request of the node meets a 401."""
    image = write_image(tmp_path / "src", "v1", layer_sizes=(8 * MiB,))
    users = {USER: PASSWORD} if auth else None
    async with run_docker_registry(tmp_path / "upstream", users) as upstream:
        creds = [f"--dest-creds={USER}:{PASSWORD}"] if auth else []
        await run_tool([
            require_binary("skopeo"), "--insecure-policy", "copy", "--quiet",
            "--preserve-digests", "--dest-tls-verify=false", *creds,
            f"oci:{image.layout}:v1", f"docker://{upstream.address}/team/app:v1",
        ])  # fmt: skip
        faults = FaultProxy(upstream.address)
        await nursery.start(faults.serve)
        config = tmp_path / "node.toml"
        login = f'username = "{USER}"\npassword = "{password}"\n' if auth else ""
        config.write_text(
            f'[[upstream]]\nname = "hub"\nurl = "{faults.url}"\nproject = "hub"\n'
            f"{login}tag_ttl = {tag_ttl}\n"
        )
        async with (
            run_node(tmp_path / "node", "--config", str(config), "--workers", str(workers)) as node,
            httpx.AsyncClient(base_url=f"{node.url}/v2/hub", timeout=60) as client,
        ):
            yield Rig(node, faults, image, client)


@pytest.mark.parametrize("workers", [1, 2])
async def test_concurrent_cold_gets_fetch_the_blob_once(
    tmp_path: Path, nursery: trio.Nursery, workers: int
) -> None:
    # With two worker processes the clients land on both: one wins the fill, the other
    # follows its file.
    async with rig(tmp_path, nursery, workers=workers) as r:
        bodies: list[bytes] = []

        async def pull() -> None:
            response = await r.client.get(r.layer_path)
            assert response.status_code == 200
            bodies.append(response.content)

        async with trio.open_nursery() as clients:
            for _ in range(10):
                clients.start_soon(pull)
        assert [digest_of(b) for b in bodies] == [r.image.layers[0].digest] * 10
        # One fetch: the blob's bytes crossed once (plus, at most, a 401 challenge's body).
        size = r.image.layers[0].size
        assert size <= r.faults.forwarded_bytes[r.upstream_layer_path] < size + 4096


@pytest.mark.parametrize("fault", ["flip", "cut"])
async def test_wrong_or_cut_bytes_are_never_served_whole_nor_cached(
    tmp_path: Path, nursery: trio.Nursery, fault: str
) -> None:
    async with rig(tmp_path, nursery) as r:
        # A first pull teaches the node the upstream's login, so the fault below hits the
        # blob's own answer rather than a 401 challenge.
        assert (await r.client.get("/team/app/manifests/v1", headers=ACCEPT)).status_code == 200
        if fault == "flip":
            r.faults.flip_byte(match="/blobs/", times=1)
        else:
            r.faults.cut_after(3 * MiB, match="/blobs/", times=1)
        with pytest.raises(httpx.HTTPError):
            await r.client.get(r.layer_path)  # the response is cut short
        again = await r.client.get(r.layer_path)
        assert again.status_code == 200
        assert digest_of(again.content) == r.image.layers[0].digest
        assert again.headers["X-Portmesh-Cache"] == "miss", "nothing was cached the first time"


async def test_cached_manifest_survives_429_500_refusal_and_delay(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    async with rig(tmp_path, nursery) as r:
        first = await r.client.get("/team/app/manifests/v1", headers=ACCEPT)
        assert first.status_code == 200
        for break_it in (
            lambda: r.faults.respond(429, retry_after=30),
            lambda: r.faults.respond(500),
            r.faults.refuse,
            r.faults.reset,
            lambda: r.faults.delay(60),
        ):
            break_it()
            with trio.fail_after(HANG_LIMIT):
                got = await r.client.get("/team/app/manifests/v1", headers=ACCEPT)
            assert got.status_code == 200
            assert got.headers["X-Portmesh-Cache"] == "stale"
            assert got.content == first.content


async def test_uncached_content_gets_clear_errors(tmp_path: Path, nursery: trio.Nursery) -> None:
    async with rig(tmp_path, nursery) as r:
        r.faults.respond(429, retry_after=30)
        got = await r.client.get("/team/app/manifests/v1", headers=ACCEPT)
        assert got.status_code == 429
        assert got.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
        assert got.headers["Retry-After"] == "30"
        r.faults.respond(500)
        got = await r.client.get("/team/app/manifests/v1", headers=ACCEPT)
        assert got.status_code == 503 and got.json()["errors"][0]["code"] == "UNAVAILABLE"
        r.faults.pass_through()
        got = await r.client.get("/team/app/manifests/nope", headers=ACCEPT)
        assert got.status_code == 404 and got.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
        r.faults.respond(500, match="/blobs/")
        got = await r.client.get(r.layer_path)
        assert got.status_code == 503


async def test_warm_tags_within_ttl_ask_nothing_upstream(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    async with rig(tmp_path, nursery, tag_ttl=300) as r:
        assert (await r.client.get("/team/app/manifests/v1", headers=ACCEPT)).status_code == 200
        before = sum(r.faults.requests.values())
        for _ in range(20):
            got = await r.client.get("/team/app/manifests/v1", headers=ACCEPT)
            assert got.headers["X-Portmesh-Cache"] == "hit"
        assert sum(r.faults.requests.values()) == before


async def test_wrong_credentials_are_a_clear_error_and_never_logged(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    async with rig(tmp_path, nursery, password="wrong secret") as r:
        got = await r.client.get("/team/app/manifests/v1", headers=ACCEPT)
        assert got.status_code == 503
        error = got.json()["errors"][0]
        assert error["code"] == "UNAVAILABLE" and "credentials" in error["message"]
        assert "wrong secret" not in got.text
        assert "wrong secret" not in r.node.log.read_text()


async def test_worker_processes_share_tag_freshness(tmp_path: Path, nursery: trio.Nursery) -> None:
    # Each GET opens its own connection, so the node's two worker processes both serve
    # some; tag freshness lives in the node's shared metadata store. An anonymous
    # upstream, so that every request counted is one the cache decided to make.
    ttl = 4.0
    async with rig(tmp_path, nursery, tag_ttl=ttl, workers=2, auth=False) as r:

        async def get_tag() -> str:
            got = await r.client.get(
                "/team/app/manifests/v1", headers={**ACCEPT, "Connection": "close"}
            )
            assert got.status_code == 200
            assert digest_of(got.content) == r.image.manifest_digest
            return str(got.headers["X-Portmesh-Cache"])

        assert await get_tag() == "miss"
        fetched = trio.current_time()
        # The miss started bringing the image's config in too (a prefetch); once a client
        # has it, no upstream request of it is left pending.
        config = await r.client.get(f"/team/app/blobs/{r.image.config.digest}")
        assert config.status_code == 200 and digest_of(config.content) == r.image.config.digest
        r.faults.requests.clear()
        states = [await get_tag() for _ in range(30)]
        assert trio.current_time() - fetched < ttl, "the GETs ran within the TTL"
        assert states == ["hit"] * 30
        assert sum(r.faults.requests.values()) == 0, dict(r.faults.requests)

        await trio.sleep_until(fetched + ttl + 0.2)
        expired = trio.current_time()
        async with trio.open_nursery() as clients:
            for _ in range(10):
                clients.start_soon(get_tag)
        for _ in range(20):
            await get_tag()
        assert trio.current_time() - expired < ttl, "the GETs ran within one TTL period"
        assert dict(r.faults.requests) == {"/v2/team/app/manifests/v1": 1}
