"""Writing past the page cache (``node.storage.direct``) and the fill writer that uses it."""

from __future__ import annotations

import errno
import os
import random
from pathlib import Path

import pytest

from node.storage import direct as direct_module
from node.storage.direct import ALIGN, STAGE, DirectFile
from node.storage.fs import FsBlobStore
from portmesh.oci.digest import Digest


def _open(path: Path) -> tuple[int, DirectFile]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    writer = DirectFile.open(path, fd, 0)
    if writer is None:
        os.close(fd)
        pytest.skip("no O_DIRECT on this filesystem")
    return fd, writer


def test_bytes_of_any_size_land_in_order_and_stay_readable(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    fd, writer = _open(path)
    rng = random.Random(7)
    data = b""
    for size in (1, ALIGN - 1, ALIGN + 3, STAGE + 5, 3 * STAGE // 2, 17, 2 * STAGE):
        piece = rng.randbytes(size)
        writer.write(piece)
        data += piece
        at, tail = writer.tail
        assert at % ALIGN == 0 and len(tail) < ALIGN and at + len(tail) == len(data)
        assert os.fstat(fd).st_size == at, "whole blocks only are in the file"
        for offset in (0, max(0, at - 10), at, len(data) - 1):
            assert writer.read(offset, 4096) == data[offset : offset + 4096], offset
    writer.finish()
    assert writer.tail == (len(data), b"")
    os.close(fd)
    assert path.read_bytes() == data


def test_a_refused_direct_write_is_done_through_the_ordinary_descriptor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "blob"
    fd, writer = _open(path)
    real = os.pwrite

    def refusing(out: int, data: memoryview, offset: int) -> int:
        if out != fd:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(out, data, offset)

    monkeypatch.setattr(direct_module.os, "pwrite", refusing)
    data = os.urandom(STAGE + 123)
    writer.write(data)
    assert writer.fallen_back and writer.tail == (len(data), b"")
    writer.finish()
    os.close(fd)
    assert path.read_bytes() == data


async def test_a_fill_writes_past_the_page_cache_and_reads_back_its_tail(tmp_path: Path) -> None:
    store = FsBlobStore(tmp_path)
    pieces = [os.urandom(700_001) for _ in range(4)] + [b"last"]
    data = b"".join(pieces)
    digest = Digest.of(data)
    claim = await store.claim(digest)
    writer = claim.writer
    assert writer is not None
    done = 0
    for piece in pieces:
        await writer.write(piece)
        done += len(piece)
        assert writer._direct is not None  # type: ignore[attr-defined]
        assert writer.read_back(0, done) == data[:done]
        assert writer.read_back(done - 5, 100) == data[done - 5 : done]
    assert await writer.commit(digest) == len(data)
    assert writer.read_back(len(data) - 4, 4) == b"last", "readable until closed"
    await writer.aclose()
    reader = await store.open(digest)
    assert b"".join([c async for c in reader.chunks()]) == data
    await reader.aclose()


async def test_a_fill_that_fails_leaves_nothing(tmp_path: Path) -> None:
    store = FsBlobStore(tmp_path)
    data = os.urandom(STAGE + 1)
    claim = await store.claim(Digest.of(b"something else"))
    assert claim.writer is not None
    await claim.writer.write(data)
    with pytest.raises(Exception, match="digest"):
        await claim.writer.commit(Digest.of(b"something else"))
    await claim.writer.aclose()
    assert not list((tmp_path / "tmp").iterdir())
    assert await store.stat(Digest.of(data)) is None


async def test_an_upload_session_goes_direct_and_resumes_after_a_suspend(tmp_path: Path) -> None:
    """A session's writers go direct, the second one from inside a block; the tail is in
    the file once suspended."""
    store, sid = FsBlobStore(tmp_path), "session-1"
    first, second = os.urandom(STAGE + 1000), os.urandom(STAGE + 7)
    writer = await store.create(sid)
    await writer.write(first)
    assert writer._direct is not None  # type: ignore[attr-defined]
    await writer.suspend()
    assert (tmp_path / "uploads" / sid).read_bytes() == first, "the tail was written"
    writer = await store.create(sid)
    assert writer.size == len(first)
    await writer.write(second)
    assert writer._direct is not None  # type: ignore[attr-defined]
    assert writer.read_back(len(first) - 3, 10) == (first + second)[len(first) - 3 :][:10]
    digest = Digest.of(first + second)
    assert await writer.commit(digest) == len(first) + len(second)
    await writer.aclose()
    reader = await store.open(digest)
    assert b"".join([c async for c in reader.chunks()]) == first + second
    await reader.aclose()


@pytest.mark.parametrize("more", [10, 3 * ALIGN + 5], ids=["within-the-block", "past-it"])
def test_a_writer_starting_inside_a_block_of_an_append_only_file(tmp_path: Path, more: int) -> None:
    """The block's first bytes are written again with it, never twice in the file, also
    through an ``O_APPEND`` descriptor (which ignores offsets)."""
    path = tmp_path / "session"
    before = os.urandom(ALIGN + 100)
    path.write_bytes(before)
    fd = os.open(path, os.O_RDWR | os.O_APPEND)
    writer = DirectFile.open(path, fd, len(before))
    if writer is None:
        os.close(fd)
        pytest.skip("no O_DIRECT on this filesystem")
    data = os.urandom(more)
    writer.write(data)
    assert writer.read(ALIGN - 2, 200) == (before + data)[ALIGN - 2 : ALIGN + 198]
    writer.finish()
    os.close(fd)
    assert path.read_bytes() == before + data
