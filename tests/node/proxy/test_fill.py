"""Cache fills on the in-memory store with a scripted upstream body (one layer, no network)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trio
import trio.testing

from node.proxy.fill import CHUNK, LEAD, PACE_WAIT, Fill, FillFailed, Fills, Source
from node.storage.base import Claim
from node.storage.fs import FsBlobStore
from node.storage.memory import MemoryBlobStore
from portmesh.oci.digest import Digest

BLOB = os.urandom(5 * 1024 * 1024 + 123)
DIGEST = Digest.of(BLOB)


@dataclass
class Upstream:
    """Serves ``body`` in 256 KiB pieces, pausing ``pause`` seconds between them."""

    body: bytes = BLOB
    size: int | None = len(BLOB)
    pause: float = 0.001
    cut_after: int | None = None
    fetches: int = 0
    commits: list[int] = field(default_factory=list)

    @asynccontextmanager
    async def fetch(self) -> AsyncIterator[Source]:
        self.fetches += 1
        yield _Body(self)

    async def on_commit(self, size: int) -> None:
        self.commits.append(size)


class _Body:
    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self.total = upstream.size

    async def __aiter__(self) -> AsyncIterator[bytes]:
        up, pos = self.upstream, 0
        while pos < len(up.body):
            if up.cut_after is not None and pos >= up.cut_after:
                raise ConnectionResetError("upstream went away")
            await trio.sleep(up.pause)
            yield up.body[pos : pos + 256 * 1024]
            pos += 256 * 1024


async def _read_all(fills: Fills, fill: Fill, offset: int = 0, length: int | None = None) -> bytes:
    return b"".join([c async for c in fills.read(fill, offset, length)])


async def test_concurrent_readers_share_one_fetch() -> None:
    store, upstream, results = MemoryBlobStore(), Upstream(), []
    async with trio.open_nursery() as fill_nursery:
        fills = Fills(store, fill_nursery)

        async def client() -> None:
            fill = await fills.join(DIGEST, upstream.fetch, upstream.on_commit)
            assert fill.size == len(BLOB)
            results.append(await _read_all(fills, fill))

        async with trio.open_nursery() as clients:
            for _ in range(10):
                clients.start_soon(client)
    assert upstream.fetches == 1 and fills.started == 1
    assert results == [BLOB] * 10
    assert upstream.commits == [len(BLOB)]
    assert await store.stat(DIGEST) == len(BLOB)
    assert fills.inflight(DIGEST) is None


async def test_late_joiner_reads_what_is_written_then_follows() -> None:
    store, upstream = MemoryBlobStore(), Upstream(pause=0.01)
    async with trio.open_nursery() as nursery:
        fills = Fills(store, nursery)
        first = await fills.join(DIGEST, upstream.fetch, upstream.on_commit)
        await trio.sleep(0.05)
        assert 0 < first.written < len(BLOB), "the fill is under way"
        late = await fills.join(DIGEST, upstream.fetch, upstream.on_commit)
        assert late is first
        assert await _read_all(fills, late) == BLOB
    assert upstream.fetches == 1


async def test_range_of_a_blob_being_filled() -> None:
    store, upstream = MemoryBlobStore(), Upstream()
    async with trio.open_nursery() as nursery:
        fills = Fills(store, nursery)
        fill = await fills.join(DIGEST, upstream.fetch, upstream.on_commit)
        part = await _read_all(fills, fill, 3 * 1024 * 1024 + 7, 1000)
    assert part == BLOB[3 * 1024 * 1024 + 7 : 3 * 1024 * 1024 + 1007]


@pytest.mark.parametrize(
    "upstream",
    [
        Upstream(body=BLOB[:-1] + bytes([BLOB[-1] ^ 1])),  # one flipped byte
        Upstream(cut_after=2 * 1024 * 1024),  # connection cut mid-stream
        Upstream(body=BLOB[:-100]),  # shorter than it said
    ],
    ids=["flipped-byte", "cut", "short"],
)
async def test_bad_upstream_bytes_are_never_cached(upstream: Upstream) -> None:
    store = MemoryBlobStore()
    async with trio.open_nursery() as nursery:
        fills = Fills(store, nursery)
        fill = await fills.join(DIGEST, upstream.fetch, upstream.on_commit)
        got = bytearray()
        with pytest.raises(FillFailed):
            async for chunk in fills.read(fill):
                got += chunk
        assert len(got) < len(BLOB), "never a complete-looking wrong blob"
    assert await store.stat(DIGEST) is None
    assert upstream.commits == []
    # The next pull tries again, and succeeds once the upstream is right.
    good = Upstream()
    async with trio.open_nursery() as nursery:
        fills2 = Fills(store, nursery)
        fill = await fills2.join(DIGEST, good.fetch, good.on_commit)
        assert await _read_all(fills2, fill) == BLOB


async def test_failure_before_the_body_reaches_every_joiner() -> None:
    @asynccontextmanager
    async def refused() -> AsyncIterator[Source]:
        await trio.sleep(0.01)
        raise ConnectionRefusedError("nothing listens there")
        yield  # pragma: no cover

    async def nothing(size: int) -> None:
        raise AssertionError("never committed")

    errors: list[BaseException] = []
    async with trio.open_nursery() as nursery:
        fills = Fills(MemoryBlobStore(), nursery)

        async def client() -> None:
            try:
                await fills.join(DIGEST, refused, nothing)
            except FillFailed as exc:
                errors.append(exc)

        async with trio.open_nursery() as clients:
            for _ in range(3):
                clients.start_soon(client)
    assert len(errors) == 3
    assert all(isinstance(e.__cause__, ConnectionRefusedError) for e in errors)
    assert fills.started == 1


async def test_a_client_going_away_does_not_cancel_the_fill() -> None:
    store, upstream = MemoryBlobStore(), Upstream(pause=0.005)
    async with trio.open_nursery() as nursery:
        fills = Fills(store, nursery)
        fill = await fills.join(DIGEST, upstream.fetch, upstream.on_commit)
        with trio.move_on_after(0.02):  # this client disconnects early
            await _read_all(fills, fill)
        assert not fill.done
        assert await _read_all(fills, fill) == BLOB
    assert await store.stat(DIGEST) == len(BLOB)


async def test_a_hanging_upstream_hits_the_fill_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    upstream = Upstream(pause=10_000)
    async with trio.open_nursery() as nursery:
        fills = Fills(MemoryBlobStore(), nursery, deadline=60)
        fill = await fills.join(DIGEST, upstream.fetch, upstream.on_commit)
        with pytest.raises(FillFailed):
            await _read_all(fills, fill)
    assert isinstance(fill.error, trio.TooSlowError)


BIG = os.urandom(40 * 1024 * 1024 + 4321)  # past the store's thread-write and sync sizes


@pytest.mark.parametrize("flip", [False, True], ids=["intact", "flipped-byte"])
async def test_fill_into_the_filesystem_store(tmp_path: Path, flip: bool) -> None:
    # The store copies and hashes big buffers in a worker thread while the next arrive.
    body = BIG[:-1] + bytes([BIG[-1] ^ 1]) if flip else BIG
    store, upstream = FsBlobStore(tmp_path), Upstream(body=body, size=len(BIG), pause=0)
    digest, results = Digest.of(BIG), []
    async with trio.open_nursery() as nursery:
        fills = Fills(store, nursery)

        async def client() -> None:
            fill = await fills.join(digest, upstream.fetch, upstream.on_commit)
            got = bytearray()
            try:
                async for chunk in fills.read(fill):
                    got += chunk
            except FillFailed:
                pass
            results.append(bytes(got))

        async with trio.open_nursery() as clients:
            for _ in range(3):
                clients.start_soon(client)
    assert upstream.fetches == 1
    if flip:
        assert all(len(r) < len(BIG) for r in results), "never a complete-looking wrong blob"
        assert await store.stat(digest) is None and upstream.commits == []
    else:
        assert results == [BIG] * 3
        reader = await store.open(digest)
        try:
            assert b"".join([c async for c in reader.chunks()]) == BIG
        finally:
            await reader.aclose()


class _FailingWriter:
    """A store whose disk fills up after ``room`` bytes."""

    def __init__(self, inner: MemoryBlobStore, room: int) -> None:
        self.inner, self.room = inner, room

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    async def claim(self, digest: Digest) -> Claim:
        claim = await self.inner.claim(digest)
        if claim.writer is not None:
            writer, room = claim.writer, self.room

            async def write(data: bytes) -> None:
                nonlocal room
                room -= len(data)
                if room < 0:
                    raise OSError(28, "No space left on device")
                await original(data)

            original = writer.write
            writer.write = write  # type: ignore[method-assign]
        return claim


async def test_a_failing_store_write_fails_the_fill_and_caches_nothing() -> None:
    memory, upstream = MemoryBlobStore(), Upstream(pause=0)
    store = _FailingWriter(memory, room=2 * 1024 * 1024)
    async with trio.open_nursery() as nursery:
        fills = Fills(store, nursery)  # type: ignore[arg-type]
        fill = await fills.join(DIGEST, upstream.fetch, upstream.on_commit)
        got = bytearray()
        with pytest.raises(FillFailed) as info:
            async for chunk in fills.read(fill):
                got += chunk
        assert isinstance(info.value.__cause__, OSError)
        assert len(got) < len(BLOB)
    assert await memory.stat(DIGEST) is None and upstream.commits == []


async def test_readers_near_the_front_are_served_from_memory() -> None:
    store, upstream = MemoryBlobStore(), Upstream(pause=0.002)
    async with trio.open_nursery() as nursery:
        fills = Fills(store, nursery)
        fill = await fills.join(DIGEST, upstream.fetch, upstream.on_commit)
        served: list[bytes] = []
        async for chunk in fills.read(fill):
            served.append(chunk)
            if fill.done:
                continue
            assert fill.received >= fill.written
        assert b"".join(served) == BLOB
        kept = [data for _, data in fill._recent]
        # Whole buffers went out as they are: the very objects received, not copies.
        assert any(any(chunk is data for data in kept) for chunk in served)


async def test_readers_get_the_last_byte_once_verified_not_once_stored(tmp_path: Path) -> None:
    """The digest check releases the last byte; placing and linking the blob come after."""
    stored = trio.Event()
    token = trio.lowlevel.current_trio_token()
    store, upstream = FsBlobStore(tmp_path), Upstream(pause=0)
    real_place = store._place

    def slow_place(path: Path, dest: Path) -> bool:  # runs in a worker thread
        trio.from_thread.run(stored.wait, trio_token=token)
        return real_place(path, dest)

    store._place = slow_place  # type: ignore[method-assign]
    async with trio.open_nursery() as nursery:
        fills = Fills(store, nursery)
        fill = await fills.join(DIGEST, upstream.fetch, upstream.on_commit)
        try:
            with trio.fail_after(10):
                assert await _read_all(fills, fill) == BLOB
            assert fill.verified and not fill.done and upstream.commits == []
            assert await store.stat(DIGEST) is None, "not visible before it is stored"
        finally:
            stored.set()  # the fill's thread waits for it
    assert upstream.commits == [len(BLOB)] and await store.stat(DIGEST) == len(BLOB)


BIG = os.urandom(24 * 1024 * 1024 + 5)


async def test_the_fill_keeps_pace_with_its_fastest_reader() -> None:
    """A reader a little slower than the upstream finds every byte in memory: the fill
    waits for it instead of running ahead into the store's file."""
    store, upstream = MemoryBlobStore(), Upstream(body=BIG, size=len(BIG), pause=0)
    async with trio.open_nursery() as nursery:
        fills = Fills(store, nursery)
        fill = await fills.join(Digest.of(BIG), upstream.fetch, upstream.on_commit)
        got, ahead = bytearray(), []
        async for chunk in fills.read(fill):
            ahead.append(fill.received - len(got))
            got += chunk
            await trio.sleep(0.002)  # slower than the upstream
        assert bytes(got) == BIG
        assert max(ahead) <= LEAD + CHUNK, "never further ahead than the lead and a buffer"
        assert fill.readers == 0


async def test_a_stalled_reader_holds_the_fill_up_only_briefly() -> None:
    store, upstream = MemoryBlobStore(), Upstream(body=BIG, size=len(BIG), pause=0)
    committed = trio.Event()

    async def on_commit(size: int) -> None:
        await upstream.on_commit(size)
        committed.set()

    async with trio.open_nursery() as nursery:
        fills = Fills(store, nursery)
        fill = await fills.join(Digest.of(BIG), upstream.fetch, on_commit)
        reader = fills.read(fill)
        await reader.__anext__()  # one buffer, then it reads no more (and stays open)
        assert fill.readers == 1
        waits = (len(BIG) - LEAD) // (CHUNK // 2) + 1
        with trio.fail_after(waits * PACE_WAIT + 5):
            await committed.wait()
        assert upstream.commits == [len(BIG)] and fill.readers == 1
        await reader.aclose()
        assert fill.readers == 0
