"""The registry's housekeeping, on the in-memory stores: access times and upload purging."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from node.registry import Registry
from node.storage.memory import MemoryBlobStore, MemoryMetadataStore
from portmesh.oci.digest import Digest
from portmesh.oci.errors import OCIError


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def registry(clock: Clock) -> Registry:
    return Registry(MemoryBlobStore(), MemoryMetadataStore(), clock=clock)


async def test_pulls_record_access_times_only_when_flushed(
    registry: Registry, clock: Clock
) -> None:
    data = b"layer bytes"
    digest = Digest.of(data)
    await registry.put_blob("team/app", digest, _chunks(data), len(data))
    reader = await registry.open_blob("team/app", digest)
    await reader.aclose()
    assert await registry.meta.last_access(digest) is None, "no write per read"
    await registry.flush_access_times()
    assert await registry.meta.last_access(digest) == clock.now
    clock.now += 60
    await registry.blob_size("team/app", digest)  # a HEAD is not a pull
    await registry.flush_access_times()
    assert await registry.meta.last_access(digest) == clock.now - 60


async def test_purge_drops_idle_sessions_and_keeps_busy_ones(
    registry: Registry, clock: Clock
) -> None:
    idle = await registry.start_upload("team/app")
    busy = await registry.start_upload("team/app")
    await registry.append("team/app", idle.id, _chunks(b"abc"), start=0, length=3)
    clock.now += 7200
    await registry.append("team/app", busy.id, _chunks(b"abc"), start=0, length=3)
    # Memory sessions are stamped with the wall clock; purge everything older than "now".
    purged = await registry.purge_uploads(older_than=0.0)
    assert purged == 0
    never_written = await registry.start_upload("team/app")
    clock.now += 7200
    purged = await registry.purge_uploads(older_than=clock.now - 3600)
    assert purged == 1  # the session that never received a byte, by its start time
    with pytest.raises(OCIError) as info:
        await registry.upload_offset("team/app", never_written.id)
    assert info.value.code == "BLOB_UPLOAD_UNKNOWN"
    assert await registry.upload_offset("team/app", idle.id) == 3


async def test_purge_removes_orphaned_session_bytes(registry: Registry) -> None:
    writer = await registry.blobs.create("0123456789abcdef0123456789abcdef")
    await writer.write(b"left behind by a crash")
    await writer.suspend()
    assert await registry.purge_uploads(older_than=0.0) == 0, "too fresh to purge"
    assert await registry.purge_uploads(older_than=float("inf")) == 1
    assert await registry.blobs.sessions() == {}
