"""What the LMDB store adds to the contract: persistence, key sizes, shared environments."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import lmdb
import trio

from node.storage.base import ManifestRecord, UploadRecord
from node.storage.lmdb_meta import LmdbMetadataStore
from portmesh.oci.digest import Digest
from portmesh.oci.mediatypes import OCI_MANIFEST

MAP_SIZE = 32 * 1024 * 1024
ROOT = Path(__file__).resolve().parents[3]


def record(body: bytes, subject: Digest | None = None, algorithm: str = "sha256") -> ManifestRecord:
    return ManifestRecord(Digest.of(body, algorithm), OCI_MANIFEST, body, subject, "a/b", {}, 1.5)


async def test_reopened_environment_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "meta"
    layer = Digest.of(b"layer")
    subject = record(b"subject")
    ref = record(b"referrer", subject.digest)
    upload = UploadRecord("f" * 32, "r", 3.0)

    meta = LmdbMetadataStore.open(path, MAP_SIZE)
    await meta.link_blob("r", layer, 5)
    await meta.put_manifest("r", subject, tag="v1", blobs=[layer], children=[])
    await meta.put_manifest("r", ref, tag=None, blobs=[], children=[])
    await meta.create_upload(upload)
    await meta.touch([layer], 77.0)
    await meta.aclose()

    meta = LmdbMetadataStore.open(path, MAP_SIZE)
    try:
        assert await meta.get_manifest("r", "v1") == subject
        assert await meta.list_tags("r", None, None) == ["v1"]
        assert await meta.list_repos(None, None) == ["r"]
        assert [r.digest for r in await meta.referrers("r", subject.digest)] == [ref.digest]
        assert await meta.blob_size("r", layer) == 5
        assert await meta.get_upload(upload.id) == upload
        assert await meta.last_access(layer) == 77.0
        # The reference counts survived too: deleting the manifest releases the layer.
        await meta.unlink_blob("r", layer)
        assert await meta.blob_in_use(layer) is True
        await meta.delete_manifest("r", subject.digest)
        assert await meta.blob_in_use(layer) is False
    finally:
        await meta.aclose()


async def test_longest_names_fit_in_lmdb_keys(tmp_path: Path) -> None:
    repo = "/".join(["a" * 63] * 4)  # 255 characters
    tag = "t" * 128
    subject = record(b"s", algorithm="sha512")
    ref = record(b"r", subject.digest, algorithm="sha512")
    meta = LmdbMetadataStore.open(tmp_path / "meta", MAP_SIZE)
    try:
        await meta.put_manifest(repo, subject, tag=tag, blobs=[], children=[])
        await meta.put_manifest(repo, ref, tag=tag[:-1], blobs=[subject.digest], children=[])
        assert await meta.get_manifest(repo, tag) == subject
        assert len(await meta.referrers(repo, subject.digest)) == 1
        assert await meta.list_tags(repo, 1, tag[:-1]) == [tag]
        assert await meta.delete_manifest(repo, ref.digest) is True
        assert await meta.delete_manifest(repo, subject.digest) is True
        assert await meta.list_repos(None, None) == []
    finally:
        await meta.aclose()


async def test_manifest_body_of_four_mib_is_stored_inline(tmp_path: Path) -> None:
    body = b"{" + b" " * (4 * 1024 * 1024 - 2) + b"}"
    big = record(body)
    meta = LmdbMetadataStore.open(tmp_path / "meta", MAP_SIZE)
    try:
        await meta.put_manifest("r", big, tag="big", blobs=[], children=[])
        got = await meta.get_manifest("r", "big")
        assert got is not None and got.body == body
    finally:
        await meta.aclose()


SMALL_MAP = 2 * 1024 * 1024
# A second worker: opens the environment with a larger map and fills it past SMALL_MAP.
GROW = """
import sys, trio
from node.storage.base import ManifestRecord, UploadRecord
from node.storage.lmdb_meta import LmdbMetadataStore
from portmesh.oci.digest import Digest

async def main():
    meta = LmdbMetadataStore.open(sys.argv[1], 64 * 1024 * 1024)
    for i in range(6):
        body = b"{" + str(i).encode() * (1024 * 1024) + b"}"
        record = ManifestRecord(Digest.of(body), "application/json", body)
        await meta.put_manifest("big", record, tag=f"t{i}", blobs=[], children=[])
    await meta.create_upload(UploadRecord("e" * 32, "from-child", 9.0))
    await meta.aclose()

trio.run(main)
"""


async def test_survives_another_process_growing_the_map(tmp_path: Path) -> None:
    path = tmp_path / "meta"
    meta = LmdbMetadataStore.open(path, SMALL_MAP)
    try:
        await meta.create_upload(UploadRecord("a" * 32, "r", 1.0))
        # Another worker opens the environment with a larger map and writes.
        with trio.fail_after(60):
            await trio.run_process(
                [sys.executable, "-c", textwrap.dedent(GROW), str(path)], cwd=ROOT
            )
        # Without set_mapsize(0) and a retry, this read would raise MapResizedError.
        found = await meta.get_upload("e" * 32)
        assert found == UploadRecord("e" * 32, "from-child", 9.0)
        got = await meta.get_manifest("big", "t5")
        assert got is not None and len(got.body) == 1024 * 1024 + 2
        await meta.create_upload(UploadRecord("b" * 32, "r", 2.0))
        assert [u.id for u in await meta.list_uploads()] == ["a" * 32, "b" * 32, "e" * 32]
    finally:
        await meta.aclose()


def test_a_plain_reader_does_get_map_resized(tmp_path: Path) -> None:
    """The situation the store handles is real: a raw reader sees MapResizedError."""
    path = tmp_path / "meta"
    env = lmdb.open(str(path), map_size=SMALL_MAP, max_dbs=4)
    try:
        subprocess.run(
            [sys.executable, "-c", textwrap.dedent(GROW), str(path)],
            check=True,
            cwd=ROOT,
            timeout=60,
        )
        raised = False
        try:
            with env.begin() as txn:
                txn.get(b"x")
        except lmdb.MapResizedError:
            raised = True
        assert raised
    finally:
        env.close()
