"""The LMDB ``MetadataStore``: one environment, named sub-databases, one transaction a call.

Several worker processes of a node share the environment; each opens it once (with the
same ``map_size``) through :meth:`LmdbMetadataStore.open`, which also clears reader slots
that killed processes left behind (``reader_check``).

Keys join their parts with ``\\0`` (names, tags and digests never contain it). A digest
inside a key is ``D`` = one algorithm byte (1 blake3, 2 sha256, 3 sha512) + the raw hash
bytes, which keeps every key below LMDB's 511-byte limit. Values are msgpack except where
noted::

    manifests   repo \\0 D              -> [media_type, body, subject, artifact_type,
                                           annotations, created]   (body inline, <= 4 MiB)
    mrefs       repo \\0 D              -> [[blob, ...], [child, ...]]  (digest strings)
    tags        repo \\0 tag            -> D  (raw bytes: the hot path decodes nothing)
    tagrev      repo \\0 D \\0 tag       -> b""   (the tags pointing at a manifest)
    referrers   repo \\0 D(subject) D(referrer) -> [media_type, size, artifact_type,
                                                    annotations]
    links       repo \\0 D              -> size    (blobs pushed or mounted into repo)
    blobrefs    repo \\0 D              -> [count, size | None]  (blobs manifests reference)
    blobrepos   D \\0 repo              -> b""   (present while a link or blobref exists)
    repos       repo                   -> [manifest count, link count]  (either > 0)
    uploads     id                     -> [repo, created]
    atime       D                      -> last access (float)
    settings    key                    -> opaque bytes (the policy snapshot, ...)
    tagcheck    repo \\0 tag            -> [checked, first pulled, claimed until]  (epoch s)
    outbox      seq (8 bytes, big-endian) -> event payload (opaque bytes)
    settings    "outbox.next"          -> the next outbox seq (8 bytes, big-endian)
    settings    "\\0counts." key        -> [counter, ...]  (``add_counts``)

Lexical pagination (tags, catalog) is a cursor range scan from ``prefix + last + \\0``.
Reads run on the event loop (they never wait for I/O beyond the page cache); writes run
in a worker thread because their commit fsyncs. No call awaits inside a transaction.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TypeAlias, TypeVar

import lmdb
import msgpack
import trio

from node.storage.base import ManifestRecord, Referrer, TagCheck, UploadRecord, add_up
from portmesh.oci.digest import ALGORITHMS, Digest

__all__ = ["LmdbMetadataStore"]

T = TypeVar("T")
Txn: TypeAlias = "lmdb.Transaction[bytes]"

# In the order of the algorithm names, so keys sort like digest strings.
_ALG_BYTE = {"blake3": 1, "sha256": 2, "sha512": 3}
_ALG_NAME = {v: k for k, v in _ALG_BYTE.items()}
_HEX = re.compile(r"^[a-f0-9]+\Z")
_DBS = (
    "manifests", "mrefs", "tags", "tagrev", "referrers", "links", "blobrefs", "blobrepos",
    "repos", "uploads", "atime", "settings", "tagcheck", "outbox",
)  # fmt: skip
_OUTBOX_NEXT = b"outbox.next"
_COUNTS = b"\0counts."  # no setting key starts with NUL

_pack = msgpack.packb
_unpack = msgpack.unpackb


def _d(digest: Digest) -> bytes:
    return bytes((_ALG_BYTE[digest.algorithm],)) + bytes.fromhex(digest.encoded)


def _d_str(text: str) -> bytes | None:
    """The key form of a digest string, or None when it is not one this store holds."""
    algorithm, _, encoded = text.partition(":")
    if ALGORITHMS.get(algorithm) != len(encoded) or not _HEX.match(encoded):
        return None
    return bytes((_ALG_BYTE[algorithm],)) + bytes.fromhex(encoded)


def _digest(key: bytes) -> Digest:
    return Digest(_ALG_NAME[key[0]], key[1:].hex())


def _parse(text: str) -> Digest:
    algorithm, _, encoded = text.partition(":")
    return Digest(algorithm, encoded)


def _k(repo: str, *parts: bytes) -> bytes:
    return b"\0".join((repo.encode(), *parts))


def _scan(cursor: lmdb.Cursor[bytes], prefix: bytes, start: bytes, n: int | None) -> list[bytes]:
    """Keys with ``prefix`` from ``start`` on, at most ``n``; the prefix removed."""
    out: list[bytes] = []
    if (n is not None and n <= 0) or not cursor.set_range(start):
        return out
    for key in cursor.iternext(values=False):
        if not key.startswith(prefix):
            break
        out.append(key[len(prefix) :])
        if n is not None and len(out) >= n:
            break
    return out


class LmdbMetadataStore:
    """A ``MetadataStore`` in an LMDB environment (layout in the module docstring)."""

    def __init__(self, env: lmdb.Environment) -> None:
        self._env = env
        self._db = {name: env.open_db(name.encode()) for name in _DBS}
        self._closed = False

    @classmethod
    def open(cls, path: Path, map_size: int) -> LmdbMetadataStore:
        """Open (creating) the environment in directory ``path``; the caller ``aclose``s."""
        Path(path).mkdir(parents=True, exist_ok=True)
        env = lmdb.open(str(path), map_size=map_size, max_dbs=len(_DBS) + 4, subdir=True)
        env.reader_check()
        return cls(env)

    # ------------------------------------------------------------------ transactions

    def _read(self, fn: Callable[[Txn], T]) -> T:
        while True:
            try:
                with self._env.begin() as txn:
                    return fn(txn)
            except lmdb.MapResizedError:
                # Another process grew the map: adopt its size and retry.
                self._env.set_mapsize(0)

    def _write_sync(self, fn: Callable[[Txn], T]) -> T:
        while True:
            try:
                with self._env.begin(write=True) as txn:
                    return fn(txn)
            except lmdb.MapResizedError:
                self._env.set_mapsize(0)

    async def _write(self, fn: Callable[[Txn], T]) -> T:
        return await trio.to_thread.run_sync(self._write_sync, fn)

    # ------------------------------------------------------------------ helpers (in a txn)

    def _count(self, txn: Txn, repo: str, manifests: int, links: int) -> None:
        key = repo.encode()
        raw = txn.get(key, db=self._db["repos"])
        m, n = _unpack(raw) if raw is not None else (0, 0)
        m, n = m + manifests, n + links
        if m > 0 or n > 0:
            txn.put(key, _pack([m, n]), db=self._db["repos"])
        else:
            txn.delete(key, db=self._db["repos"])

    def _ref(self, txn: Txn, repo: str, blob: bytes) -> None:
        key = _k(repo, blob)
        raw = txn.get(key, db=self._db["blobrefs"])
        count, size = _unpack(raw) if raw is not None else (0, None)
        if size is None:
            link = txn.get(key, db=self._db["links"])
            size = _unpack(link) if link is not None else None
        txn.put(key, _pack([count + 1, size]), db=self._db["blobrefs"])
        txn.put(blob + b"\0" + repo.encode(), b"", db=self._db["blobrepos"])

    def _unref(self, txn: Txn, repo: str, blob: bytes) -> None:
        key = _k(repo, blob)
        raw = txn.get(key, db=self._db["blobrefs"])
        if raw is None:
            return
        count, size = _unpack(raw)
        if count > 1:
            txn.put(key, _pack([count - 1, size]), db=self._db["blobrefs"])
            return
        txn.delete(key, db=self._db["blobrefs"])
        if txn.get(key, db=self._db["links"]) is None:
            txn.delete(blob + b"\0" + repo.encode(), db=self._db["blobrepos"])

    def _unindex(self, txn: Txn, repo: str, dkey: bytes, raw: bytes) -> None:
        """Forget a manifest's record, references and referrer entry (not its tags)."""
        key = _k(repo, dkey)
        subject = _unpack(raw)[2]
        txn.delete(key, db=self._db["manifests"])
        refs = txn.pop(key, db=self._db["mrefs"])
        if refs is not None:
            for blob in _unpack(refs)[0]:
                self._unref(txn, repo, _d(_parse(blob)))
        if subject is not None:
            txn.delete(_k(repo, _d(_parse(subject))) + dkey, db=self._db["referrers"])
        self._count(txn, repo, -1, 0)

    # ------------------------------------------------------------------ manifests and tags

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
        blob_list = list(dict.fromkeys(blobs))
        child_list = list(dict.fromkeys(children))
        dkey = _d(record.digest)
        key = _k(repo, dkey)
        value = _pack(
            [
                record.media_type,
                record.body,
                None if record.subject is None else str(record.subject),
                record.artifact_type,
                record.annotations,
                record.created,
            ]
        )

        def txn_fn(txn: Txn) -> None:
            old = txn.get(key, db=self._db["manifests"])
            if old is not None:
                self._unindex(txn, repo, dkey, old)
            txn.put(key, value, db=self._db["manifests"])
            txn.put(
                key,
                _pack([[str(b) for b in blob_list], [str(c) for c in child_list]]),
                db=self._db["mrefs"],
            )
            for blob in blob_list:
                self._ref(txn, repo, _d(blob))
            if tag is not None:
                tag_key = _k(repo, tag.encode())
                previous = txn.get(tag_key, db=self._db["tags"])
                if previous is not None:
                    txn.delete(_k(repo, previous, tag.encode()), db=self._db["tagrev"])
                txn.put(tag_key, dkey, db=self._db["tags"])
                txn.put(_k(repo, dkey, tag.encode()), b"", db=self._db["tagrev"])
                if checked is not None:
                    self._mark_checked(txn, tag_key, checked)
            if record.subject is not None:
                entry = [
                    record.media_type,
                    len(record.body),
                    record.artifact_type,
                    record.annotations,
                ]
                txn.put(_k(repo, _d(record.subject)) + dkey, _pack(entry), db=self._db["referrers"])
            self._count(txn, repo, 1, 0)
            if outbox is not None:
                self._outbox_put(txn, [outbox])

        await self._write(txn_fn)

    async def get_manifest(self, repo: str, reference: str) -> ManifestRecord | None:
        """The hot path: one read transaction, two gets, one msgpack decode."""
        await trio.lowlevel.checkpoint()
        tags, manifests = self._db["tags"], self._db["manifests"]
        prefix = repo.encode() + b"\0"

        def txn_fn(txn: Txn) -> tuple[bytes, bytes] | None:
            if ":" in reference:
                dkey = _d_str(reference)
            else:
                dkey = txn.get(prefix + reference.encode(), db=tags)
            if dkey is None:
                return None
            raw = txn.get(prefix + dkey, db=manifests)
            return None if raw is None else (dkey, raw)

        found = self._read(txn_fn)
        if found is None:
            return None
        media_type, body, subject, artifact_type, annotations, created = _unpack(found[1])
        return ManifestRecord(
            digest=_digest(found[0]),
            media_type=media_type,
            body=body,
            subject=None if subject is None else _parse(subject),
            artifact_type=artifact_type,
            annotations=annotations,
            created=created,
        )

    async def missing(
        self, repo: str, blobs: Iterable[Digest], manifests: Iterable[Digest]
    ) -> list[Digest]:
        await trio.lowlevel.checkpoint()
        wanted_blobs = list(dict.fromkeys(blobs))
        wanted_manifests = list(dict.fromkeys(manifests))

        def txn_fn(txn: Txn) -> list[Digest]:
            out = [b for b in wanted_blobs if self._blob_size(txn, repo, b) is None]
            out += [
                m
                for m in wanted_manifests
                if txn.get(_k(repo, _d(m)), db=self._db["manifests"]) is None
            ]
            return list(dict.fromkeys(out))

        return self._read(txn_fn)

    async def delete_manifest(
        self, repo: str, digest: Digest, *, outbox: bytes | None = None
    ) -> bool:
        dkey = _d(digest)
        key = _k(repo, dkey)

        def txn_fn(txn: Txn) -> bool:
            raw = txn.get(key, db=self._db["manifests"])
            if raw is None:
                return False
            self._unindex(txn, repo, dkey, raw)
            prefix = key + b"\0"
            with txn.cursor(db=self._db["tagrev"]) as cursor:
                tags = _scan(cursor, prefix, prefix, None)
            for tag in tags:
                txn.delete(_k(repo, tag), db=self._db["tags"])
                txn.delete(prefix + tag, db=self._db["tagrev"])
            if outbox is not None:
                self._outbox_put(txn, [outbox])
            return True

        return await self._write(txn_fn)

    async def delete_tag(self, repo: str, tag: str, *, outbox: bytes | None = None) -> bool:
        tag_key = _k(repo, tag.encode())

        def txn_fn(txn: Txn) -> bool:
            dkey = txn.pop(tag_key, db=self._db["tags"])
            if dkey is None:
                return False
            txn.delete(_k(repo, dkey, tag.encode()), db=self._db["tagrev"])
            if outbox is not None:
                self._outbox_put(txn, [outbox])
            return True

        return await self._write(txn_fn)

    async def list_tags(self, repo: str, n: int | None, last: str | None) -> list[str] | None:
        await trio.lowlevel.checkpoint()
        prefix = repo.encode() + b"\0"
        start = prefix if last is None else prefix + last.encode() + b"\0"

        def txn_fn(txn: Txn) -> list[str] | None:
            if txn.get(repo.encode(), db=self._db["repos"]) is None:
                return None
            with txn.cursor(db=self._db["tags"]) as cursor:
                return [t.decode() for t in _scan(cursor, prefix, start, n)]

        return self._read(txn_fn)

    async def list_repos(self, n: int | None, last: str | None) -> list[str]:
        await trio.lowlevel.checkpoint()
        start = b"" if last is None else last.encode() + b"\0"

        def txn_fn(txn: Txn) -> list[str]:
            with txn.cursor(db=self._db["repos"]) as cursor:
                return [r.decode() for r in _scan(cursor, b"", start, n)]

        return self._read(txn_fn)

    async def referrers(self, repo: str, subject: Digest) -> list[Referrer]:
        await trio.lowlevel.checkpoint()
        prefix = _k(repo, _d(subject))

        def txn_fn(txn: Txn) -> list[tuple[bytes, bytes]]:
            out: list[tuple[bytes, bytes]] = []
            with txn.cursor(db=self._db["referrers"]) as cursor:
                if cursor.set_range(prefix):
                    for key, value in cursor:
                        if not key.startswith(prefix):
                            break
                        out.append((key[len(prefix) :], value))
            return out

        found = []
        for dkey, raw in self._read(txn_fn):
            media_type, size, artifact_type, annotations = _unpack(raw)
            found.append(Referrer(_digest(dkey), media_type, size, artifact_type, annotations))
        return found

    # ------------------------------------------------------------------ blobs per repository

    def _blob_size(self, txn: Txn, repo: str, digest: Digest) -> int | None:
        key = _k(repo, _d(digest))
        raw = txn.get(key, db=self._db["links"])
        if raw is not None:
            size: int = _unpack(raw)
            return size
        raw = txn.get(key, db=self._db["blobrefs"])
        return None if raw is None else _unpack(raw)[1]

    async def link_blob(self, repo: str, digest: Digest, size: int) -> None:
        dkey = _d(digest)
        key = _k(repo, dkey)

        def txn_fn(txn: Txn) -> None:
            existed = txn.get(key, db=self._db["links"]) is not None
            txn.put(key, _pack(size), db=self._db["links"])
            txn.put(dkey + b"\0" + repo.encode(), b"", db=self._db["blobrepos"])
            ref = txn.get(key, db=self._db["blobrefs"])
            if ref is not None:
                count, _ = _unpack(ref)
                txn.put(key, _pack([count, size]), db=self._db["blobrefs"])
            if not existed:
                self._count(txn, repo, 0, 1)

        await self._write(txn_fn)

    async def blob_size(self, repo: str, digest: Digest) -> int | None:
        await trio.lowlevel.checkpoint()
        return self._read(lambda txn: self._blob_size(txn, repo, digest))

    async def unlink_blob(self, repo: str, digest: Digest) -> bool:
        dkey = _d(digest)
        key = _k(repo, dkey)

        def txn_fn(txn: Txn) -> bool:
            if not txn.delete(key, db=self._db["links"]):
                return False
            if txn.get(key, db=self._db["blobrefs"]) is None:
                txn.delete(dkey + b"\0" + repo.encode(), db=self._db["blobrepos"])
            self._count(txn, repo, 0, -1)
            return True

        return await self._write(txn_fn)

    async def blob_in_use(self, digest: Digest) -> bool:
        await trio.lowlevel.checkpoint()
        prefix = _d(digest) + b"\0"

        def txn_fn(txn: Txn) -> bool:
            with txn.cursor(db=self._db["blobrepos"]) as cursor:
                return bool(_scan(cursor, prefix, prefix, 1))

        return self._read(txn_fn)

    # ------------------------------------------------------------------ upload sessions

    async def create_upload(self, record: UploadRecord) -> None:
        value = _pack([record.repo, record.created])
        await self._write(lambda txn: txn.put(record.id.encode(), value, db=self._db["uploads"]))

    async def get_upload(self, upload_id: str) -> UploadRecord | None:
        await trio.lowlevel.checkpoint()
        raw = self._read(lambda txn: txn.get(upload_id.encode(), db=self._db["uploads"]))
        if raw is None:
            return None
        repo, created = _unpack(raw)
        return UploadRecord(upload_id, repo, created)

    async def delete_upload(self, upload_id: str) -> None:
        await self._write(lambda txn: txn.delete(upload_id.encode(), db=self._db["uploads"]))

    async def list_uploads(self) -> list[UploadRecord]:
        def txn_fn(txn: Txn) -> list[tuple[bytes, bytes]]:
            with txn.cursor(db=self._db["uploads"]) as cursor:
                return list(cursor)

        # A full scan: run it in a worker thread.
        rows = await trio.to_thread.run_sync(self._read, txn_fn)
        return [UploadRecord(k.decode(), *_unpack(v)) for k, v in rows]

    # ------------------------------------------------------------------ access times

    async def touch(self, digests: Iterable[Digest], when: float) -> None:
        keys = [_d(d) for d in dict.fromkeys(digests)]
        if not keys:
            await trio.lowlevel.checkpoint()
            return

        def txn_fn(txn: Txn) -> None:
            for key in keys:
                raw = txn.get(key, db=self._db["atime"])
                if raw is None or _unpack(raw) < when:
                    txn.put(key, _pack(when), db=self._db["atime"])

        await self._write(txn_fn)

    async def last_access(self, digest: Digest) -> float | None:
        await trio.lowlevel.checkpoint()
        raw = self._read(lambda txn: txn.get(_d(digest), db=self._db["atime"]))
        return None if raw is None else float(_unpack(raw))

    async def least_recent(self, limit: int) -> list[tuple[Digest, float]]:
        def scan() -> list[tuple[Digest, float]]:
            def txn_fn(txn: Txn) -> list[tuple[Digest, float]]:
                with txn.cursor(db=self._db["atime"]) as cursor:
                    found = [(_digest(k), float(_unpack(v))) for k, v in cursor.iternext()]
                return sorted(found, key=lambda item: item[1])[: max(limit, 0)]

            return self._read(txn_fn)

        # A long scan: in a worker thread, never on the event loop.
        return await trio.to_thread.run_sync(scan)

    async def forget_access(self, digest: Digest) -> None:
        key = _d(digest)
        await self._write(lambda txn: txn.delete(key, db=self._db["atime"]))

    async def get_setting(self, key: str) -> bytes | None:
        await trio.lowlevel.checkpoint()
        raw = key.encode()
        return self._read(lambda txn: txn.get(raw, db=self._db["settings"]))

    async def put_setting(self, key: str, value: bytes) -> None:
        raw, data = key.encode(), bytes(value)
        await self._write(lambda txn: txn.put(raw, data, db=self._db["settings"]))

    async def add_counts(self, key: str, deltas: Sequence[int]) -> list[int]:
        raw = _COUNTS + key.encode()

        def txn_fn(txn: Txn) -> list[int]:
            stored = txn.get(raw, db=self._db["settings"])
            totals = add_up(_unpack(stored) if stored is not None else [], deltas)
            if any(deltas):
                txn.put(raw, _pack(totals), db=self._db["settings"])
            return totals

        if not any(deltas):
            await trio.lowlevel.checkpoint()
            return self._read(txn_fn)
        return await self._write(txn_fn)

    async def blob_repos(self, digest: Digest) -> list[str]:
        await trio.lowlevel.checkpoint()
        prefix = _d(digest) + b"\0"

        def txn_fn(txn: Txn) -> list[str]:
            with txn.cursor(db=self._db["blobrepos"]) as cursor:
                return [key.decode() for key in _scan(cursor, prefix, prefix, None)]

        return self._read(txn_fn)

    def _tag_check(self, txn: Txn, key: bytes) -> TagCheck | None:
        raw = txn.get(key, db=self._db["tagcheck"])
        if raw is None:
            return None
        checked, first, claimed = _unpack(raw)
        return TagCheck(checked, first, claimed)

    async def tag_check(self, repo: str, tag: str) -> TagCheck | None:
        await trio.lowlevel.checkpoint()
        key = _k(repo, tag.encode())
        return self._read(lambda txn: self._tag_check(txn, key))

    async def mark_tag_checked(self, repo: str, tag: str, when: float) -> None:
        key = _k(repo, tag.encode())
        await self._write(lambda txn: self._mark_checked(txn, key, when))

    def _mark_checked(self, txn: Txn, key: bytes, when: float) -> None:
        old = self._tag_check(txn, key)
        checked = when if old is None else max(old.checked, when)
        first = old.first_pulled if old is not None and old.first_pulled else when
        txn.put(key, _pack([float(checked), float(first), 0.0]), db=self._db["tagcheck"])

    async def claim_tag_check(
        self, repo: str, tag: str, now: float, ttl: float, lease: float
    ) -> bool:
        key = _k(repo, tag.encode())

        def txn_fn(txn: Txn) -> bool:
            old = self._tag_check(txn, key) or TagCheck(0.0, 0.0)
            if old.checked + ttl > now or old.claimed_until > now:
                return False
            value = [float(old.checked), float(old.first_pulled), float(now + lease)]
            txn.put(key, _pack(value), db=self._db["tagcheck"])
            return True

        return await self._write(txn_fn)

    # ------------------------------------------------------------------ event outbox

    def _outbox_put(self, txn: Txn, payloads: Sequence[bytes]) -> list[int]:
        raw = txn.get(_OUTBOX_NEXT, db=self._db["settings"])
        seq = 1 if raw is None else int.from_bytes(raw, "big")
        seqs = []
        for payload in payloads:
            txn.put(seq.to_bytes(8, "big"), bytes(payload), db=self._db["outbox"])
            seqs.append(seq)
            seq += 1
        txn.put(_OUTBOX_NEXT, seq.to_bytes(8, "big"), db=self._db["settings"])
        return seqs

    async def outbox_append(self, payloads: Sequence[bytes]) -> list[int]:
        items = list(payloads)
        if not items:
            await trio.lowlevel.checkpoint()
            return []
        return await self._write(lambda txn: self._outbox_put(txn, items))

    async def outbox_peek(self, limit: int) -> list[tuple[int, bytes]]:
        await trio.lowlevel.checkpoint()

        def txn_fn(txn: Txn) -> list[tuple[int, bytes]]:
            out: list[tuple[int, bytes]] = []
            if limit <= 0:
                return out
            with txn.cursor(db=self._db["outbox"]) as cursor:
                for key, value in cursor.iternext():
                    out.append((int.from_bytes(key, "big"), bytes(value)))
                    if len(out) >= limit:
                        break
            return out

        return self._read(txn_fn)

    async def outbox_ack(self, upto: int) -> int:
        def txn_fn(txn: Txn) -> int:
            dropped = 0
            with txn.cursor(db=self._db["outbox"]) as cursor:
                while cursor.first() and int.from_bytes(cursor.key(), "big") <= upto:
                    cursor.delete()
                    dropped += 1
            return dropped

        return await self._write(txn_fn)

    async def aclose(self) -> None:
        """Close the environment. Idempotent."""
        if not self._closed:
            self._closed = True
            self._env.close()
        await trio.lowlevel.checkpoint()
