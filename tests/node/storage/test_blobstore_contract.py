"""The BlobStore contract, run against every implementation."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import trio

from node.storage.base import BlobNotFound, BlobReader, BlobStore, DigestMismatch, StorageError
from node.storage.fs import FsBlobStore
from node.storage.memory import MemoryBlobStore
from portmesh.oci.digest import Digest

MiB = 1024 * 1024

#: Returns a store; called again, a new instance over the same data (a restart). The
#: memory store cannot survive a restart, so it hands back the same instance.
Factory = Callable[[], BlobStore]


@pytest.fixture(params=["memory", "fs"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Factory:
    if request.param == "memory":
        store = MemoryBlobStore()
        return lambda: store
    return lambda: FsBlobStore(tmp_path / "store")


@pytest.fixture
def store(make_store: Factory) -> BlobStore:
    return make_store()


def session_id() -> str:
    return uuid.uuid4().hex


async def read_all(reader: BlobReader, offset: int = 0, length: int | None = None) -> bytes:
    return b"".join([chunk async for chunk in reader.chunks(offset, length)])


async def put(store: BlobStore, data: bytes, algorithm: str = "sha256") -> Digest:
    digest = Digest.of(data, algorithm)
    writer = await store.create()
    await writer.write(data)
    assert await writer.commit(digest) == len(data)
    await writer.aclose()
    return digest


async def content(store: BlobStore, digest: Digest) -> bytes:
    reader = await store.open(digest)
    try:
        return await read_all(reader)
    finally:
        await reader.aclose()


async def test_commit_makes_blob_visible(store: BlobStore) -> None:
    data = b"hello " * 1000
    digest = Digest.of(data)
    writer = await store.create()
    await writer.write(data[:100])
    await writer.write(data[100:])
    assert writer.size == len(data)
    assert await store.stat(digest) is None
    with pytest.raises(BlobNotFound):
        await store.open(digest)
    assert await writer.commit(digest) == len(data)
    await writer.aclose()  # after commit: a no-op
    assert await store.stat(digest) == len(data)
    assert await content(store, digest) == data
    assert await store.usage() == len(data)


async def test_digest_mismatch_leaves_nothing_visible(store: BlobStore) -> None:
    data = b"actual content"
    wrong = Digest.of(b"something else")
    writer = await store.create()
    await writer.write(data)
    with pytest.raises(DigestMismatch) as info:
        await writer.commit(wrong)
    assert info.value.expected == wrong
    assert info.value.actual == Digest.of(data)
    await writer.aclose()
    assert await store.stat(wrong) is None
    assert await store.stat(Digest.of(data)) is None
    assert await store.usage() == 0


async def test_sha512_mismatch_reports_sha512(store: BlobStore) -> None:
    writer = await store.create()
    await writer.write(b"abc")
    with pytest.raises(DigestMismatch) as info:
        await writer.commit(Digest.of(b"abd", "sha512"))
    assert info.value.actual == Digest.of(b"abc", "sha512")
    assert await store.stat(Digest.of(b"abc", "sha512")) is None


async def test_aclose_discards_and_is_idempotent(store: BlobStore) -> None:
    data = b"abandoned"
    writer = await store.create()
    await writer.write(data)
    await writer.aclose()
    await writer.aclose()
    assert await store.stat(Digest.of(data)) is None
    with pytest.raises(StorageError):
        await writer.write(b"more")
    with pytest.raises(StorageError):
        await writer.commit(Digest.of(data))
    assert await store.usage() == 0


async def test_empty_blob(store: BlobStore) -> None:
    digest = Digest.of(b"")
    writer = await store.create()
    assert await writer.commit(digest) == 0
    assert await store.stat(digest) == 0
    reader = await store.open(digest)
    assert reader.size == 0
    assert [c async for c in reader.chunks()] == []
    await reader.aclose()


@pytest.mark.parametrize("algorithm", ["sha256", "sha512", "blake3"])
async def test_commit_with_each_algorithm(store: BlobStore, algorithm: str) -> None:
    data = bytes(range(256)) * 5000
    digest = await put(store, data, algorithm)
    assert digest.algorithm == algorithm
    assert await store.stat(digest) == len(data)
    assert await content(store, digest) == data
    # The same bytes under another algorithm are another blob.
    other = "sha512" if algorithm == "sha256" else "sha256"
    assert await store.stat(Digest.of(data, other)) is None


async def test_chunks_are_at_most_one_mib(store: BlobStore) -> None:
    data = bytes(range(251)) * (14 * MiB // 251 // 4)  # about 3.5 MiB
    digest = await put(store, data)
    reader = await store.open(digest)
    chunks = [c async for c in reader.chunks()]
    await reader.aclose()
    assert b"".join(chunks) == data
    assert all(0 < len(c) <= MiB for c in chunks)
    assert len(chunks) == 4


@pytest.mark.parametrize(
    ("offset", "length"),
    [
        (0, None),
        (7, None),
        (7, 10),
        (0, 0),
        (MiB - 3, 10),  # across a chunk boundary
        (MiB, MiB + 5),
        (2 * MiB + 99, 1000),  # past the end: clamped
        (2 * MiB + 100, None),  # exactly the end: nothing
    ],
)
async def test_read_with_offset_and_length(
    store: BlobStore, offset: int, length: int | None
) -> None:
    data = bytes(range(256)) * (2 * MiB // 256) + b"x" * 100
    digest = await put(store, data)
    reader = await store.open(digest)
    try:
        assert reader.size == len(data)
        expected = data[offset:] if length is None else data[offset : offset + length]
        assert await read_all(reader, offset, length) == expected
        # A reader can be read more than once.
        assert await read_all(reader, 1, 3) == data[1:4]
    finally:
        await reader.aclose()


async def test_open_reader_survives_delete(store: BlobStore) -> None:
    data = b"z" * (2 * MiB + 1)
    digest = await put(store, data)
    reader = await store.open(digest)
    assert await store.delete(digest) is True
    assert await store.delete(digest) is False
    assert await store.stat(digest) is None
    with pytest.raises(BlobNotFound):
        await store.open(digest)
    assert await read_all(reader) == data
    await reader.aclose()
    await reader.aclose()
    assert await store.usage() == 0


async def test_committing_present_digest_discards_new_copy(store: BlobStore) -> None:
    data = b"same bytes"
    digest = await put(store, data)
    assert await put(store, data) == digest
    assert await content(store, digest) == data
    assert await store.usage() == len(data)


async def test_usage_counts_commits_and_deletes(store: BlobStore) -> None:
    assert await store.usage() == 0
    a = await put(store, b"a" * 10)
    await put(store, b"b" * 20, "sha512")
    assert await store.usage() == 30
    await store.delete(a)
    assert await store.usage() == 20


async def test_session_suspend_and_resume(store: BlobStore) -> None:
    sid = session_id()
    assert await store.session_size(sid) is None
    writer = await store.create(sid)
    assert writer.size == 0
    await writer.write(b"first part, ")
    await writer.suspend()
    assert await store.session_size(sid) == 12
    writer = await store.create(sid)
    assert writer.size == 12
    await writer.write(b"second part")
    data = b"first part, second part"
    assert await writer.commit(Digest.of(data)) == len(data)
    assert await content(store, Digest.of(data)) == data
    assert await store.session_size(sid) is None


@pytest.mark.parametrize("algorithm", ["sha256", "sha512", "blake3"])
async def test_session_resumes_after_restart(make_store: Factory, algorithm: str) -> None:
    sid = session_id()
    first = make_store()
    writer = await first.create(sid)
    await writer.write(b"a" * (MiB + 5))
    await writer.suspend()

    second = make_store()  # a new process over the same data
    assert await second.session_size(sid) == MiB + 5
    writer = await second.create(sid)
    assert writer.size == MiB + 5
    await writer.write(b"b" * 7)
    data = b"a" * (MiB + 5) + b"b" * 7
    digest = Digest.of(data, algorithm)
    assert await writer.commit(digest) == len(data)
    assert await content(second, digest) == data
    assert await second.session_size(sid) is None


async def test_session_resumed_after_restart_rejects_wrong_digest(make_store: Factory) -> None:
    sid = session_id()
    writer = await make_store().create(sid)
    await writer.write(b"part one")
    await writer.suspend()
    store = make_store()
    writer = await store.create(sid)
    await writer.write(b" and two")
    with pytest.raises(DigestMismatch) as info:
        await writer.commit(Digest.of(b" and two"))
    assert info.value.actual == Digest.of(b"part one and two")
    assert await store.stat(Digest.of(b"part one and two")) is None
    assert await store.stat(Digest.of(b" and two")) is None
    assert await store.session_size(sid) is None


async def test_session_aclose_keeps_suspended_bytes(store: BlobStore) -> None:
    sid = session_id()
    writer = await store.create(sid)
    await writer.write(b"kept")
    await writer.suspend()
    writer = await store.create(sid)
    await writer.write(b"dropped")
    await writer.aclose()
    await writer.aclose()
    assert await store.session_size(sid) == 4
    writer = await store.create(sid)
    await writer.write(b" too")
    assert await writer.commit(Digest.of(b"kept too")) == 8


async def test_fresh_session_aclose_leaves_no_session(store: BlobStore) -> None:
    sid = session_id()
    writer = await store.create(sid)
    await writer.write(b"gone")
    await writer.aclose()
    assert await store.session_size(sid) is None


async def test_discard_session(store: BlobStore) -> None:
    sid = session_id()
    writer = await store.create(sid)
    await writer.write(b"partial")
    await writer.suspend()
    await store.discard(sid)
    await store.discard(sid)
    assert await store.session_size(sid) is None
    writer = await store.create(sid)
    assert writer.size == 0
    await writer.aclose()


async def test_empty_session_commit(store: BlobStore) -> None:
    sid = session_id()
    writer = await store.create(sid)
    await writer.suspend()
    assert await store.session_size(sid) == 0
    writer = await store.create(sid)
    assert await writer.commit(Digest.of(b"")) == 0
    assert await store.stat(Digest.of(b"")) == 0


async def test_only_session_writers_suspend(store: BlobStore) -> None:
    writer = await store.create()
    await writer.write(b"x")
    with pytest.raises(StorageError):
        await writer.suspend()
    await writer.aclose()
    assert await store.stat(Digest.of(b"x")) is None


async def test_concurrent_writers_are_independent(store: BlobStore) -> None:
    blobs = [bytes([i]) * (100_000 + i) for i in range(8)]

    async def one(data: bytes) -> None:
        writer = await store.create()
        for start in range(0, len(data), 30_000):
            await writer.write(data[start : start + 30_000])
            await trio.lowlevel.checkpoint()
        await writer.commit(Digest.of(data))

    async with trio.open_nursery() as nursery:
        for data in blobs:
            nursery.start_soon(one, data)
    for data in blobs:
        assert await content(store, Digest.of(data)) == data
    assert await store.usage() == sum(map(len, blobs))


async def test_session_size_follows_an_open_writer(store: BlobStore) -> None:
    sid = session_id()
    writer = await store.create(sid)
    await writer.write(b"12345")
    assert await store.session_size(sid) == 5
    await writer.write(b"678")
    assert await store.session_size(sid) == 8
    await writer.suspend()
    assert await store.session_size(sid) == 8


async def test_discard_while_a_writer_is_open(store: BlobStore) -> None:
    sid = session_id()
    writer = await store.create(sid)
    await writer.write(b"old")
    await writer.suspend()
    writer = await store.create(sid)
    await writer.write(b"new")
    await store.discard(sid)
    await writer.aclose()
    assert await store.session_size(sid) is None


async def test_sessions_lists_live_sessions_with_change_time(store: BlobStore) -> None:
    before = time.time() - 1
    assert await store.sessions() == {}
    sid = session_id()
    writer = await store.create(sid)
    await writer.write(b"partial")
    await writer.suspend()
    listed = await store.sessions()
    assert list(listed) == [sid]
    assert listed[sid] >= before
    await store.discard(sid)
    assert await store.sessions() == {}


async def test_read_back_while_writing_and_after_commit(store: BlobStore) -> None:
    writer = await store.create()
    await writer.write(b"hello ")
    assert writer.read_back(0, 100) == b"hello "
    await writer.write(b"world")
    assert writer.read_back(3, 5) == b"lo wo"
    assert writer.read_back(11, 5) == b""
    await writer.commit(Digest.of(b"hello world"))
    assert writer.read_back(6, 5) == b"world", "readable until aclose"
    with pytest.raises(StorageError):
        await writer.write(b"more")
    await writer.aclose()
    with pytest.raises(StorageError):
        writer.read_back(0, 1)
    assert await content(store, Digest.of(b"hello world")) == b"hello world"


async def test_claim_gives_a_writer_until_the_blob_is_stored(store: BlobStore) -> None:
    digest = Digest.of(b"cached")
    claim = await store.claim(digest)
    assert claim.writer is not None and claim.partial is None
    await claim.writer.write(b"cached")
    claim.writer.announce_size(6)
    await claim.writer.commit(digest)
    await claim.writer.aclose()
    stored = await store.claim(digest)
    assert stored.writer is None and stored.partial is None
