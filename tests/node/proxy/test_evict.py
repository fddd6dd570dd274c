"""Cache eviction on the in-memory stores: least recently pulled first, pushed never."""

from __future__ import annotations

from node.proxy.evict import evict
from node.registry import Registry
from node.storage.memory import MemoryBlobStore, MemoryMetadataStore
from portmesh.oci.digest import Digest


async def _store(registry: Registry, repo: str, data: bytes, pulled_at: float | None) -> Digest:
    writer = await registry.blobs.create()
    await writer.write(data)
    digest = Digest.of(data)
    await writer.commit(digest)
    await writer.aclose()
    await registry.meta.link_blob(repo, digest, len(data))
    if pulled_at is not None:
        await registry.meta.touch([digest], pulled_at)
    return digest


def _is_cache(repo: str) -> bool:
    return repo.startswith("hub/")


async def test_evicts_least_recent_cached_blobs_down_to_low_water() -> None:
    registry = Registry(MemoryBlobStore(), MemoryMetadataStore())
    oldest = await _store(registry, "hub/a", b"1" * 400, pulled_at=10)
    pushed = await _store(registry, "team/app", b"2" * 400, pulled_at=1)
    shared = await _store(registry, "hub/b", b"3" * 400, pulled_at=5)
    await registry.meta.link_blob("team/app", shared, 400)  # also pushed: stays
    newer = await _store(registry, "hub/c", b"4" * 400, pulled_at=20)
    newest = await _store(registry, "hub/d", b"5" * 400, pulled_at=30)
    assert await registry.blobs.usage() == 2000

    assert await evict(registry, _is_cache, limit=2000) == 0, "at the limit: nothing to do"
    freed = await evict(registry, _is_cache, limit=1500)  # down to 1350 at most
    assert freed == 800
    assert await registry.blobs.stat(oldest) is None and await registry.blobs.stat(newer) is None
    for kept in (pushed, shared, newest):
        assert await registry.blobs.stat(kept) == 400
    assert await registry.meta.blob_size("hub/a", oldest) is None, "the next pull refetches"
    assert await registry.meta.last_access(oldest) is None
    assert await registry.meta.blob_size("hub/b", shared) == 400


async def test_pushed_content_is_never_evicted_even_over_the_limit() -> None:
    registry = Registry(MemoryBlobStore(), MemoryMetadataStore())
    pushed = await _store(registry, "team/app", b"x" * 1000, pulled_at=1)
    assert await evict(registry, _is_cache, limit=10) == 0
    assert await registry.blobs.stat(pushed) == 1000
