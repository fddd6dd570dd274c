"""Writing a file past the page cache (``O_DIRECT``), for blobs written in large pieces.

A cache fill or an upload writes a blob the node has never had, often hundreds of MiB,
while a client waits. Through the page cache every 4 KiB of it costs a newly allocated
page: on the project's 2-core VM a buffered write of 256 MiB took 0.27-0.65 CPU-s (the
host backs guest memory on first touch), against 0.015 CPU-s and a third of the time with
``O_DIRECT``, and it is CPU the client needs. A fill's readers take its latest bytes from
memory, so the page cache gains little from holding the whole file; a later reader of
the blob reads it from disk once.

``O_DIRECT`` wants block-aligned offsets, lengths and buffers, so :class:`DirectFile`
copies the bytes into an aligned staging buffer and writes whole blocks of it; the last
bytes, short of a block, wait in :attr:`DirectFile.tail` (readable meanwhile) until
:meth:`DirectFile.finish` writes them through the ordinary descriptor. A writer that
starts inside a block reads that block's first bytes back and writes them again with it.
A filesystem without ``O_DIRECT`` gets ordinary writes (:meth:`DirectFile.open` returns
None), and a direct write the device refuses is done through the ordinary descriptor.
"""

from __future__ import annotations

import errno
import mmap
import os
from pathlib import Path

__all__ = ["ALIGN", "DirectFile"]

#: offsets, lengths and buffer addresses of direct writes are multiples of this
ALIGN = 4096
#: the staging buffer (a multiple of ``ALIGN``)
STAGE = 1024 * 1024


def _pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    while data:
        n = os.pwrite(fd, data, offset)
        data, offset = data[n:], offset + n


class DirectFile:
    """The bytes of a file from offset ``start`` on, written with ``O_DIRECT``.

    :meth:`write` runs in one thread at a time; :attr:`tail` may be read from another:
    it is replaced whole, after the bytes before it are on disk.
    """

    def __init__(self, direct_fd: int, buffered_fd: int, start: int) -> None:
        self._fd = direct_fd
        self._buffered = buffered_fd
        self._stage = mmap.mmap(-1, STAGE)
        self._view = memoryview(self._stage)
        self._held = 0
        #: file offset of the staging buffer's first byte
        self._at = start
        #: (offset, bytes): what has been written but is not in the file yet
        self.tail: tuple[int, bytes] = (start, b"")
        self.fallen_back = False

    @classmethod
    def open(cls, path: Path, buffered_fd: int, start: int) -> DirectFile | None:
        """A direct writer of ``path`` from ``start``; None where the filesystem has no
        ``O_DIRECT``. The bytes of ``start``'s block before it are read back into the
        staging buffer, to be written again with the block."""
        if not hasattr(os, "O_DIRECT"):
            return None
        try:
            fd = os.open(path, os.O_WRONLY | os.O_DIRECT)
        except OSError:
            return None
        writer = cls(fd, buffered_fd, start - start % ALIGN)
        if start % ALIGN:
            try:
                head = os.pread(buffered_fd, start % ALIGN, writer._at)
            except OSError:
                writer.close()
                raise
            writer._view[: len(head)] = head
            writer._held = len(head)
            writer.tail = (writer._at, head)
        return writer

    @property
    def end(self) -> int:
        """The file offset after the last byte written."""
        return self._at + self._held

    def write(self, data: bytes | memoryview) -> None:
        src = memoryview(data)
        while src:
            n = min(len(src), STAGE - self._held)
            self._view[self._held : self._held + n] = src[:n]
            self._held += n
            src = src[n:]
            whole = self._held - self._held % ALIGN
            if whole and not self.fallen_back:
                try:
                    _pwrite_all(self._fd, self._view[:whole], self._at)
                except OSError as exc:
                    if exc.errno not in (errno.EINVAL, errno.EOPNOTSUPP):
                        raise
                    self.fallen_back = True  # other alignment, or no direct writes after all
            if self.fallen_back:
                whole = self._held
                self._write_buffered(self._view[:whole], self._at)
            rest = self._held - whole
            if rest:
                self._stage.move(0, whole, rest)
            self._at += whole
            self._held = rest
        self.tail = (self._at, bytes(self._view[: self._held]))

    def read(self, offset: int, length: int) -> bytes:
        """Bytes ``[offset, offset+length)`` of what was written, from the file or the tail."""
        at, tail = self.tail
        end = min(offset + length, at + len(tail))
        head = (
            os.pread(self._buffered, max(0, min(end, at) - offset), offset) if offset < at else b""
        )
        if end <= at:
            return head
        return head + tail[max(0, offset - at) : end - at]

    def finish(self) -> None:
        """Write the tail through the ordinary descriptor and close the direct one."""
        at, tail = self.tail
        self._write_buffered(memoryview(tail), at)
        self.tail = (at + len(tail), b"")
        self.close()

    def _write_buffered(self, data: memoryview, offset: int) -> None:
        """Write ``data`` at ``offset`` through the ordinary descriptor, from the file's
        end on: what is before it is there already (the same bytes), and a descriptor
        opened with ``O_APPEND`` writes nowhere else."""
        skip = max(0, os.fstat(self._buffered).st_size - offset)
        _pwrite_all(self._buffered, data[skip:], offset + skip)

    def close(self) -> None:
        """Close without writing the tail."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
            self._view.release()
            self._stage.close()
