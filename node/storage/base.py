"""The storage seams of a node: a content-addressed ``BlobStore`` and a ``MetadataStore``.

Each has an in-memory implementation (``memory.py``) and a persistent one (``fs.py`` for
blobs, ``lmdb_meta.py`` for metadata); ``tests/node/storage`` holds one contract suite
per protocol that every implementation passes.

Rules every implementation keeps:

- A blob is visible (``stat``/``open``) only after ``BlobWriter.commit`` verified its
  digest and made it durable; a failed or abandoned write leaves nothing visible.
- Metadata calls are each one short atomic transaction: a reader never sees half of a
  ``put_manifest`` or ``delete_manifest``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from portmesh.oci.digest import Digest

__all__ = [
    "BlobNotFound",
    "BlobReader",
    "BlobStore",
    "BlobWriter",
    "Claim",
    "DigestMismatch",
    "ManifestRecord",
    "MetadataStore",
    "PartialBlob",
    "Referrer",
    "StorageError",
    "TagCheck",
    "UploadRecord",
    "add_up",
]


class StorageError(Exception):
    """Base class of the storage layer's domain errors."""


class BlobNotFound(StorageError):
    pass


class DigestMismatch(StorageError):
    def __init__(self, expected: Digest, actual: Digest) -> None:
        super().__init__(f"content has digest {actual}, not {expected}")
        self.expected = expected
        self.actual = actual


# ---------------------------------------------------------------------------- blobs


