"""In-memory ``BlobStore`` and ``MetadataStore``: fakes for unit tests.

They keep the same contracts as the persistent stores (the contract suites in
``tests/node/storage`` run against both) but nothing survives the process. Every method
does its work without awaiting in the middle, so each call is atomic for trio tasks.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field

import trio

from node.storage.base import (
    BlobNotFound,
    Claim,
    DigestMismatch,
    ManifestRecord,
    Referrer,
    StorageError,
    TagCheck,
    UploadRecord,
    add_up,
)
from portmesh.oci.digest import Digest

__all__ = ["CHUNK_SIZE", "MemoryBlobStore", "MemoryMetadataStore"]

CHUNK_SIZE = 1024 * 1024


# ---------------------------------------------------------------------------- blobs


def _window(size: int, offset: int, length: int | None) -> tuple[int, int]:
    """Clamp ``[offset, offset+length)`` to ``[0, size)``; returns (start, end)."""
    if offset < 0 or (length is not None and length < 0):
        raise ValueError("offset and length must not be negative")
    start = min(offset, size)
    end = size if length is None else min(size, start + length)
    return start, end


class MemoryBlobReader:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._closed = False

    @property
    def size(self) -> int:
        return len(self._data)

    async def chunks(self, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        if self._closed:
            raise StorageError("reader is closed")
        start, end = _window(len(self._data), offset, length)
        view = memoryview(self._data)
        for pos in range(start, end, CHUNK_SIZE):
            await trio.lowlevel.checkpoint()
            yield bytes(view[pos : min(end, pos + CHUNK_SIZE)])

    async def aclose(self) -> None:
        self._closed = True
        await trio.lowlevel.checkpoint()


class MemoryBlobWriter:
    def __init__(self, store: MemoryBlobStore, session: str | None, data: bytearray) -> None:
        self._store = store
        self._session = session
        self._data = data
        self._initial = len(data)
        self._done = False
        self._closed_for_reading = False

    @property
    def size(self) -> int:
        return len(self._data)

    def announce_size(self, size: int) -> None:
        pass  # one process: nobody else follows

    def read_back(self, offset: int, length: int) -> bytes:
        if self._closed_for_reading:
            raise StorageError("writer is closed")
        return bytes(self._data[offset : offset + max(0, length)])

    async def write(self, data: bytes) -> None:
        if self._done:
            raise StorageError("writer is closed")
        self._data += data
        if self._session is not None:
            self._store._changed[self._session] = time.time()
        await trio.lowlevel.checkpoint()

    async def commit(self, expected: Digest, verified: Callable[[], None] | None = None) -> int:
        if self._done:
            raise StorageError("writer is closed")
        await trio.lowlevel.checkpoint()
        self._done = True
        if self._session is not None:
            self._store._sessions.pop(self._session, None)
        actual = Digest.of(bytes(self._data), expected.algorithm)
        if actual != expected:
            raise DigestMismatch(expected, actual)
        if verified is not None:
            verified()
        self._store._blobs.setdefault(expected, bytes(self._data))
        return len(self._data)

    async def suspend(self) -> None:
        if self._done:
            raise StorageError("writer is closed")
        if self._session is None:
            raise StorageError("only a session writer can be suspended")
        self._done = True
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        self._closed_for_reading = True
        if not self._done:
            self._done = True
            if self._session is not None:
                # Keep what earlier writers suspended; drop only this writer's bytes.
                del self._data[self._initial :]
                sessions = self._store._sessions
                if not self._initial and sessions.get(self._session) is self._data:
                    del sessions[self._session]
        await trio.lowlevel.checkpoint()


class MemoryBlobStore:
    """A ``BlobStore`` holding blobs and upload sessions in dicts."""

    def __init__(self) -> None:
        self._blobs: dict[Digest, bytes] = {}
        self._sessions: dict[str, bytearray] = {}
        self._changed: dict[str, float] = {}

    async def stat(self, digest: Digest) -> int | None:
        await trio.lowlevel.checkpoint()
        data = self._blobs.get(digest)
        return None if data is None else len(data)

    async def open(self, digest: Digest) -> MemoryBlobReader:
        await trio.lowlevel.checkpoint()
        data = self._blobs.get(digest)
        if data is None:
            raise BlobNotFound(str(digest))
        return MemoryBlobReader(data)

    async def create(self, session: str | None = None) -> MemoryBlobWriter:
        await trio.lowlevel.checkpoint()
        if session is None:
            return MemoryBlobWriter(self, None, bytearray())
        # The writer appends to the session's bytes in place, so session_size sees them.
        return MemoryBlobWriter(self, session, self._sessions.setdefault(session, bytearray()))

    async def session_size(self, session: str) -> int | None:
        await trio.lowlevel.checkpoint()
        data = self._sessions.get(session)
        return None if data is None else len(data)

    async def discard(self, session: str) -> None:
        await trio.lowlevel.checkpoint()
        self._sessions.pop(session, None)

    async def claim(self, digest: Digest) -> Claim:
        """One process holds a memory store, so its fills need no claim: a plain writer."""
        if digest in self._blobs:
            await trio.lowlevel.checkpoint()
            return Claim()
        return Claim(writer=await self.create())

    async def sessions(self) -> dict[str, float]:
        await trio.lowlevel.checkpoint()
        return {sid: self._changed.get(sid, 0.0) for sid in self._sessions}

    async def delete(self, digest: Digest) -> bool:
        await trio.lowlevel.checkpoint()
        return self._blobs.pop(digest, None) is not None

    async def usage(self) -> int:
        await trio.lowlevel.checkpoint()
        return sum(len(data) for data in self._blobs.values())


# ---------------------------------------------------------------------------- metadata


@dataclass
class _Repo:
    manifests: dict[Digest, ManifestRecord] = field(default_factory=dict)
    #: manifest -> (blobs, children) it references
    refs: dict[Digest, tuple[tuple[Digest, ...], tuple[Digest, ...]]] = field(default_factory=dict)
    tags: dict[str, Digest] = field(default_factory=dict)
    links: dict[Digest, int] = field(default_factory=dict)
    #: subject -> referrer digest -> entry
    referrers: dict[Digest, dict[Digest, Referrer]] = field(default_factory=dict)

    def exists(self) -> bool:
        return bool(self.manifests or self.links)

    def referenced_blobs(self) -> set[Digest]:
        return {blob for blobs, _ in self.refs.values() for blob in blobs}


def _page(items: Iterable[str], n: int | None, last: str | None) -> list[str]:
    ordered = sorted(item for item in items if last is None or item > last)
    return ordered if n is None else ordered[: max(n, 0)]


def _digest_key(reference: str) -> Digest | None:
    algorithm, sep, encoded = reference.partition(":")
    return Digest(algorithm, encoded) if sep else None


class MemoryMetadataStore:
    """A ``MetadataStore`` in dicts. Blob sizes of blobs that manifests reference come
    from the repository's links at ``put_manifest`` time, as in the LMDB store."""

    def __init__(self) -> None:
        self._repos: dict[str, _Repo] = {}
        #: (repo, blob) -> size, remembered for blobs referenced by manifests
        self._ref_sizes: dict[tuple[str, Digest], int] = {}
        self._tag_checks: dict[tuple[str, str], TagCheck] = {}
        self._uploads: dict[str, UploadRecord] = {}
        self._atime: dict[Digest, float] = {}
        self._settings: dict[str, bytes] = {}
        self._counts: dict[str, list[int]] = {}
        self._outbox: dict[int, bytes] = {}
        self._outbox_next = 1

    def _repo(self, repo: str) -> _Repo:
        return self._repos.setdefault(repo, _Repo())

    def _prune(self, repo: str) -> None:
        state = self._repos.get(repo)
        if state is not None and not state.exists():
            del self._repos[repo]

    def _unindex(self, repo: str, state: _Repo, digest: Digest) -> None:
        """Forget a manifest's record, references and referrer entry (not its tags)."""
        record = state.manifests.pop(digest)
        state.refs.pop(digest, None)
        still = state.referenced_blobs()
        for key in [k for k in self._ref_sizes if k[0] == repo and k[1] not in still]:
            del self._ref_sizes[key]
        if record.subject is not None:
            entries = state.referrers.get(record.subject, {})
            entries.pop(digest, None)
            if not entries:
                state.referrers.pop(record.subject, None)

    async def put_manifest(
        self,
        repo: str,
        record: ManifestRecord,
        *,
        tag: str | None,
        blobs: Iterable[Digest],
        children: Iterable[Digest],
        outbox: bytes | None = None,
        checked: float | None = None,
    ) -> None:
        await trio.lowlevel.checkpoint()
        blob_list, child_list = tuple(blobs), tuple(children)
        if outbox is not None:
            self._outbox_put([outbox])
        state = self._repo(repo)
        if record.digest in state.manifests:
            self._unindex(repo, state, record.digest)
        state.manifests[record.digest] = record
        state.refs[record.digest] = (blob_list, child_list)
        for blob in blob_list:
            size = state.links.get(blob, self._ref_sizes.get((repo, blob)))
            if size is not None:
                self._ref_sizes[(repo, blob)] = size
        if tag is not None:
            state.tags[tag] = record.digest
            if checked is not None:
                self._mark_checked(repo, tag, checked)
        if record.subject is not None:
            state.referrers.setdefault(record.subject, {})[record.digest] = Referrer(
                record.digest,
                record.media_type,
                len(record.body),
                record.artifact_type,
                dict(record.annotations),
            )

    async def get_manifest(self, repo: str, reference: str) -> ManifestRecord | None:
        await trio.lowlevel.checkpoint()
        state = self._repos.get(repo)
        if state is None:
            return None
        digest = _digest_key(reference) or state.tags.get(reference)
        return None if digest is None else state.manifests.get(digest)

    async def missing(
        self, repo: str, blobs: Iterable[Digest], manifests: Iterable[Digest]
    ) -> list[Digest]:
        await trio.lowlevel.checkpoint()
        state = self._repos.get(repo) or _Repo()
        out: list[Digest] = []
        for blob in blobs:
            if blob not in state.links and (repo, blob) not in self._ref_sizes:
                out.append(blob)
        out.extend(m for m in manifests if m not in state.manifests)
        return list(dict.fromkeys(out))

    async def delete_manifest(
        self, repo: str, digest: Digest, *, outbox: bytes | None = None
    ) -> bool:
        await trio.lowlevel.checkpoint()
        state = self._repos.get(repo)
        if state is None or digest not in state.manifests:
            return False
        if outbox is not None:
            self._outbox_put([outbox])
        self._unindex(repo, state, digest)
        for tag in [t for t, d in state.tags.items() if d == digest]:
            del state.tags[tag]
        self._prune(repo)
        return True

    async def delete_tag(self, repo: str, tag: str, *, outbox: bytes | None = None) -> bool:
        await trio.lowlevel.checkpoint()
        state = self._repos.get(repo)
        found = state is not None and state.tags.pop(tag, None) is not None
        if found and outbox is not None:
            self._outbox_put([outbox])
        return found

    def _outbox_put(self, payloads: Sequence[bytes]) -> list[int]:
        seqs = []
        for payload in payloads:
            self._outbox[self._outbox_next] = bytes(payload)
            seqs.append(self._outbox_next)
            self._outbox_next += 1
        return seqs

    async def outbox_append(self, payloads: Sequence[bytes]) -> list[int]:
        await trio.lowlevel.checkpoint()
        return self._outbox_put(payloads)

    async def outbox_peek(self, limit: int) -> list[tuple[int, bytes]]:
        await trio.lowlevel.checkpoint()
        return sorted(self._outbox.items())[: max(limit, 0)]

    async def outbox_ack(self, upto: int) -> int:
        await trio.lowlevel.checkpoint()
        gone = [seq for seq in self._outbox if seq <= upto]
        for seq in gone:
            del self._outbox[seq]
        return len(gone)

    async def list_tags(self, repo: str, n: int | None, last: str | None) -> list[str] | None:
        await trio.lowlevel.checkpoint()
        state = self._repos.get(repo)
        return None if state is None else _page(state.tags, n, last)

    async def list_repos(self, n: int | None, last: str | None) -> list[str]:
        await trio.lowlevel.checkpoint()
        return _page(self._repos, n, last)

    async def referrers(self, repo: str, subject: Digest) -> list[Referrer]:
        await trio.lowlevel.checkpoint()
        state = self._repos.get(repo)
        entries = state.referrers.get(subject, {}) if state is not None else {}
        return [entries[d] for d in sorted(entries, key=str)]

    async def link_blob(self, repo: str, digest: Digest, size: int) -> None:
        await trio.lowlevel.checkpoint()
        self._repo(repo).links[digest] = size

    async def blob_size(self, repo: str, digest: Digest) -> int | None:
        await trio.lowlevel.checkpoint()
        state = self._repos.get(repo)
        if state is not None and digest in state.links:
            return state.links[digest]
        return self._ref_sizes.get((repo, digest))

    async def unlink_blob(self, repo: str, digest: Digest) -> bool:
        await trio.lowlevel.checkpoint()
        state = self._repos.get(repo)
        if state is None or state.links.pop(digest, None) is None:
            return False
        self._prune(repo)
        return True

    async def blob_in_use(self, digest: Digest) -> bool:
        await trio.lowlevel.checkpoint()
        return any(
            digest in s.links or digest in s.referenced_blobs() for s in self._repos.values()
        )

    async def create_upload(self, record: UploadRecord) -> None:
        await trio.lowlevel.checkpoint()
        self._uploads[record.id] = record

    async def get_upload(self, upload_id: str) -> UploadRecord | None:
        await trio.lowlevel.checkpoint()
        return self._uploads.get(upload_id)

    async def delete_upload(self, upload_id: str) -> None:
        await trio.lowlevel.checkpoint()
        self._uploads.pop(upload_id, None)

    async def list_uploads(self) -> list[UploadRecord]:
        await trio.lowlevel.checkpoint()
        return [self._uploads[k] for k in sorted(self._uploads)]

    async def touch(self, digests: Iterable[Digest], when: float) -> None:
        await trio.lowlevel.checkpoint()
        for digest in digests:
            self._atime[digest] = max(when, self._atime.get(digest, when))

    async def last_access(self, digest: Digest) -> float | None:
        await trio.lowlevel.checkpoint()
        return self._atime.get(digest)

    async def least_recent(self, limit: int) -> list[tuple[Digest, float]]:
        await trio.lowlevel.checkpoint()
        return sorted(self._atime.items(), key=lambda item: item[1])[: max(limit, 0)]

    async def forget_access(self, digest: Digest) -> None:
        await trio.lowlevel.checkpoint()
        self._atime.pop(digest, None)

    async def get_setting(self, key: str) -> bytes | None:
        await trio.lowlevel.checkpoint()
        return self._settings.get(key)

    async def put_setting(self, key: str, value: bytes) -> None:
        await trio.lowlevel.checkpoint()
        self._settings[key] = bytes(value)

    async def add_counts(self, key: str, deltas: Sequence[int]) -> list[int]:
        await trio.lowlevel.checkpoint()
        totals = add_up(self._counts.get(key, []), deltas)
        self._counts[key] = totals
        return list(totals)

    async def blob_repos(self, digest: Digest) -> list[str]:
        await trio.lowlevel.checkpoint()
        return sorted(
            name
            for name, repo in self._repos.items()
            if digest in repo.links or digest in repo.referenced_blobs()
        )

    async def tag_check(self, repo: str, tag: str) -> TagCheck | None:
        await trio.lowlevel.checkpoint()
        return self._tag_checks.get((repo, tag))

    async def mark_tag_checked(self, repo: str, tag: str, when: float) -> None:
        await trio.lowlevel.checkpoint()
        self._mark_checked(repo, tag, when)

    def _mark_checked(self, repo: str, tag: str, when: float) -> None:
        old = self._tag_checks.get((repo, tag))
        checked = when if old is None else max(old.checked, when)
        first = old.first_pulled if old is not None and old.first_pulled else when
        self._tag_checks[(repo, tag)] = TagCheck(checked, first)

    async def claim_tag_check(
        self, repo: str, tag: str, now: float, ttl: float, lease: float
    ) -> bool:
        await trio.lowlevel.checkpoint()
        old = self._tag_checks.get((repo, tag)) or TagCheck(0.0, 0.0)
        if old.checked + ttl > now or old.claimed_until > now:
            return False
        self._tag_checks[(repo, tag)] = TagCheck(old.checked, old.first_pulled, now + lease)
        return True

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()
