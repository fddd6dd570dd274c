"""The pull-through cache's decisions, with a scripted upstream (one layer; the real
upstream is in tests/integration/test_proxy.py)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field

import pytest
import trio
import trio.testing

from adapters.base import BlobStream, FetchedManifest, NotFound, Resolved, Unavailable
from node.config import UpstreamConfig
from node.proxy.cache import ProxyCache
from node.proxy.fill import Fill, Fills
from node.proxy.router import Router
from node.registry import Registry
from node.storage.memory import MemoryBlobStore, MemoryMetadataStore
from portmesh.oci.digest import Digest
from portmesh.oci.errors import OCIError

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _manifest(name: str) -> bytes:
    config = {
        "mediaType": "application/vnd.oci.image.config.v1+json",
        "digest": str(Digest.of(name.encode())),
        "size": len(name),
    }
    return json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": []}
    ).encode()


@dataclass
class Limit:
    limit: int | None = 100
    remaining: int | None = 100


@dataclass
class ScriptedUpstream:
    tags: dict[str, bytes] = field(default_factory=lambda: {"v1": _manifest("one")})
    failure: Exception | None = None
    delay: float = 0.0
    calls: list[str] = field(default_factory=list)
    rate_limit: Limit = field(default_factory=Limit)
    #: blobs by digest (the config of ``_manifest("one")``), and the blob GETs asked for
    blobs: dict[str, bytes] = field(default_factory=lambda: {str(Digest.of(b"one")): b"one"})
    blob_calls: list[str] = field(default_factory=list)

    async def _step(self, call: str) -> None:
        self.calls.append(call)
        await trio.sleep(self.delay)
        if self.failure is not None:
            raise self.failure

    def _body(self, reference: str) -> bytes:
        for body in self.tags.values():
            if reference in (str(Digest.of(body)),):
                return body
        if reference in self.tags:
            return self.tags[reference]
        raise NotFound(f"{reference} not found", status=404)

    async def resolve(self, repo: str, reference: str) -> Resolved:
        await self._step(f"HEAD {reference}")
        body = self._body(reference)
        return Resolved(Digest.of(body), OCI_MANIFEST, len(body))

    async def fetch_manifest(self, repo: str, reference: str) -> FetchedManifest:
        await self._step(f"GET {reference}")
        body = self._body(reference)
        return FetchedManifest(body, OCI_MANIFEST, Digest.of(body))

    def open_blob(
        self, repo: str, digest: Digest, offset: int = 0, length: int | None = None
    ) -> AbstractAsyncContextManager[BlobStream]:
        self.blob_calls.append(str(digest))
        if str(digest) not in self.blobs:
            raise NotFound(f"{digest} not found", status=404)
        return _blob(self.blobs[str(digest)])

    async def list_tags(
        self, repo: str, n: int | None = None, last: str | None = None
    ) -> list[str]:
        await self._step("TAGS")
        return sorted(self.tags)

    async def referrers(self, repo: str, digest: Digest, artifact_type: str | None = None) -> bytes:
        raise AssertionError("not used here")

    async def aclose(self) -> None:
        pass


@dataclass
class _Body:
    body: bytes
    status: int = 200
    offset: int = 0

    @property
    def total(self) -> int:
        return len(self.body)

    @property
    def length(self) -> int:
        return len(self.body)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.body


@asynccontextmanager
async def _blob(body: bytes) -> AsyncIterator[BlobStream]:
    yield _Body(body)


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


Setup = tuple[ProxyCache, ScriptedUpstream, Clock, Router]


@pytest.fixture
async def setup() -> AsyncIterator[Setup]:
    config = UpstreamConfig("hub", "http://upstream", project="hub", tag_ttl=60, timeout=2)
    upstream, clock, router = ScriptedUpstream(), Clock(), Router([config])
    registry = Registry(MemoryBlobStore(), MemoryMetadataStore())
    async with trio.open_nursery() as nursery:
        fills = Fills(registry.blobs, nursery)
        cache = ProxyCache(registry, fills, {"hub": upstream}, clock, wall=clock, prefetch_delay=0)
        yield cache, upstream, clock, router
        nursery.cancel_scope.cancel()


async def test_tag_within_ttl_asks_nothing_then_revalidates_with_a_head(setup: Setup) -> None:
    cache, upstream, clock, router = setup
    route = router.route("hub/team/app")
    first = await cache.manifest(route, "v1")
    assert first.state == "miss" and upstream.calls == ["GET v1"], "nothing cached: one GET"
    upstream.calls.clear()
    assert (await cache.manifest(route, "v1")).state == "hit"
    assert upstream.calls == [], "within the TTL nothing goes upstream"
    clock.now += 61
    assert (await cache.manifest(route, "v1")).state == "revalidated"
    assert upstream.calls == ["HEAD v1"], "only a HEAD, which Docker Hub does not count"
    upstream.calls.clear()
    assert (await cache.manifest(route, str(first.record.digest))).state == "hit"
    assert upstream.calls == [], "by digest: immutable"


async def test_a_manifest_from_upstream_brings_its_config_into_the_cache(setup: Setup) -> None:
    cache, upstream, _clock, router = setup
    route = router.route("hub/team/app")
    config = Digest.of(b"one")
    await cache.manifest(route, "v1")
    await trio.testing.wait_all_tasks_blocked()
    assert upstream.blob_calls == [str(config)]
    assert await cache.registry.blobs.stat(config) == 3
    source = await cache.blob(route, config)
    assert not isinstance(source, Fill), "the client's own request finds it cached"
    await source.aclose()
    assert upstream.blob_calls == [str(config)]


async def test_a_failed_prefetch_is_left_for_the_clients_request(setup: Setup) -> None:
    cache, upstream, _clock, router = setup
    route = router.route("hub/team/app")
    upstream.blobs.clear()
    assert (await cache.manifest(route, "v1")).state == "miss"
    await trio.testing.wait_all_tasks_blocked()
    with pytest.raises(OCIError) as info:
        await cache.blob(route, Digest.of(b"one"))
    assert info.value.code == "BLOB_UNKNOWN"
    assert upstream.blob_calls == [str(Digest.of(b"one"))] * 2


@pytest.mark.parametrize(
    "failure",
    [
        Unavailable("connection refused"),
        Unavailable("HTTP 500", status=500),
        NotFound("gone", status=404),
    ],
    ids=["refused", "5xx", "404-for-cached"],
)
async def test_cached_tag_is_served_stale_when_the_upstream_fails(
    setup: Setup, failure: Exception
) -> None:
    cache, upstream, clock, router = setup
    route = router.route("hub/team/app")
    fresh = await cache.manifest(route, "v1")
    clock.now += 61
    upstream.failure = failure
    stale = await cache.manifest(route, "v1")
    assert stale.state == "stale" and stale.record.digest == fresh.record.digest


async def test_uncached_and_failing_is_a_clear_error_and_404s_are_remembered(setup: Setup) -> None:
    cache, upstream, _clock, router = setup
    route = router.route("hub/team/app")
    upstream.failure = Unavailable("connection refused")
    with pytest.raises(OCIError) as info:
        await cache.manifest(route, "v1")
    assert info.value.code == "UNAVAILABLE"
    upstream.failure = None
    with pytest.raises(OCIError) as info:
        await cache.manifest(route, "nope")
    assert info.value.code == "MANIFEST_UNKNOWN"
    calls = len(upstream.calls)
    with pytest.raises(OCIError):
        await cache.manifest(route, "nope")
    assert len(upstream.calls) == calls, "a 404 is remembered for a short while"


async def test_slow_upstream_gets_a_budget_then_the_cache_answers(
    setup: Setup, autojump_clock: trio.testing.MockClock
) -> None:
    cache, upstream, clock, router = setup
    route = router.route("hub/team/app")
    await cache.manifest(route, "v1")
    clock.now += 61
    upstream.delay = 3600
    started = trio.current_time()
    assert (await cache.manifest(route, "v1")).state == "stale"
    assert trio.current_time() - started == pytest.approx(2.0), "the upstream's 2 s budget"


async def test_breaker_stops_asking_a_failing_upstream(setup: Setup) -> None:
    cache, upstream, clock, router = setup
    route = router.route("hub/team/app")
    await cache.manifest(route, "v1")
    upstream.failure = Unavailable("HTTP 503", status=503)
    for _ in range(3):
        clock.now += 61
        await cache.manifest(route, "v1")
    asked = len(upstream.calls)
    for _ in range(5):
        assert (await cache.manifest(route, "v1")).state == "stale"
    assert len(upstream.calls) == asked, "open breaker: not asked"


async def test_no_pulls_left_means_the_cache_answers_without_asking(setup: Setup) -> None:
    cache, upstream, clock, router = setup
    route = router.route("hub/team/app")
    await cache.manifest(route, "v1")
    upstream.rate_limit.remaining = 0
    clock.now += 61
    asked = len(upstream.calls)
    assert (await cache.manifest(route, "v1")).state == "stale"
    assert len(upstream.calls) == asked


async def test_tags_fall_back_to_the_cache(setup: Setup) -> None:
    cache, upstream, _clock, router = setup
    route = router.route("hub/team/app")
    assert await cache.tags(route, None, None) == ["v1"]
    await cache.manifest(route, "v1")
    upstream.failure = Unavailable("down")
    assert await cache.tags(route, None, None) == ["v1"]


async def test_concurrent_requests_for_an_expired_tag_share_one_head(setup: Setup) -> None:
    cache, upstream, clock, router = setup
    route = router.route("hub/team/app")
    await cache.manifest(route, "v1")
    clock.now += 61
    upstream.calls.clear()
    upstream.delay = 0.05
    states = []

    async def pull() -> None:
        states.append((await cache.manifest(route, "v1")).state)

    async with trio.open_nursery() as nursery:
        for _ in range(10):
            nursery.start_soon(pull)
    assert upstream.calls == ["HEAD v1"]
    assert states == ["revalidated"] * 10


async def test_worker_processes_share_tag_freshness_through_the_store() -> None:
    # Two caches on one MetadataStore stand for two worker processes of a node.
    config = UpstreamConfig("hub", "http://upstream", project="hub", tag_ttl=60, timeout=2)
    route = Router([config]).route("hub/team/app")
    assert route is not None
    registry = Registry(MemoryBlobStore(), MemoryMetadataStore())
    upstream, wall = ScriptedUpstream(), Clock()
    async with trio.open_nursery() as nursery:
        fills = Fills(registry.blobs, nursery)
        workers = [
            ProxyCache(registry, fills, {"hub": upstream}, Clock(), wall=wall) for _ in range(2)
        ]
        first = await workers[0].manifest(route, "v1")
        check = await registry.meta.tag_check(route.local, "v1")
        assert check is not None and check.checked == check.first_pulled == wall.now
        upstream.calls.clear()
        wall.now += 59
        assert (await workers[1].manifest(route, "v1")).state == "hit"
        assert upstream.calls == [], "the other worker knows the tag is fresh"
        wall.now += 2
        upstream.delay = 0.05
        states: list[str] = []

        async def pull(cache: ProxyCache) -> None:
            states.append((await cache.manifest(route, "v1")).state)

        async with trio.open_nursery() as pulls:
            for i in range(10):
                pulls.start_soon(pull, workers[i % 2])
        assert upstream.calls == ["HEAD v1"], "one HEAD for the whole node"
        assert "revalidated" in states and set(states) <= {"revalidated", "hit", "stale"}
        check = await registry.meta.tag_check(route.local, "v1")
        assert check is not None
        assert (check.checked, check.first_pulled) == (wall.now, wall.now - 61)
        assert (await workers[1].manifest(route, str(first.record.digest))).state == "hit"
        assert upstream.calls == ["HEAD v1"]
        nursery.cancel_scope.cancel()


async def test_a_failed_revalidation_holds_its_claim_for_the_upstreams_timeout(
    setup: Setup,
) -> None:
    cache, upstream, clock, router = setup
    route = router.route("hub/team/app")
    await cache.manifest(route, "v1")
    clock.now += 61
    upstream.failure = Unavailable("connection refused")
    assert (await cache.manifest(route, "v1")).state == "stale"
    asked = len(upstream.calls)
    clock.now += 2.5  # within the 2 s timeout + 1 s claim
    assert (await cache.manifest(route, "v1")).state == "stale"
    assert len(upstream.calls) == asked, "the claim spares the upstream a retry storm"
    clock.now += 1
    upstream.failure = None
    assert (await cache.manifest(route, "v1")).state == "revalidated"
