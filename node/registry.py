"""The registry's operations, independent of HTTP: what a push, pull or delete does to storage.

Handlers in ``node/api`` parse requests and call these; everything here raises
:class:`OCIError` for the client to see and leaves storage consistent on every path
(a failed upload keeps nothing visible; a manifest is stored in one transaction).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass

import trio

from node.storage.base import (
    BlobNotFound,
    BlobReader,
    BlobStore,
    BlobWriter,
    DigestMismatch,
    ManifestRecord,
    MetadataStore,
    Referrer,
    UploadRecord,
)
from node.sync.events import EventRecorder
from portmesh.oci.digest import Digest, parse_digest
from portmesh.oci.errors import OCIError
from portmesh.oci.manifest import ParsedManifest, parse_manifest
from portmesh.oci.names import check_tag

__all__ = ["Registry", "StoredManifest", "check_reference"]


@dataclass(frozen=True, slots=True)
class StoredManifest:
    digest: Digest
    parsed: ParsedManifest


class Registry:
    """Push, pull and delete against a ``BlobStore`` and a ``MetadataStore``."""

    def __init__(
        self,
        blobs: BlobStore,
        meta: MetadataStore,
        *,
        delete_enabled: bool = True,
        chunk_min_length: int = 0,
        clock: Callable[[], float] = time.time,
        read_only: Callable[[str], bool] = lambda repo: False,
        events: EventRecorder | None = None,
    ) -> None:
        self.blobs = blobs
        #: records push, delete and pull events for the coordinator (None: no events)
        self.events = events
        #: repositories that refuse pushes and deletes (proxy projects)
        self.read_only = read_only
        self.meta = meta
        self.delete_enabled = delete_enabled
        self.chunk_min_length = chunk_min_length
        self.clock = clock
        self._pending_access: dict[Digest, float] = {}

    # ------------------------------------------------------------------ pulls

    async def blob_size(self, repo: str, digest: Digest, *, pulled: bool = False) -> int:
        """The size of a blob visible in ``repo``; ``pulled`` records an access."""
        size = await self.meta.blob_size(repo, digest)
        if size is None:
            raise OCIError("BLOB_UNKNOWN", detail={"digest": str(digest)})
        if pulled:
            self.note_pull(digest)
        return size

    def note_pull(self, digest: Digest) -> None:
        """Remember a pull; access times reach storage in batches (``flush_access_times``)."""
        self._pending_access[digest] = self.clock()

    async def open_blob(self, repo: str, digest: Digest) -> BlobReader:
        """Open a blob visible in ``repo``; the caller closes the reader."""
        await self.blob_size(repo, digest, pulled=True)
        try:
            return await self.blobs.open(digest)
        except BlobNotFound as exc:
            raise OCIError("BLOB_UNKNOWN", detail={"digest": str(digest)}) from exc

    async def get_manifest(self, repo: str, reference: str) -> ManifestRecord:
        ref = check_reference(reference)
        record = await self.meta.get_manifest(repo, str(ref))
        if record is None:
            raise OCIError("MANIFEST_UNKNOWN", detail={"name": repo, "reference": reference})
        self.note_pull(record.digest)
        if self.events is not None:
            self.events.pull(
                repo, reference, str(record.digest), record.media_type, len(record.body)
            )
        return record

    async def tags(self, repo: str, n: int | None, last: str | None) -> list[str]:
        tags = await self.meta.list_tags(repo, n, last)
        if tags is None:
            raise OCIError("NAME_UNKNOWN", detail={"name": repo})
        return tags

    async def catalog(self, n: int | None, last: str | None) -> list[str]:
        return await self.meta.list_repos(n, last)

    async def referrers(
        self, repo: str, subject: Digest, artifact_type: str | None
    ) -> list[Referrer]:
        found = await self.meta.referrers(repo, subject)
        if artifact_type is not None:
            found = [r for r in found if r.artifact_type == artifact_type]
        return found

    # ------------------------------------------------------------------ blob pushes

    async def start_upload(self, repo: str) -> UploadRecord:
        self._check_writable(repo)
        record = UploadRecord(uuid.uuid4().hex, repo, self.clock())
        await self.meta.create_upload(record)
        return record

    async def upload_offset(self, repo: str, upload_id: str) -> int:
        await self._upload(repo, upload_id)
        return await self.blobs.session_size(upload_id) or 0

    async def append(
        self,
        repo: str,
        upload_id: str,
        body: AsyncIterable[bytes],
        *,
        start: int | None,
        length: int | None,
        final: bool = False,
    ) -> int:
        """Append a chunk; ``start`` is the Content-Range start when one was given.

        Returns the session's new size. What was written stays in the session even when
        the client goes away mid-chunk, so it can ask for the offset and resume.
        """
        await self._upload(repo, upload_id)
        writer = await self.blobs.create(upload_id)
        try:
            if start is not None and start != writer.size:
                raise OCIError(
                    "RANGE_INVALID",
                    f"chunk starts at {start}, upload is at {writer.size}",
                    {"offset": writer.size},
                    headers={"Range": _range_header(writer.size)},
                )
            before = writer.size
            await _copy(body, writer)
            written = writer.size - before
            if length is not None and written != length:
                raise OCIError("SIZE_INVALID", f"got {written} bytes, Content-Length said {length}")
            if not final and self.chunk_min_length and 0 < written < self.chunk_min_length:
                raise OCIError(
                    "SIZE_INVALID",
                    f"chunks must be at least {self.chunk_min_length} bytes",
                    {"OCI-Chunk-Min-Length": self.chunk_min_length},
                    status=416,
                )
            return writer.size
        finally:
            with trio.CancelScope(shield=True):
                await writer.suspend()

    async def finish_upload(
        self,
        repo: str,
        upload_id: str,
        digest: Digest,
        body: AsyncIterable[bytes],
        *,
        start: int | None,
        length: int | None,
    ) -> None:
        """Append the final chunk (may be empty), verify ``digest`` and publish the blob."""
        await self.append(repo, upload_id, body, start=start, length=length, final=True)
        # The session ends here whatever the outcome. Forget it before its file is moved
        # into place, so that a crash in between leaves an orphaned file (swept later),
        # never a live session that holds fewer bytes than were acknowledged.
        await self.meta.delete_upload(upload_id)
        writer = await self.blobs.create(upload_id)
        try:
            size = await _commit(writer, digest)
        finally:
            await writer.aclose()
            with trio.CancelScope(shield=True):
                await self.blobs.discard(upload_id)
        await self.meta.link_blob(repo, digest, size)

    async def cancel_upload(self, repo: str, upload_id: str) -> None:
        await self._upload(repo, upload_id)
        await self.blobs.discard(upload_id)
        await self.meta.delete_upload(upload_id)

    async def put_blob(
        self, repo: str, digest: Digest, body: AsyncIterable[bytes], length: int | None
    ) -> None:
        """A monolithic upload (``POST ?digest=``)."""
        self._check_writable(repo)
        writer = await self.blobs.create()
        try:
            await _copy(body, writer)
            if length is not None and writer.size != length:
                raise OCIError(
                    "SIZE_INVALID", f"got {writer.size} bytes, Content-Length said {length}"
                )
            size = await _commit(writer, digest)
        finally:
            await writer.aclose()
        await self.meta.link_blob(repo, digest, size)

    async def mount(self, repo: str, source: str, digest: Digest) -> bool:
        """Link a blob visible in ``source`` into ``repo``; False when it is not there."""
        self._check_writable(repo)
        size = await self.meta.blob_size(source, digest)
        if size is None or await self.blobs.stat(digest) is None:
            return False
        await self.meta.link_blob(repo, digest, size)
        return True

    async def _upload(self, repo: str, upload_id: str) -> UploadRecord:
        record = await self.meta.get_upload(upload_id) if _is_upload_id(upload_id) else None
        if record is None or record.repo != repo:
            raise OCIError("BLOB_UPLOAD_UNKNOWN", detail={"upload": upload_id[:64]})
        return record

    # ------------------------------------------------------------------ manifest pushes

    async def put_manifest(
        self, repo: str, reference: str, body: bytes, content_type: str | None
    ) -> StoredManifest:
        self._check_writable(repo)
        ref = check_reference(reference)
        parsed = parse_manifest(body, content_type)
        if isinstance(ref, Digest):
            digest = Digest.of(body, ref.algorithm)
            if digest != ref:
                raise OCIError(
                    "DIGEST_INVALID",
                    f"manifest has digest {digest}, not {ref}",
                    {"digest": str(ref)},
                )
            tag = None
        else:
            digest, tag = Digest.of(body), ref
        blobs = [d.digest for d in parsed.blobs]
        children = [d.digest for d in parsed.manifests]
        missing = await self.meta.missing(repo, blobs, children)
        if missing:
            raise OCIError(
                "MANIFEST_BLOB_UNKNOWN",
                f"manifest references {missing[0]}, which is not in {repo}",
                {"digest": str(missing[0])},
            )
        record = ManifestRecord(
            digest=digest,
            media_type=parsed.media_type,
            body=body,
            subject=parsed.subject.digest if parsed.subject else None,
            artifact_type=parsed.artifact_type,
            annotations=parsed.annotations,
            created=self.clock(),
        )
        event = None
        if self.events is not None:
            event = self.events.push(repo, tag, str(digest), parsed.media_type, len(body))
        await self.meta.put_manifest(
            repo, record, tag=tag, blobs=blobs, children=children, outbox=event
        )
        return StoredManifest(digest, parsed)

    # ------------------------------------------------------------------ deletes

    async def delete_manifest(self, repo: str, reference: str) -> None:
        self._check_delete(repo)
        ref = check_reference(reference)
        event = None
        if isinstance(ref, Digest):
            if self.events is not None:
                event = self.events.delete(repo, reference, str(ref))
            found = await self.meta.delete_manifest(repo, ref, outbox=event)
        else:
            if self.events is not None:
                current = await self.meta.get_manifest(repo, ref)
                digest = str(current.digest) if current is not None else None
                event = self.events.delete(repo, ref, digest)
            found = await self.meta.delete_tag(repo, ref, outbox=event)
        if not found:
            raise OCIError("MANIFEST_UNKNOWN", detail={"name": repo, "reference": reference})

    async def delete_blob(self, repo: str, digest: Digest) -> None:
        self._check_delete(repo)
        if not await self.meta.unlink_blob(repo, digest):
            raise OCIError("BLOB_UNKNOWN", detail={"digest": str(digest)})
        if not await self.meta.blob_in_use(digest):
            await self.blobs.delete(digest)

    def _check_delete(self, repo: str) -> None:
        if not self.delete_enabled:
            raise OCIError("UNSUPPORTED", "deletes are disabled on this node")
        self._check_writable(repo)

    def _check_writable(self, repo: str) -> None:
        if self.read_only(repo):
            raise OCIError("DENIED", f"{repo} is in a proxy project, which is read-only")

    # ------------------------------------------------------------------ housekeeping

    async def flush_access_times(self) -> None:
        """Write the access times noted since the last flush, in one transaction."""
        pending, self._pending_access = self._pending_access, {}
        if pending:
            await self.meta.touch(pending, max(pending.values()))

    async def purge_uploads(self, older_than: float) -> int:
        """Drop upload sessions idle since before ``older_than``, and session files that
        no upload record owns any more (left by a crash); returns how many."""
        changed = await self.blobs.sessions()
        purged = 0
        for record in await self.meta.list_uploads():
            if changed.pop(record.id, record.created) < older_than:
                await self.meta.delete_upload(record.id)
                await self.blobs.discard(record.id)
                purged += 1
        for orphan, when in changed.items():
            if when < older_than:
                await self.blobs.discard(orphan)
                purged += 1
        return purged


def check_reference(reference: str) -> Digest | str:
    """A manifest reference: a digest (``alg:hex``) or a tag."""
    if ":" in reference:
        return parse_digest(reference)
    return check_tag(reference)


def _is_upload_id(value: str) -> bool:
    return len(value) == 32 and all(c in "0123456789abcdef" for c in value)


def _range_header(size: int) -> str:
    return f"0-{max(size - 1, 0)}"


async def _copy(body: AsyncIterable[bytes], writer: BlobWriter) -> None:
    async for chunk in body:
        if chunk:
            await writer.write(chunk)


async def _commit(writer: BlobWriter, digest: Digest) -> int:
    try:
        return await writer.commit(digest)
    except DigestMismatch as exc:
        raise OCIError(
            "DIGEST_INVALID",
            f"content has digest {exc.actual}, not {exc.expected}",
            {"digest": str(digest)},
        ) from exc