class BlobReader(Protocol):
    """An open blob. It stays readable even if the blob is deleted while it is open."""

    @property
    def size(self) -> int: ...

    def chunks(self, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        """Yield the bytes ``[offset, offset+length)`` in chunks of about 1 MiB."""
        ...

    async def aclose(self) -> None:
        """Release the handle. Idempotent."""
        ...


class BlobWriter(Protocol):
    """Bytes on their way into the store.

    ``commit`` verifies the digest, makes the blob durable and visible, and closes the
    writer; on a mismatch it raises :class:`DigestMismatch` and discards the bytes.
    ``suspend`` keeps the partial bytes of a session writer for a later ``create(session)``.
    ``aclose`` discards whatever was neither committed nor suspended; it is idempotent.
    """

    @property
    def size(self) -> int:
        """Bytes written so far (including those of earlier, suspended writers)."""
        ...

    async def write(self, data: bytes) -> None: ...

    def read_back(self, offset: int, length: int) -> bytes:
        """Bytes already written (at most ``length`` from ``offset``), until ``aclose`` —
        also after ``commit``: a cache fill streams them to clients while it writes."""
        ...

    def announce_size(self, size: int) -> None:
        """Tell other processes following this fill (``BlobStore.claim``) the final size."""
        ...

    async def commit(self, expected: Digest, verified: Callable[[], None] | None = None) -> int:
        """Verify, persist and publish; returns the blob's size. ``verified()`` is called
        as soon as the content matches ``expected``, before it is made durable and visible
        (a fill lets its readers have the last byte then)."""
        ...

    async def suspend(self) -> None: ...

    async def aclose(self) -> None: ...


class PartialBlob(Protocol):
    """A blob that another process is filling (see ``BlobStore.claim``)."""

    def written(self) -> int:
        """Bytes the filling process has written so far."""
        ...

    def expected_size(self) -> int | None:
        """The size the filling process announced, once it has."""
        ...

    def finished(self) -> bool:
        """Whether the filling process let go: the blob is then stored, or the fill failed."""
        ...

    def read_back(self, offset: int, length: int) -> bytes: ...

    async def aclose(self) -> None: ...


@dataclass(slots=True)
class Claim:
    """The outcome of ``BlobStore.claim``: this process fills the blob (``writer``), or
    follows another process's fill (``partial``); neither when the blob is stored already."""

    writer: BlobWriter | None = None
    partial: PartialBlob | None = None


class BlobStore(Protocol):
    async def stat(self, digest: Digest) -> int | None:
        """The blob's size, or None when it is not in the store."""
        ...

    async def open(self, digest: Digest) -> BlobReader:
        """Open a blob for reading; raises :class:`BlobNotFound`."""
        ...

    async def create(self, session: str | None = None) -> BlobWriter:
        """A writer for new content.

        With ``session`` (an upload id) the partial bytes survive ``suspend`` and process
        restarts, and a later ``create(session)`` appends to them.
        """
        ...

    async def claim(self, digest: Digest) -> Claim:
        """Claim the one fill of ``digest`` among every process sharing this store.

        Exactly one process at a time gets a writer; the others get a :class:`PartialBlob`
        to follow until that writer commits or fails. A process that dies releases its
        claim, and the next claim starts over.
        """
        ...

    async def session_size(self, session: str) -> int | None:
        """Bytes held for an upload session, or None if it has none."""
        ...

    async def discard(self, session: str) -> None:
        """Drop an upload session's partial bytes. Idempotent."""
        ...

    async def sessions(self) -> dict[str, float]:
        """Every upload session holding bytes -> when its bytes last changed (epoch s)."""
        ...

    async def delete(self, digest: Digest) -> bool:
        """Remove a blob; True if it existed."""
        ...

    async def usage(self) -> int:
        """Bytes used by committed blobs."""
        ...


# ---------------------------------------------------------------------------- metadata


@dataclass(frozen=True, slots=True)
class ManifestRecord:
    digest: Digest
    media_type: str
    body: bytes
    subject: Digest | None = None
    artifact_type: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    created: float = 0.0


@dataclass(frozen=True, slots=True)
class Referrer:
    """One manifest whose ``subject`` is another; an entry of the referrers index."""

    digest: Digest
    media_type: str
    size: int
    artifact_type: str | None
    annotations: dict[str, str]


@dataclass(frozen=True, slots=True)
class UploadRecord:
    id: str
    repo: str
    created: float


@dataclass(frozen=True, slots=True)
class TagCheck:
    """When a pull-through tag was last validated against its upstream (wall clock, epoch
    seconds; 0.0 = never), when it was first pulled through, and until when a process's
    claim on its next revalidation holds (0.0 = none)."""

    checked: float
    first_pulled: float
    claimed_until: float = 0.0


class MetadataStore(Protocol):
    """Repositories, tags, manifests, referrers, blob links, upload sessions, access times.

    ``repo`` is a validated repository name; ``last``/``n`` paginate in lexical order.
    """

    # manifests and tags
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
        """Store ``record`` in ``repo``, point ``tag`` at it, remember the blobs and child
        manifests it references, and index it as a referrer of ``record.subject`` (size
        ``len(record.body)``), all in one transaction; ``outbox`` (an event) is appended
        to the outbox in that same transaction, and so is ``mark_tag_checked(repo, tag,
        checked)`` when ``checked`` is given (a tag just fetched from upstream)."""
        ...

    async def get_manifest(self, repo: str, reference: str) -> ManifestRecord | None:
        """By tag or by digest string."""
        ...

    async def missing(
        self, repo: str, blobs: Iterable[Digest], manifests: Iterable[Digest]
    ) -> list[Digest]:
        """Which of these blobs/manifests are not present in ``repo``."""
        ...

    async def delete_manifest(
        self, repo: str, digest: Digest, *, outbox: bytes | None = None
    ) -> bool:
        """Remove the manifest, every tag pointing at it and its referrer entry;
        ``outbox`` is appended in the same transaction when something was removed."""
        ...

    async def delete_tag(self, repo: str, tag: str, *, outbox: bytes | None = None) -> bool:
        """Remove the tag; ``outbox`` as for ``delete_manifest``."""
        ...

    async def list_tags(self, repo: str, n: int | None, last: str | None) -> list[str] | None:
        """Tags in lexical order after ``last``; None when the repository does not exist."""
        ...

    async def list_repos(self, n: int | None, last: str | None) -> list[str]: ...

    async def referrers(self, repo: str, subject: Digest) -> list[Referrer]: ...

    # blobs per repository
    async def link_blob(self, repo: str, digest: Digest, size: int) -> None: ...

    async def blob_size(self, repo: str, digest: Digest) -> int | None:
        """The size of a blob linked into ``repo``, or None if it is not visible there."""
        ...

    async def unlink_blob(self, repo: str, digest: Digest) -> bool: ...

    async def blob_in_use(self, digest: Digest) -> bool:
        """Whether any repository still links the blob (deciding whether to delete bytes)."""
        ...

    # upload sessions
    async def create_upload(self, record: UploadRecord) -> None: ...

    async def get_upload(self, upload_id: str) -> UploadRecord | None: ...

    async def delete_upload(self, upload_id: str) -> None: ...

    async def list_uploads(self) -> list[UploadRecord]: ...

    # access times (coarse; callers batch them)
    async def touch(self, digests: Iterable[Digest], when: float) -> None: ...

    async def last_access(self, digest: Digest) -> float | None: ...

    async def least_recent(self, limit: int) -> list[tuple[Digest, float]]:
        """Up to ``limit`` blobs with recorded access times, least recently used first."""
        ...

    async def forget_access(self, digest: Digest) -> None: ...

    # node settings: small opaque values (the policy snapshot, ...)
    async def get_setting(self, key: str) -> bytes | None: ...

    async def put_setting(self, key: str, value: bytes) -> None:
        """Store ``value`` under ``key`` durably, replacing any previous value at once."""
        ...

    async def add_counts(self, key: str, deltas: Sequence[int]) -> list[int]:
        """Add ``deltas`` to the counters kept under ``key`` (absent ones start at 0) in one
        step, and return the totals: every process of a node adds to the same counters.
        Empty or zero ``deltas`` read them. Kept apart from the settings."""
        ...

    async def blob_repos(self, digest: Digest) -> list[str]:
        """The repositories that link or reference the blob, in lexical order."""
        ...

    # pull-through tag freshness, shared by every process of the node
    async def tag_check(self, repo: str, tag: str) -> TagCheck | None:
        """The tag's freshness record; None before its first ``mark_tag_checked``/claim."""
        ...

    async def mark_tag_checked(self, repo: str, tag: str, when: float) -> None:
        """Record that the tag was fetched or revalidated at ``when``: sets ``checked``
        (never moving it back), sets ``first_pulled`` if it was unset, drops any claim."""
        ...

    async def claim_tag_check(
        self, repo: str, tag: str, now: float, ttl: float, lease: float
    ) -> bool:
        """Claim the tag's next revalidation, atomically among processes: True (and
        ``claimed_until = now + lease``) when the tag is not fresh (``checked + ttl <=
        now``) and no other claim holds (``claimed_until <= now``); False otherwise, and
        then nothing changes. A claim ends at ``mark_tag_checked`` or when it expires."""
        ...

    # the event outbox: payloads numbered by a sequence that never repeats, even after
    # every entry was acknowledged and across reopening
    async def outbox_append(self, payloads: Sequence[bytes]) -> list[int]:
        """Append ``payloads`` in one transaction; their sequence numbers, ascending."""
        ...

    async def outbox_peek(self, limit: int) -> list[tuple[int, bytes]]:
        """Up to ``limit`` of the oldest entries as ``(seq, payload)``, by seq."""
        ...

    async def outbox_ack(self, upto: int) -> int:
        """Drop every entry with ``seq <= upto``; how many were dropped."""
        ...

    async def aclose(self) -> None: ...


def add_up(totals: Sequence[int], deltas: Sequence[int]) -> list[int]:
    """``totals`` plus ``deltas``, element by element; the shorter one counts as zeros."""
    size = max(len(totals), len(deltas))
    padded = list(totals) + [0] * (size - len(totals))
    return [t + (deltas[i] if i < len(deltas) else 0) for i, t in enumerate(padded)]
