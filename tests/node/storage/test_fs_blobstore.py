"""What the filesystem store adds to the contract: layout, temp files, hashing, restarts."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from node.storage import fs
from node.storage.base import DigestMismatch, StorageError
from node.storage.fs import FsBlobStore
from portmesh.oci.digest import Digest


def files(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


async def test_layout_after_commit(tmp_path: Path) -> None:
    store = FsBlobStore(tmp_path)
    data = b"layer bytes"
    digest = Digest.of(data)
    writer = await store.create()
    await writer.write(data)
    assert len(files(tmp_path / "tmp")) == 1
    await writer.commit(digest)
    hexa = digest.encoded
    assert files(tmp_path) == [f"blobs/sha256/{hexa[:2]}/{hexa}"]
    assert (tmp_path / "blobs" / "sha256" / hexa[:2] / hexa).read_bytes() == data


async def test_mismatch_and_aclose_delete_the_temp_file(tmp_path: Path) -> None:
    store = FsBlobStore(tmp_path)
    writer = await store.create()
    await writer.write(b"abc")
    with pytest.raises(DigestMismatch):
        await writer.commit(Digest.of(b"abd"))
    writer = await store.create()
    await writer.write(b"abc")
    await writer.aclose()
    assert files(tmp_path) == []


async def test_suspended_session_lives_in_uploads(tmp_path: Path) -> None:
    store = FsBlobStore(tmp_path)
    sid = uuid.uuid4().hex
    writer = await store.create(sid)
    await writer.write(b"partial")
    await writer.suspend()
    assert files(tmp_path) == [f"uploads/{sid}"]
    assert (tmp_path / "uploads" / sid).read_bytes() == b"partial"
    await store.discard(sid)
    assert files(tmp_path) == []


async def test_startup_removes_leftovers_of_dead_processes(tmp_path: Path) -> None:
    FsBlobStore(tmp_path)
    tmp = tmp_path / "tmp"
    (tmp / "garbage").write_bytes(b"x")
    (tmp / "0-dead").write_bytes(b"x")
    (tmp / "4194304999-dead").write_bytes(b"x")  # beyond any pid_max
    mine = tmp / f"{os.getpid()}-inflight"
    mine.write_bytes(b"x")
    FsBlobStore(tmp_path)
    assert files(tmp) == [mine.name]


async def test_usage_scans_existing_blobs_once(tmp_path: Path) -> None:
    first = FsBlobStore(tmp_path)
    for data in (b"a" * 100, b"b" * 50):
        writer = await first.create()
        await writer.write(data)
        await writer.commit(Digest.of(data, "sha512"))
    second = FsBlobStore(tmp_path)
    assert await second.usage() == 150
    writer = await second.create()
    await writer.write(b"c" * 25)
    await writer.commit(Digest.of(b"c" * 25))
    assert await second.usage() == 175
    await second.delete(Digest.of(b"a" * 100, "sha512"))
    assert await second.usage() == 75


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The files ``commit`` reads back to hash them."""
    files: list[Path] = []
    real = fs._hash_file

    def spy(path: Path, algorithm: str) -> str:
        files.append(path)
        return real(path, algorithm)

    monkeypatch.setattr(fs, "_hash_file", spy)
    return files


async def test_resumed_session_in_same_process_is_not_reread(
    tmp_path: Path, reads: list[Path]
) -> None:
    store = FsBlobStore(tmp_path)
    sid = uuid.uuid4().hex
    for part in (b"one ", b"two ", b"three"):
        writer = await store.create(sid)
        await writer.write(part)
        await writer.suspend()
    writer = await store.create(sid)
    await writer.commit(Digest.of(b"one two three"))
    assert reads == []

    # After a restart the in-process hasher is gone: the file is hashed again.
    sid = uuid.uuid4().hex
    writer = await store.create(sid)
    await writer.write(b"before ")
    await writer.suspend()
    writer = await FsBlobStore(tmp_path).create(sid)
    await writer.write(b"after")
    await writer.commit(Digest.of(b"before after"))
    assert reads == [tmp_path / "uploads" / sid]


async def test_large_writes_start_their_disk_write_without_waiting_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kicked: list[tuple[int, int]] = []
    real = fs._start_writeback

    def spy(fd: int, offset: int, length: int) -> None:
        kicked.append((offset, length))
        real(fd, offset, length)

    monkeypatch.setattr(fs, "_start_writeback", spy)
    # a filesystem without O_DIRECT: large writes go through the page cache
    monkeypatch.setattr(fs.DirectFile, "open", classmethod(lambda cls, *args: None))
    monkeypatch.setattr(fs, "WRITEBACK_EVERY", 2 * fs.THREAD_WRITE)
    piece, store, sid = os.urandom(fs.THREAD_WRITE), FsBlobStore(tmp_path), uuid.uuid4().hex
    writer = await store.create(sid)
    await writer.write(b"small, on the event loop ")
    await writer.suspend()
    start = len(b"small, on the event loop ")
    writer = await store.create(sid)
    for _ in range(5):
        await writer.write(piece)
    assert kicked == [(start, 2 * len(piece)), (start + 2 * len(piece), 2 * len(piece))]
    digest = Digest.of(b"small, on the event loop " + piece * 5)
    assert await writer.commit(digest) == start + 5 * len(piece)
    reader = await store.open(digest)
    assert b"".join([c async for c in reader.chunks()]) == b"small, on the event loop " + piece * 5
    await reader.aclose()


