"""The filesystem ``BlobStore``: content-addressed files under one root directory.

Layout::

    root/
    |-- blobs/
    |   `-- <algorithm>/            sha256 | sha512 | blake3
    |       `-- <first two hex>/    fan-out, e.g. "ab"
    |           `-- <encoded>       a committed blob; never changed, only deleted
    |-- uploads/
    |   `-- <session>               the partial bytes of an upload session
    `-- tmp/
        |-- <pid>-<random>          a writer's bytes before commit
        `-- fill-<alg>-<hex>        a cache fill, flock()ed by the one process filling it

Writes go to a file in ``tmp/`` (or the session's file in ``uploads/``) with ``os.write``
while a sha256 hasher follows them: on the event loop, or for buffers of at least
``THREAD_WRITE`` bytes (a cache fill's) in a worker thread while another hashes them, so a
fill goes as fast as the slower of the two, not their sum. That thread also starts writing
them to disk every ``WRITEBACK_EVERY`` bytes, without waiting, so that the fsync of
``commit`` has little left and the writer never stalls on the disk. A writer that gets a large
write (a cache fill's, an upload's) writes past the page cache from then on instead
(``O_DIRECT``, see :mod:`node.storage.direct`).
``commit`` verifies the digest (re-reading the file in a worker thread when the expected
algorithm is not sha256 or the in-process hasher does not cover the whole session file,
e.g. after a restart, unless the process that suspended the session recorded the sha256
of exactly its bytes in an extended attribute), fsyncs the file, renames it into
``blobs/`` and fsyncs the directory; only then is the blob visible.

Readers open the file descriptor in :meth:`FsBlobStore.open`, so a concurrent delete does
not disturb them, and read 1 MiB chunks with ``os.pread`` on the event loop.

Several processes may share one root: temp files carry their owner's pid, and a new
store removes only those whose process is gone. A cache fill's file is named after its
digest and held with an exclusive ``flock`` by the process filling it (``claim``); other
processes follow the same file as it grows, learn its size from an extended attribute,
and know the fill ended when the lock is free. The kernel drops the lock of a process that
dies, so a crashed fill never blocks the next one.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import re
import secrets
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import trio

from node.storage.base import BlobNotFound, Claim, DigestMismatch, StorageError
from node.storage.direct import DirectFile
from portmesh.oci.digest import ALGORITHMS, Digest, Hasher, hasher

__all__ = ["CHUNK_SIZE", "FsBlobReader", "FsBlobStore", "FsBlobWriter"]

CHUNK_SIZE = 1024 * 1024
_SESSION = re.compile(r"^[A-Za-z0-9_-]{1,128}\Z")
_HEX = re.compile(r"^[a-f0-9]+\Z")
_SIZE_XATTR = "user.portmesh.size"
#: on a suspended session's file: "<size>:<sha256 hex>" of its bytes, for another process
_SHA256_XATTR = "user.portmesh.sha256"
#: writes this large are written and hashed in a worker thread
THREAD_WRITE = 256 * 1024
#: threads hashing the writes of worker threads, for all writers of a store
HASH_THREADS = 4
#: a writer in a worker thread starts the disk write of what it wrote after this many bytes
WRITEBACK_EVERY = 8 * 1024 * 1024


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_libc = ctypes.CDLL(None, use_errno=True)
_sync_file_range = getattr(_libc, "sync_file_range", None)
if _sync_file_range is not None:
    _sync_file_range.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
_SYNC_FILE_RANGE_WRITE = 2


def _start_writeback(fd: int, offset: int, length: int) -> None:
    """Start writing a range just written to disk, and return at once: Linux's
    ``sync_file_range(SYNC_FILE_RANGE_WRITE)``; the pages stay cached for readers (an
    ``fdatasync`` would wait for the disk instead: 4-5 ms per 8 MiB here). Elsewhere the
    final fsync does it all."""
    if _sync_file_range is not None:
        _sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


def _hash_file(path: Path, algorithm: str) -> str:
    h = hasher(algorithm)
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(CHUNK_SIZE):
            h.update(chunk)
    return h.hexdigest()


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True
    return True


def _locked_elsewhere(fd: int, kind: int = fcntl.LOCK_SH) -> bool:
    """Whether another open file description holds a conflicting flock on ``fd``'s file."""
    try:
        fcntl.flock(fd, kind | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    if kind == fcntl.LOCK_SH:
        fcntl.flock(fd, fcntl.LOCK_UN)
    return False


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


class FsBlobReader:
    """An open blob file. ``chunks`` may be called several times; ``aclose`` closes it."""

    def __init__(self, fd: int, size: int) -> None:
        self._fd: int | None = fd
        self._size = size

    @property
    def size(self) -> int:
        return self._size

    async def chunks(self, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        if offset < 0 or (length is not None and length < 0):
            raise ValueError("offset and length must not be negative")
        pos = min(offset, self._size)
        end = self._size if length is None else min(self._size, pos + length)
        while pos < end:
            await trio.lowlevel.checkpoint()
            if self._fd is None:
                raise StorageError("reader is closed")
            data = os.pread(self._fd, min(CHUNK_SIZE, end - pos), pos)
            if not data:
                raise StorageError(f"blob file is shorter than {self._size} bytes")
            pos += len(data)
            yield data

    def fileno(self) -> int:
        """The open file, for a server that sends it itself (``os.sendfile``)."""
        if self._fd is None:
            raise StorageError("reader is closed")
        return self._fd

    async def aclose(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
        await trio.lowlevel.checkpoint()


class FsPartialBlob:
    """A fill file another process is writing (see the module docstring)."""

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    def _open(self) -> int:
        if self._fd is None:
            raise StorageError("partial blob is closed")
        return self._fd

    def written(self) -> int:
        return os.fstat(self._open()).st_size

    def expected_size(self) -> int | None:
        try:
            return int(os.getxattr(self._open(), _SIZE_XATTR))
        except (OSError, ValueError):
            return None

    def finished(self) -> bool:
        return not _locked_elsewhere(self._open())

    def read_back(self, offset: int, length: int) -> bytes:
        return os.pread(self._open(), max(0, length), offset)

    async def aclose(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
        await trio.lowlevel.checkpoint()


class FsBlobWriter:
    """Bytes on their way into an :class:`FsBlobStore` (see ``BlobWriter``)."""

    def __init__(
        self,
        store: FsBlobStore,
        path: Path,
        fd: int,
        session: str | None,
        size: int,
        sha256: Hasher | None,
    ) -> None:
        self._store = store
        self._path = path
        self._fd: int | None = fd
        self._session = session
        self._initial = size
        self._size = size
        #: follows the bytes of [0, size), or None when it does not cover all of them
        self._sha256 = sha256
        self._committed = False
        self._unsynced = 0
        #: the first large write decides whether the bytes go past the page cache
        self._may_go_direct = True
        self._direct: DirectFile | None = None

    @property
    def size(self) -> int:
        return self._size

    def _open_fd(self) -> int:
        if self._fd is None or self._committed:
            raise StorageError("writer is closed")
        return self._fd

    def announce_size(self, size: int) -> None:
        with contextlib.suppress(OSError):  # a filesystem without user xattrs: no size
            os.setxattr(self._open_fd(), _SIZE_XATTR, str(size).encode())

    def read_back(self, offset: int, length: int) -> bytes:
        # The descriptor stays open after commit moved the file, until aclose.
        if self._fd is None:
            raise StorageError("writer is closed")
        length = max(0, min(length, self._size - offset))
        direct = self._direct
        if direct is not None:
            return direct.read(offset, length)
        return os.pread(self._fd, length, offset)

    def _close_fd(self) -> None:
        self._end_direct(write_tail=False)
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def _end_direct(self, write_tail: bool) -> None:
        """Stop writing past the page cache; the ordinary descriptor goes on from the end."""
        direct, self._direct = self._direct, None
        if direct is None:
            return
        if not write_tail:
            direct.close()
            return
        direct.finish()
        if self._fd is not None:
            os.lseek(self._fd, direct.end, os.SEEK_SET)

    async def write(self, data: bytes) -> None:
        fd = self._open_fd()
        await trio.lowlevel.checkpoint_if_cancelled()
        threaded = len(data) >= THREAD_WRITE or self._direct is not None
        if threaded:  # not abandoned on cancel: a write is never half done
            await trio.to_thread.run_sync(self._write_sync, fd, data, True)
        else:
            self._write_sync(fd, data, False)
        self._size += len(data)
        await trio.lowlevel.cancel_shielded_checkpoint()

    def _write_sync(self, fd: int, data: bytes, flush: bool) -> None:
        hashing = None
        if self._sha256 is not None:
            if flush:  # a worker thread's write: another hashes the bytes meanwhile
                hashing = self._store._hashing.submit(self._sha256.update, data)
            else:
                self._sha256.update(data)
        try:
            if flush and self._may_go_direct:
                self._may_go_direct = False
                self._direct = DirectFile.open(self._path, fd, self._size)
            direct = self._direct
            if direct is not None:
                direct.write(data)
                if direct.fallen_back:
                    self._end_direct(write_tail=True)
            else:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                self._unsynced += len(data)
            if direct is None and flush and self._unsynced >= WRITEBACK_EVERY:
                end = self._size + len(data)  # ``size`` counts these bytes once this returns
                _start_writeback(fd, end - self._unsynced, self._unsynced)
                self._unsynced = 0
        finally:
            if hashing is not None:
                hashing.result()

    async def commit(self, expected: Digest, verified: Callable[[], None] | None = None) -> int:
        fd = self._open_fd()
        try:
            self._end_direct(write_tail=True)
            actual = None
            if expected.algorithm == "sha256":
                sha256 = self._sha256
                actual = sha256.hexdigest() if sha256 is not None else self._recorded_sha256()
            if actual is None:
                hasher(expected.algorithm)  # raises UNSUPPORTED before any thread work
                actual = await trio.to_thread.run_sync(_hash_file, self._path, expected.algorithm)
            if actual != expected.encoded:
                raise DigestMismatch(expected, Digest(expected.algorithm, actual))
            if verified is not None:
                verified()
            await trio.to_thread.run_sync(os.fsync, fd)
            placed = await trio.to_thread.run_sync(
                self._store._place, self._path, self._store._blob_path(expected)
            )
        except BaseException:
            self._discard()
            raise
        self._committed = True
        if self._session is not None:
            self._store._hashers.pop(self._session, None)
        if placed:
            self._store._added(self._size)
        return self._size

    def _recorded_sha256(self) -> str | None:
        """The sha256 the process that suspended this session recorded on its file, if
        it covers exactly the bytes in it (this writer added none)."""
        if self._fd is None or self._session is None or self._size != self._initial:
            return None
        try:
            size, _, hexdigest = os.getxattr(self._fd, _SHA256_XATTR).decode().partition(":")
        except (OSError, UnicodeDecodeError):
            return None
        return hexdigest if size == str(self._size) and _HEX.match(hexdigest) else None

    async def suspend(self) -> None:
        fd = self._open_fd()
        if self._session is None:
            raise StorageError("only a session writer can be suspended")
        try:
            self._end_direct(write_tail=True)
            await trio.to_thread.run_sync(os.fsync, fd)
            if self._sha256 is not None:  # for a commit in another worker process
                record = f"{self._size}:{self._sha256.hexdigest()}".encode()
                with contextlib.suppress(OSError):  # a filesystem without user xattrs
                    os.setxattr(fd, _SHA256_XATTR, record)
        finally:
            self._close_fd()
        if self._sha256 is not None:
            self._store._hashers[self._session] = (self._size, self._sha256)

    async def aclose(self) -> None:
        if self._committed:
            self._close_fd()
        elif self._fd is not None:
            if self._session is None or not self._initial:
                self._discard()
            else:
                # Keep what earlier writers suspended; drop only this writer's bytes.
                self._close_fd()
                with contextlib.suppress(FileNotFoundError):  # discarded meanwhile
                    os.truncate(self._path, self._initial)
        await trio.lowlevel.checkpoint()

    def _discard(self) -> None:
        self._close_fd()
        _unlink(self._path)
        if self._session is not None:
            self._store._hashers.pop(self._session, None)


class FsBlobStore:
    """A ``BlobStore`` in a directory (layout in the module docstring).

    The constructor creates the directories and removes temp files left by processes
    that no longer run. :meth:`usage` scans ``blobs/`` once, in a worker thread, and then
    keeps a counter of this process's commits and deletes.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._blobs = self.root / "blobs"
        self._uploads = self.root / "uploads"
        self._tmp = self.root / "tmp"
        for directory in (self._blobs, self._uploads, self._tmp):
            directory.mkdir(parents=True, exist_ok=True)
        #: session -> (bytes covered, sha256 of them) for sessions suspended in this process
        self._hashers: dict[str, tuple[int, Hasher]] = {}
        #: hashes a worker thread's write while that thread writes it (both let go of
        #: the GIL), so a fill or upload is as fast as the slower of the two, not their sum
        self._hashing = ThreadPoolExecutor(HASH_THREADS, thread_name_prefix="portmesh-hash")
        self._usage: int | None = None
        self._remove_leftovers()

    def _remove_leftovers(self) -> None:
        with os.scandir(self._tmp) as entries:
            for entry in entries:
                if entry.name.startswith("fill-"):
                    self._remove_stale_fill(Path(entry.path))
                    continue
                owner = entry.name.split("-", 1)[0]
                if not owner.isdigit() or not _alive(int(owner)):
                    _unlink(Path(entry.path))

    def _remove_stale_fill(self, path: Path) -> None:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            if not _locked_elsewhere(fd, fcntl.LOCK_EX):
                _unlink(path)  # nobody fills it any more
        finally:
            os.close(fd)

    def _blob_path(self, digest: Digest) -> Path:
        length = ALGORITHMS.get(digest.algorithm)
        if length is None or len(digest.encoded) != length or not _HEX.match(digest.encoded):
            raise ValueError(f"not a valid digest: {digest}")
        return self._blobs / digest.algorithm / digest.encoded[:2] / digest.encoded

    def relative_path(self, digest: Digest) -> str:
        """Where a committed blob lives, relative to ``root/blobs`` (for a front proxy)."""
        return str(self._blob_path(digest).relative_to(self._blobs))

    def _session_path(self, session: str) -> Path:
        if not _SESSION.match(session):
            raise ValueError(f"invalid upload session id {session[:64]!r}")
        return self._uploads / session

    def _place(self, path: Path, dest: Path) -> bool:
        """Move a verified, fsynced file into place (worker thread); False if present."""
        if dest.exists():
            _unlink(path)
            return False
        parent = dest.parent
        created = not parent.exists()
        parent.mkdir(parents=True, exist_ok=True)
        os.rename(path, dest)
        _fsync_dir(parent)
        if created:
            _fsync_dir(parent.parent)
            _fsync_dir(parent.parent.parent)
        return True

    def _added(self, size: int) -> None:
        if self._usage is not None:
            self._usage += size

    def _scan(self) -> int:
        total = 0
        for dirpath, _dirs, files in os.walk(self._blobs):
            for name in files:
                with contextlib.suppress(FileNotFoundError):
                    total += os.stat(os.path.join(dirpath, name)).st_size
        return total

    async def stat(self, digest: Digest) -> int | None:
        path = self._blob_path(digest)
        await trio.lowlevel.checkpoint()
        try:
            return os.stat(path).st_size
        except FileNotFoundError:
            return None

    async def open(self, digest: Digest) -> FsBlobReader:
        path = self._blob_path(digest)
        await trio.lowlevel.checkpoint()
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError as exc:
            raise BlobNotFound(str(digest)) from exc
        return FsBlobReader(fd, os.fstat(fd).st_size)

    async def create(self, session: str | None = None) -> FsBlobWriter:
        await trio.lowlevel.checkpoint()
        if session is None:
            path = self._tmp / f"{os.getpid()}-{secrets.token_hex(8)}"
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            return FsBlobWriter(self, path, fd, None, 0, hasher("sha256"))
        path = self._session_path(session)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        size = os.fstat(fd).st_size
        covered, sha256 = self._hashers.pop(session, (0, hasher("sha256")))
        return FsBlobWriter(self, path, fd, session, size, sha256 if covered == size else None)

    async def claim(self, digest: Digest) -> Claim:
        blob = self._blob_path(digest)
        path = self._tmp / f"fill-{digest.algorithm}-{digest.encoded}"
        await trio.lowlevel.checkpoint()
        while True:
            if blob.exists():
                return Claim()
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            if _locked_elsewhere(fd, fcntl.LOCK_EX):
                return Claim(partial=FsPartialBlob(fd))
            # Ours now. The file may be one a finished fill just moved into place, or what
            # a dead process left: start over unless the blob made it meanwhile.
            try:
                moved = os.stat(path).st_ino != os.fstat(fd).st_ino
            except FileNotFoundError:
                moved = True
            if moved or blob.exists():
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            return Claim(writer=FsBlobWriter(self, path, fd, None, 0, hasher("sha256")))

    async def session_size(self, session: str) -> int | None:
        path = self._session_path(session)
        await trio.lowlevel.checkpoint()
        try:
            return os.stat(path).st_size
        except FileNotFoundError:
            return None

    async def discard(self, session: str) -> None:
        path = self._session_path(session)
        await trio.lowlevel.checkpoint()
        self._hashers.pop(session, None)
        _unlink(path)

    async def sessions(self) -> dict[str, float]:
        return await trio.to_thread.run_sync(self._list_sessions)

    def _list_sessions(self) -> dict[str, float]:
        found = {}
        for entry in os.scandir(self._uploads):
            with contextlib.suppress(FileNotFoundError):
                found[entry.name] = entry.stat().st_mtime
        return found

    async def delete(self, digest: Digest) -> bool:
        path = self._blob_path(digest)
        await trio.lowlevel.checkpoint()
        try:
            size = os.stat(path).st_size
            os.unlink(path)
        except FileNotFoundError:
            return False
        if self._usage is not None:
            self._usage -= size
        return True

    async def usage(self) -> int:
        if self._usage is None:
            self._usage = await trio.to_thread.run_sync(self._scan)
        else:
            await trio.lowlevel.checkpoint()
        return self._usage
