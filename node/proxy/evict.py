"""Keeping the pull-through cache under its byte limit.

When committed blobs take more than ``limit`` bytes, blobs are deleted least recently
pulled first until they take at most 90 % of it. Only blobs that nothing but proxy caches
holds are candidates: pushed content is never evicted. Access times are the coarse ones
the registry flushes (a fill records its pull time, so what was just cached goes last).
An evicted blob is simply fetched again by the next pull.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from node.registry import Registry

__all__ = ["LOW_WATER", "evict"]

log = logging.getLogger("portmesh.proxy")

LOW_WATER = 0.9


async def evict(
    registry: Registry, is_cache_repo: Callable[[str], bool], limit: int, *, batch: int = 10_000
) -> int:
    """Evict cached blobs until usage is at most ``LOW_WATER * limit``; bytes freed."""
    usage = await registry.blobs.usage()
    if usage <= limit:
        return 0
    target = int(limit * LOW_WATER)
    freed = 0
    meta = registry.meta
    for digest, _when in await meta.least_recent(batch):
        if usage - freed <= target:
            break
        repos = await meta.blob_repos(digest)
        if not repos or not all(is_cache_repo(repo) for repo in repos):
            continue  # pushed (or no longer known): never evicted
        for repo in repos:
            await meta.unlink_blob(repo, digest)
        if await meta.blob_in_use(digest):
            continue  # a manifest still names it
        size = await registry.blobs.stat(digest) or 0
        await registry.blobs.delete(digest)
        await meta.forget_access(digest)
        freed += size
    if freed:
        log.info("evicted %d bytes of cached blobs (limit %d)", freed, limit)
    return freed
