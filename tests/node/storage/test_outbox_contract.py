"""The MetadataStore outbox contract (append, peek, ack), run against every implementation;
plus persistence across reopening for the LMDB store."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from node.storage.base import ManifestRecord, MetadataStore
from node.storage.lmdb_meta import LmdbMetadataStore
from node.storage.memory import MemoryMetadataStore
from portmesh.oci.digest import Digest
from portmesh.oci.mediatypes import OCI_MANIFEST

MAP_SIZE = 64 * 1024 * 1024


@pytest.fixture(params=["memory", "lmdb"])
async def meta(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MetadataStore]:
    store: MetadataStore
    if request.param == "memory":
        store = MemoryMetadataStore()
    else:
        store = LmdbMetadataStore.open(tmp_path / "meta", map_size=MAP_SIZE)
    yield store
    await store.aclose()


def manifest(name: str) -> ManifestRecord:
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "name": name}).encode()
    return ManifestRecord(Digest.of(body), OCI_MANIFEST, body)


async def test_append_peek_in_order_and_ack_up_to(meta: MetadataStore) -> None:
    assert await meta.outbox_peek(10) == []
    assert await meta.outbox_append([b"a", b"b"]) == [1, 2]
    assert await meta.outbox_append([]) == []
    assert await meta.outbox_append([b"c"]) == [3]
    assert await meta.outbox_peek(2) == [(1, b"a"), (2, b"b")]
    assert await meta.outbox_peek(10) == [(1, b"a"), (2, b"b"), (3, b"c")]
    assert await meta.outbox_peek(0) == []
    assert await meta.outbox_ack(2) == 2
    assert await meta.outbox_peek(10) == [(3, b"c")]
    assert await meta.outbox_ack(2) == 0, "acking again drops nothing"


async def test_seq_never_repeats_after_everything_was_acked(meta: MetadataStore) -> None:
    await meta.outbox_append([b"x"] * 300)  # past one byte of seq
    assert await meta.outbox_ack(300) == 300
    assert await meta.outbox_peek(5) == []
    assert await meta.outbox_append([b"y"]) == [301]
    assert await meta.outbox_peek(5) == [(301, b"y")]


async def test_manifest_changes_append_their_event_in_the_same_call(
    meta: MetadataStore,
) -> None:
    record = manifest("one")
    await meta.put_manifest("t/app", record, tag="v1", blobs=[], children=[], outbox=b"push")
    assert not await meta.delete_tag("t/app", "nope", outbox=b"lost")
    assert await meta.delete_tag("t/app", "v1", outbox=b"untag")
    other = Digest.of(b"absent")
    assert not await meta.delete_manifest("t/app", other, outbox=b"lost")
    assert await meta.delete_manifest("t/app", record.digest, outbox=b"delete")
    await meta.put_manifest("t/app", record, tag=None, blobs=[], children=[])
    assert await meta.outbox_peek(10) == [(1, b"push"), (2, b"untag"), (3, b"delete")]


async def test_lmdb_outbox_survives_reopening(tmp_path: Path) -> None:
    store = LmdbMetadataStore.open(tmp_path / "meta", map_size=MAP_SIZE)
    await store.outbox_append([b"a", b"b", b"c"])
    await store.outbox_ack(1)
    await store.aclose()
    store = LmdbMetadataStore.open(tmp_path / "meta", map_size=MAP_SIZE)
    try:
        assert await store.outbox_peek(10) == [(2, b"b"), (3, b"c")]
        assert await store.outbox_append([b"d"]) == [4]
    finally:
        await store.aclose()
