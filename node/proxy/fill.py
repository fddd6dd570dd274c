"""Cache fills: one upstream fetch per blob, streamed to every client that waits for it.

A :class:`Fills` owns a nursery that outlives requests. The first request for a missing
blob claims its fill among every worker process sharing the store (``BlobStore.claim``):
the winner fetches it there, the other processes follow the winner's file. Every request
for the same digest, concurrent or late, joins its process's fill and reads the bytes as
they land (``read_back``), so each client sees the upstream's time to first byte plus a
little. The blob is committed, and so made visible, only when its digest checks out, and
its last byte reaches no client before that. A mismatch, a cut stream or the fill's
deadline caches nothing and raises :class:`FillFailed` in every reader, which aborts their
responses: a client never gets a complete-looking wrong blob. A client that goes away
only stops its own reader; the fill goes on for the others and the next pull.

A fill keeps pace with its fastest reader: it takes the next bytes from upstream once that
reader is within ``LEAD`` bytes of them, or ``PACE_WAIT`` seconds later, so that a client
about as fast as the upstream is served from memory rather than reading the store's file
back, and a slow or stalled one never holds the fill up for long.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, aclosing, asynccontextmanager
from typing import Protocol

import trio

from node.storage.base import BlobStore, BlobWriter, PartialBlob, StorageError
from portmesh.oci.digest import Digest

__all__ = ["CHUNK", "Fill", "FillFailed", "Fills", "Source"]

log = logging.getLogger("portmesh.proxy")

CHUNK = 2 * 1024 * 1024
#: buffers received ahead of the store's writer (which copies and hashes in a thread)
AHEAD = 2
#: the latest buffers a fill keeps for its readers (more than AHEAD + 1, so that every
#: byte older than them is in the store's file)
KEEP = 4
#: how often a process following another's fill looks at its file
FOLLOW_INTERVAL = 0.01
#: how far the fill runs ahead of its fastest reader before it waits for it (well within
#: the ``KEEP`` buffers in memory)
LEAD = (KEEP - 2) * CHUNK
#: the longest a fill waits for its fastest reader before it goes on without it
PACE_WAIT = 0.05


class Source(Protocol):
    """An upstream blob body (``adapters.base.BlobStream``): the whole blob's declared
    size when known, then its bytes as they arrive."""

    @property
    def total(self) -> int | None: ...

    def __aiter__(self) -> AsyncIterator[bytes]: ...


class FillFailed(StorageError):
    """The fill could not produce the blob; ``__cause__`` says why."""


class Fill:
    """One blob on its way from upstream into the store."""

    def __init__(self, digest: Digest) -> None:
        self.digest = digest
        self.size: int | None = None
        #: bytes in the store's file (readable with ``writer.read_back``)
        self.written = 0
        #: bytes received; the latest ``KEEP`` buffers of them stay in memory
        self.received = 0
        self._recent: deque[tuple[int, bytes]] = deque(maxlen=KEEP)
        self.done = False
        #: the digest checked out: readers may have the last byte (before it is stored)
        self.verified = False
        self.error: BaseException | None = None
        self.ready = trio.Event()  # size known, or failed
        #: where readers find the bytes written so far
        self.writer: BlobWriter | PartialBlob | None = None
        self._progress = trio.Event()
        #: readers reading, and the furthest position any of them has been given
        self.readers = 0
        self.taken = 0
        self._taking = trio.Event()

    def _notify(self) -> None:
        self._progress.set()
        self._progress = trio.Event()

    def _took(self, pos: int) -> None:
        if pos > self.taken:
            self.taken = pos
            self._taking.set()
            self._taking = trio.Event()

    async def _keep_pace(self) -> None:
        """Wait (up to ``PACE_WAIT``) while readers read and the fastest is ``LEAD``
        bytes or more behind what was received."""
        if self.readers and self.received - self.taken >= LEAD:
            with trio.move_on_after(PACE_WAIT):
                while self.readers and self.received - self.taken >= LEAD:
                    await self._taking.wait()

    def _verified(self) -> None:
        self.verified = True
        self._notify()

    def _received(self, data: bytes) -> None:
        self._recent.append((self.received, data))
        self.received += len(data)
        self._notify()

    def _from_memory(self, pos: int, most: int) -> bytes | None:
        """Up to ``most`` bytes from ``pos`` out of the buffers kept; None if not there."""
        for start, data in self._recent:
            if start <= pos < start + len(data):
                lo = pos - start
                if lo == 0 and len(data) <= most:
                    return data  # the whole buffer: no copy
                return data[lo : lo + most]
        return None

    async def _wait(self) -> None:
        await self._progress.wait()

    def _failed(self) -> FillFailed:
        failure = FillFailed(f"fetching {self.digest} from upstream failed: {self.error}")
        failure.__cause__ = self.error
        return failure


class Fills:
    """The fills in flight, one per digest (singleflight)."""

    def __init__(self, blobs: BlobStore, nursery: trio.Nursery, *, deadline: float = 3600.0):
        self.blobs = blobs
        self.nursery = nursery
        self.deadline = deadline
        self._inflight: dict[Digest, Fill] = {}
        #: fills started, for metrics and tests
        self.started = 0

    def inflight(self, digest: Digest) -> Fill | None:
        return self._inflight.get(digest)

    async def join(
        self,
        digest: Digest,
        fetch: Callable[[], AbstractAsyncContextManager[Source]],
        on_commit: Callable[[int], Awaitable[None]],
    ) -> Fill:
        """The fill of ``digest``, started with ``fetch`` unless one is running already.

        Returns once the blob's size is known; raises :class:`FillFailed` if the fill
        failed before that. ``on_commit(size)`` runs once the blob is in the store (to
        link it into the repository) before readers are told the fill is done.
        """
        fill = self._inflight.get(digest)
        if fill is None:
            fill = Fill(digest)
            self._inflight[digest] = fill
            try:
                claim = await self.blobs.claim(digest)
            except BaseException:
                del self._inflight[digest]
                raise
            if claim.writer is not None:
                self.started += 1
                self.nursery.start_soon(self._run, fill, claim.writer, fetch, on_commit)
            elif claim.partial is not None:
                self.nursery.start_soon(self._follow, fill, claim.partial, on_commit)
            else:  # stored meanwhile
                del self._inflight[digest]
                fill.size = await self.blobs.stat(digest)
                await on_commit(fill.size or 0)
                fill.done = True
                fill.ready.set()
        await fill.ready.wait()
        if fill.error is not None:
            raise fill._failed()
        return fill

    async def _run(
        self,
        fill: Fill,
        writer: BlobWriter,
        fetch: Callable[[], AbstractAsyncContextManager[Source]],
        on_commit: Callable[[int], Awaitable[None]],
    ) -> None:
        fill.writer = writer
        async with self._settle(fill, writer.aclose):
            with trio.fail_after(self.deadline):
                async with fetch() as source:
                    fill.size = source.total
                    if fill.size is not None:
                        writer.announce_size(fill.size)
                    fill.ready.set()
                    await self._pump(fill, source, writer)
                if fill.size is not None and fill.written != fill.size:
                    raise FillFailed(f"upstream sent {fill.written} of {fill.size} bytes")
                size = await writer.commit(fill.digest, fill._verified)
                await on_commit(size)
            fill.done = True

    @staticmethod
    async def _pump(fill: Fill, source: Source, writer: BlobWriter) -> None:
        """Copy ``source`` into ``writer``: small upstream chunks are joined into buffers of
        at least ``CHUNK // 2`` bytes, which the writer stores while the next ones
        arrive; readers are woken per buffer received (they read the latest from memory).
        The first failure of either side ends both and is raised as itself."""
        send, receive = trio.open_memory_channel[bytes](AHEAD)
        failures: list[Exception] = []

        async def store() -> None:
            try:
                async with receive:
                    async for data in receive:
                        await writer.write(data)
                        fill.written += len(data)
                        fill._notify()
            except Exception as exc:
                failures.append(exc)
                nursery.cancel_scope.cancel()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(store)
            try:
                async with send:
                    pending: list[bytes] = []
                    held = 0
                    async for chunk in source:
                        pending.append(chunk)
                        held += len(chunk)
                        if held >= CHUNK // 2:  # one wide read alone is passed on uncopied
                            data = b"".join(pending)
                            pending, held = [], 0
                            fill._received(data)
                            await send.send(data)
                            await fill._keep_pace()
                    if held:
                        data = b"".join(pending)
                        fill._received(data)
                        await send.send(data)
            except Exception as exc:
                failures.append(exc)
                nursery.cancel_scope.cancel()
        if failures:
            raise failures[0]

    async def _follow(
        self, fill: Fill, partial: PartialBlob, on_commit: Callable[[int], Awaitable[None]]
    ) -> None:
        """Track another process's fill of the blob until it commits or fails."""
        log.debug("following another process's fill of %s", fill.digest)
        fill.writer = partial
        async with self._settle(fill, partial.aclose):
            with trio.fail_after(self.deadline):
                while True:
                    finished = partial.finished()  # before reading, so no byte is missed
                    if fill.size is None:
                        fill.size = partial.expected_size()
                    if fill.size is not None:
                        fill.ready.set()
                    written = partial.written()
                    if written > fill.written:
                        fill.written = fill.received = written
                        fill._notify()
                    if finished:
                        break
                    await trio.sleep(FOLLOW_INTERVAL)
            size = await self.blobs.stat(fill.digest)
            if size is None:
                raise FillFailed("the process filling it gave up")
            await on_commit(size)
            fill.size = size
            fill.done = True

    @asynccontextmanager
    async def _settle(
        self, fill: Fill, release: Callable[[], Awaitable[None]]
    ) -> AsyncIterator[None]:
        """Record how a fill ended (its failure goes to the readers, not up), wake every
        reader, and release the writer or the followed file."""
        try:
            yield
        except Exception as exc:
            log.warning("fill of %s failed: %s", fill.digest, exc)
            fill.error = exc
        except BaseException as exc:  # the node is shutting down: readers must not wait
            fill.error = exc
            raise
        finally:
            del self._inflight[fill.digest]
            fill.ready.set()
            fill._notify()
            with trio.CancelScope(shield=True):
                await release()

    async def read(
        self, fill: Fill, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        """Yield bytes ``[offset, offset+length)`` of the blob as the fill brings them.

        Raises :class:`FillFailed` (after whatever bytes were already yielded) when the
        fill fails, so the response it feeds is cut short instead of completed.
        """
        fill.readers += 1  # the fill keeps pace with the fastest of them
        try:
            async with aclosing(self._read(fill, offset, length)) as chunks:
                async for chunk in chunks:
                    yield chunk
        finally:
            fill.readers -= 1

    async def _read(
        self, fill: Fill, offset: int, length: int | None
    ) -> AsyncGenerator[bytes, None]:
        end = None if length is None else offset + length
        pos = offset
        while end is None or pos < end:
            want = CHUNK if end is None else min(CHUNK, end - pos)
            data: bytes | None = None
            if fill.done:
                data = fill._from_memory(pos, want)
                if data is None:
                    reader = await self.blobs.open(fill.digest)
                    try:
                        rest = None if end is None else end - pos
                        async for chunk in reader.chunks(pos, rest):
                            yield chunk
                    finally:
                        await reader.aclose()
                    return
            elif fill.error is not None:
                raise fill._failed()
            elif (
                fill.verified and fill.size is not None and pos >= min(end or fill.size, fill.size)
            ):
                return  # all of it, checked; storing it goes on without this reader
            else:
                # The blob's last byte waits for the digest check, so a wrong blob can
                # never reach a client complete: its response is cut one byte short. It
                # need not wait for the blob to be durable and linked as well.
                limit = fill.received
                if fill.size is not None and not fill.verified:
                    limit = min(limit, fill.size - 1)
                if pos < limit:
                    most = min(want, limit - pos)
                    data = fill._from_memory(pos, most)
                    if data is None and fill.writer is not None and pos < fill.written:
                        data = fill.writer.read_back(pos, min(most, fill.written - pos))
            if data:
                pos += len(data)
                fill._took(pos)
                yield data
            else:
                await fill._wait()