async def test_session_grown_elsewhere_is_rehashed(tmp_path: Path) -> None:
    store = FsBlobStore(tmp_path)
    sid = uuid.uuid4().hex
    writer = await store.create(sid)
    await writer.write(b"mine ")
    await writer.suspend()
    # Another worker process appended to the same session meanwhile.
    writer = await FsBlobStore(tmp_path).create(sid)
    await writer.write(b"theirs ")
    await writer.suspend()
    writer = await store.create(sid)
    await writer.write(b"end")
    assert await writer.commit(Digest.of(b"mine theirs end")) == 15


@pytest.mark.parametrize("session", ["../escape", "a/b", "", "x" * 200, "sp ace", "abc\n"])
async def test_session_ids_cannot_escape(tmp_path: Path, session: str) -> None:
    store = FsBlobStore(tmp_path)
    with pytest.raises(ValueError):
        await store.create(session)
    with pytest.raises(ValueError):
        await store.session_size(session)


async def test_digests_built_by_hand_are_checked(tmp_path: Path) -> None:
    store = FsBlobStore(tmp_path)
    with pytest.raises(ValueError):
        await store.stat(Digest("sha256", "../../etc/passwd"))
    with pytest.raises(ValueError):
        await store.open(Digest("md5", "d41d8cd98f00b204e9800998ecf8427e"))


async def test_closed_reader_refuses_to_read(tmp_path: Path) -> None:
    store = FsBlobStore(tmp_path)
    writer = await store.create()
    await writer.write(b"data")
    digest = Digest.of(b"data")
    await writer.commit(digest)
    reader = await store.open(digest)
    await reader.aclose()
    with pytest.raises(StorageError):
        async for _ in reader.chunks():
            pass


async def test_claim_is_exclusive_across_stores_sharing_a_root(tmp_path: Path) -> None:
    """Two stores on one root stand for two worker processes (flock is per open file)."""
    first, second = FsBlobStore(tmp_path), FsBlobStore(tmp_path)
    data = os.urandom(3 * 1024 * 1024)
    digest = Digest.of(data)
    leader = await first.claim(digest)
    follower = await second.claim(digest)
    assert leader.writer is not None and follower.partial is not None
    partial = follower.partial
    assert partial.expected_size() is None and not partial.finished()
    leader.writer.announce_size(len(data))
    await leader.writer.write(data[:1000])
    assert partial.expected_size() == len(data)
    assert partial.written() == 1000 and partial.read_back(0, 1000) == data[:1000]
    await leader.writer.write(data[1000:])
    await leader.writer.commit(digest)
    assert not partial.finished(), "the fill ends when its writer lets go"
    await leader.writer.aclose()
    assert partial.finished()
    assert partial.read_back(len(data) - 10, 10) == data[-10:], "still readable after commit"
    await partial.aclose()
    assert await second.stat(digest) == len(data)
    assert (await second.claim(digest)).writer is None


async def test_a_dead_fillers_claim_is_taken_over(tmp_path: Path) -> None:
    first, second = FsBlobStore(tmp_path), FsBlobStore(tmp_path)
    digest = Digest.of(b"whole blob")
    dead = await first.claim(digest)
    assert dead.writer is not None
    await dead.writer.write(b"whole")
    follower = await second.claim(digest)
    assert follower.partial is not None
    os.close(dead.writer._fd)  # type: ignore[attr-defined,arg-type]  # the process dies
    dead.writer._fd = None  # type: ignore[attr-defined]
    assert follower.partial.finished(), "the kernel released the dead process's lock"
    assert await second.stat(digest) is None
    await follower.partial.aclose()
    again = await second.claim(digest)
    assert again.writer is not None and again.writer.size == 0, "starts over, truncated"
    await again.writer.write(b"whole blob")
    await again.writer.commit(digest)
    await again.writer.aclose()
    assert await first.stat(digest) == 10
    # A store opened later finds no fill files left behind.
    FsBlobStore(tmp_path)
    assert not list((tmp_path / "tmp").glob("fill-*"))


async def test_a_session_committed_by_another_process_is_not_reread(
    tmp_path: Path, reads: list[Path]
) -> None:
    """The suspending process records the sha256 of the session's bytes; a commit in
    another process that adds nothing trusts it, one that adds bytes, or finds the
    record not matching the file, re-reads the file."""
    sid, data = uuid.uuid4().hex, os.urandom(fs.THREAD_WRITE + 5)
    writer = await FsBlobStore(tmp_path).create(sid)
    await writer.write(data)
    await writer.suspend()
    # the PUT lands on another worker process
    other = FsBlobStore(tmp_path)
    writer = await other.create(sid)
    with pytest.raises(DigestMismatch):
        await writer.commit(Digest.of(b"something else"))
    assert reads == [], "the recorded digest decided"
    await writer.aclose()

    sid = uuid.uuid4().hex
    writer = await FsBlobStore(tmp_path).create(sid)
    await writer.write(data)
    await writer.suspend()
    writer = await other.create(sid)
    assert await writer.commit(Digest.of(data)) == len(data)
    assert reads == []
    await writer.aclose()

    sid = uuid.uuid4().hex
    writer = await FsBlobStore(tmp_path).create(sid)
    await writer.write(data)
    await writer.suspend()
    (tmp_path / "uploads" / sid).write_bytes(data[:-1] + b"!")  # same size, other bytes
    os.setxattr(tmp_path / "uploads" / sid, "user.portmesh.sha256", b"1:" + b"0" * 64)
    writer = await other.create(sid)
    with pytest.raises(DigestMismatch):
        await writer.commit(Digest.of(data))
    assert reads == [tmp_path / "uploads" / sid], "a record of another size: re-read"
