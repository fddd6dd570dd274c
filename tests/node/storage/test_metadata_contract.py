"""The MetadataStore contract, run against every implementation."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from node.storage.base import (
    ManifestRecord,
    MetadataStore,
    Referrer,
    TagCheck,
    UploadRecord,
)
from node.storage.lmdb_meta import LmdbMetadataStore
from node.storage.memory import MemoryMetadataStore
from portmesh.oci.digest import Digest
from portmesh.oci.mediatypes import OCI_INDEX, OCI_MANIFEST


@pytest.fixture(params=["memory", "lmdb"])
async def meta(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MetadataStore]:
    store: MetadataStore
    if request.param == "memory":
        store = MemoryMetadataStore()
    else:
        store = LmdbMetadataStore.open(tmp_path / "meta", map_size=64 * 1024 * 1024)
    yield store
    await store.aclose()
    await store.aclose()  # idempotent


def blob(name: str, algorithm: str = "sha256") -> Digest:
    return Digest.of(name.encode(), algorithm)


def manifest(
    name: str,
    *,
    subject: Digest | None = None,
    artifact_type: str | None = None,
    media_type: str = OCI_MANIFEST,
    annotations: dict[str, str] | None = None,
    algorithm: str = "sha256",
) -> ManifestRecord:
    body = json.dumps({"schemaVersion": 2, "mediaType": media_type, "name": name}).encode()
    return ManifestRecord(
        digest=Digest.of(body, algorithm),
        media_type=media_type,
        body=body,
        subject=subject,
        artifact_type=artifact_type,
        annotations=annotations or {},
        created=1700000000.5,
    )


async def put(
    meta: MetadataStore,
    repo: str,
    record: ManifestRecord,
    tag: str | None = None,
    blobs: tuple[Digest, ...] = (),
    children: tuple[Digest, ...] = (),
) -> ManifestRecord:
    await meta.put_manifest(repo, record, tag=tag, blobs=blobs, children=children)
    return record


# ---------------------------------------------------------------------------- manifests


async def test_put_and_get_by_tag_and_digest(meta: MetadataStore) -> None:
    record = manifest("one", annotations={"org.opencontainers.image.title": "x"})
    await put(meta, "library/app", record, "latest")
    assert await meta.get_manifest("library/app", "latest") == record
    assert await meta.get_manifest("library/app", str(record.digest)) == record
    assert await meta.get_manifest("library/app", "other") is None
    assert await meta.get_manifest("library", "latest") is None
    assert await meta.get_manifest("library/app/x", str(record.digest)) is None
    assert await meta.get_manifest("library/app", str(blob("nothing"))) is None


async def test_uppercase_digest_reference_finds_nothing(meta: MetadataStore) -> None:
    record = await put(meta, "r", manifest("m"))
    upper = f"sha256:{record.digest.encoded.upper()}"
    assert await meta.get_manifest("r", upper) is None


@pytest.mark.parametrize("algorithm", ["sha512", "blake3"])
async def test_manifests_under_other_algorithms(meta: MetadataStore, algorithm: str) -> None:
    record = await put(meta, "r", manifest("m", algorithm=algorithm), "t")
    assert await meta.get_manifest("r", str(record.digest)) == record
    assert await meta.get_manifest("r", "t") == record


async def test_index_with_children(meta: MetadataStore) -> None:
    child = await put(meta, "r", manifest("child"))
    index = await put(meta, "r", manifest("index", media_type=OCI_INDEX), "v1", (), (child.digest,))
    got = await meta.get_manifest("r", "v1")
    assert got is not None and got.media_type == OCI_INDEX and got.body == index.body
    other = manifest("absent")
    assert await meta.missing("r", [], [child.digest, other.digest]) == [other.digest]


async def test_retagging_moves_the_tag(meta: MetadataStore) -> None:
    m1 = await put(meta, "r", manifest("1"), "latest")
    m2 = await put(meta, "r", manifest("2"), "latest")
    assert await meta.get_manifest("r", "latest") == m2
    assert await meta.get_manifest("r", str(m1.digest)) == m1
    assert await meta.list_tags("r", None, None) == ["latest"]
    # Deleting the old manifest leaves the moved tag alone.
    assert await meta.delete_manifest("r", m1.digest) is True
    assert await meta.get_manifest("r", "latest") == m2


async def test_putting_a_manifest_again_adds_tags(meta: MetadataStore) -> None:
    record = manifest("m")
    await put(meta, "r", record, "a", (blob("l"),))
    await put(meta, "r", record, "b", (blob("l"),))
    await put(meta, "r", record, None, (blob("l"),))
    assert await meta.list_tags("r", None, None) == ["a", "b"]
    assert await meta.list_repos(None, None) == ["r"]
    assert await meta.delete_manifest("r", record.digest) is True
    assert await meta.list_tags("r", None, None) is None


async def test_delete_manifest_removes_its_tags(meta: MetadataStore) -> None:
    record = await put(meta, "r", manifest("m"), "t1")
    await put(meta, "r", record, "t2")
    keep = await put(meta, "r", manifest("keep"), "t3")
    assert await meta.delete_manifest("r", record.digest) is True
    assert await meta.delete_manifest("r", record.digest) is False
    assert await meta.get_manifest("r", "t1") is None
    assert await meta.get_manifest("r", "t2") is None
    assert await meta.get_manifest("r", str(record.digest)) is None
    assert await meta.list_tags("r", None, None) == ["t3"]
    assert await meta.get_manifest("r", "t3") == keep
    assert await meta.delete_manifest("elsewhere", keep.digest) is False


async def test_delete_tag_keeps_the_manifest(meta: MetadataStore) -> None:
    record = await put(meta, "r", manifest("m"), "t")
    assert await meta.delete_tag("r", "t") is True
    assert await meta.delete_tag("r", "t") is False
    assert await meta.delete_tag("nope", "t") is False
    assert await meta.get_manifest("r", "t") is None
    assert await meta.get_manifest("r", str(record.digest)) == record
    assert await meta.list_tags("r", None, None) == []
    # The manifest can be tagged again and deleted cleanly.
    await put(meta, "r", record, "t")
    assert await meta.delete_manifest("r", record.digest) is True
    assert await meta.list_tags("r", None, None) is None


# ---------------------------------------------------------------------------- listing

TAGS = ["v1", "latest", "B", "a", "a1", "v1.0", "a-b", "_x", "9"]


async def test_tags_paginate_in_lexical_order(meta: MetadataStore) -> None:
    record = manifest("m")
    for tag in TAGS:
        await put(meta, "repo", record, tag)
    # Neighbouring repositories whose names extend "repo" must not leak in.
    await put(meta, "repo-b", manifest("x"), "zzz")
    await put(meta, "repo/sub", manifest("y"), "aaa")
    ordered = sorted(TAGS)
    assert await meta.list_tags("repo", None, None) == ordered
    assert await meta.list_tags("repo", 3, None) == ordered[:3]
    assert await meta.list_tags("repo", 3, ordered[2]) == ordered[3:6]
    assert await meta.list_tags("repo", None, "a") == [t for t in ordered if t > "a"]
    assert await meta.list_tags("repo", 2, "a0") == ["a1", "latest"]  # last not a tag
    assert await meta.list_tags("repo", 100, ordered[-1]) == []
    assert await meta.list_tags("repo", 0, None) == []
    assert await meta.list_tags("repo-b", None, None) == ["zzz"]
    assert await meta.list_tags("repo/sub", None, None) == ["aaa"]


async def test_list_tags_of_unknown_and_blob_only_repos(meta: MetadataStore) -> None:
    assert await meta.list_tags("unknown", None, None) is None
    await meta.link_blob("blobs-only", blob("x"), 1)
    assert await meta.list_tags("blobs-only", None, None) == []


async def test_catalog_paginates_and_forgets_empty_repos(meta: MetadataStore) -> None:
    names = ["b/c", "a", "b", "a/b", "a-b", "ab", "z"]
    for name in names:
        if name in ("b", "z"):
            await meta.link_blob(name, blob(name), 3)
        else:
            await put(meta, name, manifest(name), "t")
    ordered = sorted(names)
    assert await meta.list_repos(None, None) == ordered
    assert await meta.list_repos(2, None) == ordered[:2]
    assert await meta.list_repos(2, ordered[1]) == ordered[2:4]
    assert await meta.list_repos(None, "a/b") == [n for n in ordered if n > "a/b"]
    assert await meta.list_repos(0, None) == []

    assert await meta.unlink_blob("z", blob("z")) is True
    record = await meta.get_manifest("a", "t")
    assert record is not None
    await meta.delete_manifest("a", record.digest)
    assert await meta.list_repos(None, None) == [n for n in ordered if n not in ("a", "z")]
    assert await meta.list_tags("a", None, None) is None


# ---------------------------------------------------------------------------- referrers


async def test_referrers_index(meta: MetadataStore) -> None:
    subject = await put(meta, "r", manifest("image"), "v1")
    sig = manifest(
        "sig", subject=subject.digest, artifact_type="application/vnd.example.sig",
        annotations={"k": "v"},
    )  # fmt: skip
    sbom = manifest("sbom", subject=subject.digest, artifact_type="application/spdx+json")
    await put(meta, "r", sig)
    await put(meta, "r", sbom)
    await put(meta, "other", manifest("elsewhere", subject=subject.digest))
    expected = sorted(
        [
            Referrer(sig.digest, OCI_MANIFEST, len(sig.body), sig.artifact_type, {"k": "v"}),
            Referrer(sbom.digest, OCI_MANIFEST, len(sbom.body), sbom.artifact_type, {}),
        ],
        key=lambda r: str(r.digest),
    )
    assert await meta.referrers("r", subject.digest) == expected
    assert await meta.referrers("r", sig.digest) == []

    assert await meta.delete_manifest("r", sig.digest) is True
    assert await meta.referrers("r", subject.digest) == [
        r for r in expected if r.digest == sbom.digest
    ]
    # Putting a referrer twice does not list it twice.
    await put(meta, "r", sbom, "sbom")
    assert len(await meta.referrers("r", subject.digest)) == 1


async def test_referrers_order_across_algorithms(meta: MetadataStore) -> None:
    subject = blob("subject")  # referrers may arrive before their subject
    records = [manifest("r", subject=subject, algorithm=a) for a in ("sha512", "blake3", "sha256")]
    for record in records:
        await put(meta, "r", record)
    found = await meta.referrers("r", subject)
    assert [r.digest for r in found] == sorted((r.digest for r in records), key=str)


# ---------------------------------------------------------------------------- blobs


async def test_blob_links(meta: MetadataStore) -> None:
    layer = blob("layer")
    assert await meta.blob_size("r", layer) is None
    assert await meta.blob_in_use(layer) is False
    await meta.link_blob("r", layer, 42)
    await meta.link_blob("r", layer, 42)
    await meta.link_blob("s", layer, 42)
    assert await meta.blob_size("r", layer) == 42
    assert await meta.blob_size("t", layer) is None
    assert await meta.blob_in_use(layer) is True
    assert await meta.unlink_blob("r", layer) is True
    assert await meta.unlink_blob("r", layer) is False
    assert await meta.blob_size("r", layer) is None
    assert await meta.blob_in_use(layer) is True
    assert await meta.unlink_blob("s", layer) is True
    assert await meta.blob_in_use(layer) is False
    assert await meta.list_repos(None, None) == []


async def test_blobs_referenced_by_manifests_stay_visible(meta: MetadataStore) -> None:
    config, layer = blob("config"), blob("layer")
    await meta.link_blob("r", config, 10)
    await meta.link_blob("r", layer, 2000)
    record = await put(meta, "r", manifest("m"), "t", (config, layer, layer))
    assert await meta.unlink_blob("r", layer) is True
    assert await meta.blob_size("r", layer) == 2000
    assert await meta.blob_in_use(layer) is True
    assert await meta.missing("r", [config, layer], []) == []
    # A second manifest shares the layer; it stays visible until both are gone.
    second = await put(meta, "r", manifest("m2"), None, (layer,))
    assert await meta.delete_manifest("r", record.digest) is True
    assert await meta.blob_size("r", layer) == 2000
    assert await meta.delete_manifest("r", second.digest) is True
    assert await meta.blob_size("r", layer) is None
    assert await meta.blob_in_use(layer) is False
    assert await meta.blob_size("r", config) == 10  # still linked
    assert await meta.blob_in_use(config) is True


async def test_missing_lists_absent_blobs_and_manifests(meta: MetadataStore) -> None:
    present, absent = blob("present"), blob("absent")
    child = await put(meta, "r", manifest("child"))
    gone = manifest("gone")
    await meta.link_blob("r", present, 1)
    await meta.link_blob("other", absent, 1)
    result = await meta.missing("r", [present, absent, absent], [child.digest, gone.digest])
    assert result == [absent, gone.digest]
    assert await meta.missing("nope", [present], []) == [present]


# ---------------------------------------------------------------------------- uploads, atime


async def test_upload_sessions(meta: MetadataStore) -> None:
    a = UploadRecord("a" * 32, "r", 10.0)
    b = UploadRecord("b" * 32, "s/t", 20.5)
    await meta.create_upload(b)
    await meta.create_upload(a)
    assert await meta.get_upload(a.id) == a
    assert await meta.get_upload("c" * 32) is None
    assert await meta.list_uploads() == [a, b]
    await meta.delete_upload(a.id)
    await meta.delete_upload(a.id)
    assert await meta.get_upload(a.id) is None
    assert await meta.list_uploads() == [b]
    # Upload sessions do not make a repository exist.
    assert await meta.list_repos(None, None) == []


async def test_access_times_only_move_forward(meta: MetadataStore) -> None:
    d1, d2 = blob("1"), blob("2", "sha512")
    assert await meta.last_access(d1) is None
    await meta.touch([d1, d2], 100.0)
    assert await meta.last_access(d1) == 100.0
    assert await meta.last_access(d2) == 100.0
    await meta.touch([d1], 50.0)
    assert await meta.last_access(d1) == 100.0
    await meta.touch(iter([d1]), 150.5)
    assert await meta.last_access(d1) == 150.5
    await meta.touch([], 999.0)
    assert await meta.last_access(d2) == 100.0


async def test_least_recent_orders_by_access_and_forgets(meta: MetadataStore) -> None:
    old, mid, new = blob("old"), blob("mid", "sha512"), blob("new")
    await meta.touch([mid], 200.0)
    await meta.touch([new], 300.0)
    await meta.touch([old], 100.0)
    assert await meta.least_recent(10) == [(old, 100.0), (mid, 200.0), (new, 300.0)]
    assert await meta.least_recent(2) == [(old, 100.0), (mid, 200.0)]
    await meta.forget_access(old)
    assert await meta.last_access(old) is None
    assert [d for d, _ in await meta.least_recent(10)] == [mid, new]


async def test_blob_repos_lists_links_and_references(meta: MetadataStore) -> None:
    layer, other = blob("layer"), blob("other")
    assert await meta.blob_repos(layer) == []
    await meta.link_blob("b/pushed", layer, 5)
    await meta.link_blob("a/mounted", layer, 5)
    await meta.link_blob("b/pushed", other, 5)
    await put(meta, "c/image", manifest("m"), "v1", blobs=(layer,))
    assert await meta.blob_repos(layer) == ["a/mounted", "b/pushed", "c/image"]
    await meta.unlink_blob("a/mounted", layer)
    assert await meta.blob_repos(layer) == ["b/pushed", "c/image"]


# ---------------------------------------------------------------------------- atomicity


async def test_readers_never_see_half_a_put_or_delete(meta: MetadataStore) -> None:
    records = [manifest(f"m{i}") for i in range(20)]
    seen: list[ManifestRecord] = []
    done = trio.Event()

    async def reader() -> None:
        while not done.is_set():
            got = await meta.get_manifest("r", "latest")
            if got is not None:
                assert Digest.of(got.body) == got.digest
                seen.append(got)
            tags = await meta.list_tags("r", None, None)
            if tags:
                assert tags == ["latest"]
            await trio.lowlevel.checkpoint()

    async def writer() -> None:
        for record in records:
            await put(meta, "r", record, "latest", (blob("layer"),))
            await meta.delete_manifest("r", record.digest)
            await put(meta, "r", record, "latest")
        done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        nursery.start_soon(writer)
    assert seen, "the reader saw no manifest"
    assert await meta.get_manifest("r", "latest") == records[-1]


async def test_settings_are_opaque_bytes_replaced_whole(meta: MetadataStore) -> None:
    assert await meta.get_setting("policy") is None
    await meta.put_setting("policy", b"\x01\x00first")
    await meta.put_setting("other", b"")
    await meta.put_setting("policy", b"\x01\x00second")
    assert await meta.get_setting("policy") == b"\x01\x00second"
    assert await meta.get_setting("other") == b""
    assert await meta.list_repos(None, None) == []  # settings are not repositories


async def test_counts_add_up_and_stay_apart_from_settings(meta: MetadataStore) -> None:
    assert await meta.add_counts("cache", []) == []
    assert await meta.add_counts("cache", [3, 1]) == [3, 1]
    assert await meta.add_counts("cache", [2]) == [5, 1]
    assert await meta.add_counts("cache", [0, 4, 7]) == [5, 5, 7]
    assert await meta.add_counts("cache", [0, 0]) == [5, 5, 7], "zeros only read"
    assert await meta.add_counts("other", [-1]) == [-1]
    assert await meta.get_setting("cache") is None, "counters are not settings"
    await meta.put_setting("cache", b"x")
    assert await meta.add_counts("cache", []) == [5, 5, 7]


async def test_tag_checks_record_freshness_and_keep_the_first_pull(meta: MetadataStore) -> None:
    assert await meta.tag_check("hub/app", "v1") is None
    await meta.mark_tag_checked("hub/app", "v1", 1000.0)
    assert await meta.tag_check("hub/app", "v1") == TagCheck(1000.0, 1000.0, 0.0)
    await meta.mark_tag_checked("hub/app", "v1", 1070.5)
    await meta.mark_tag_checked("hub/app", "v1", 1050.0)  # a late writer never moves it back
    assert await meta.tag_check("hub/app", "v1") == TagCheck(1070.5, 1000.0, 0.0)
    assert await meta.tag_check("hub/app", "v2") is None
    assert await meta.tag_check("hub/other", "v1") is None
    assert await meta.list_repos(None, None) == []  # freshness records are not repositories


async def test_a_tag_stored_as_checked_is_marked_with_it(meta: MetadataStore) -> None:
    first, second = manifest("a"), manifest("b")
    await meta.put_manifest("hub/app", first, tag="v1", blobs=(), children=(), checked=1000.0)
    assert await meta.tag_check("hub/app", "v1") == TagCheck(1000.0, 1000.0, 0.0)
    assert await meta.claim_tag_check("hub/app", "v1", 1061.0, 60.0, 5.0)
    await meta.put_manifest("hub/app", second, tag="v1", blobs=(), children=(), checked=1062.0)
    assert await meta.tag_check("hub/app", "v1") == TagCheck(1062.0, 1000.0, 0.0), "claim ends"
    assert (await meta.get_manifest("hub/app", "v1")) == second
    await meta.put_manifest("hub/app", first, tag=None, blobs=(), children=(), checked=2000.0)
    assert await meta.tag_check("hub/app", "v1") == TagCheck(1062.0, 1000.0, 0.0), "no tag"
    await meta.put_manifest("hub/app", first, tag="v2", blobs=(), children=())
    assert await meta.tag_check("hub/app", "v2") is None, "a pushed tag is not a checked one"


async def test_one_claim_per_expired_tag_until_marked_or_expired(meta: MetadataStore) -> None:
    await meta.mark_tag_checked("hub/app", "v1", 1000.0)
    assert not await meta.claim_tag_check("hub/app", "v1", 1059.0, 60.0, 5.0), "still fresh"
    assert await meta.tag_check("hub/app", "v1") == TagCheck(1000.0, 1000.0, 0.0)
    wins: list[bool] = []

    async def claim() -> None:
        wins.append(await meta.claim_tag_check("hub/app", "v1", 1061.0, 60.0, 5.0))

    async with trio.open_nursery() as nursery:
        for _ in range(8):
            nursery.start_soon(claim)
    assert sorted(wins) == [False] * 7 + [True]
    assert await meta.tag_check("hub/app", "v1") == TagCheck(1000.0, 1000.0, 1066.0)
    assert not await meta.claim_tag_check("hub/app", "v1", 1065.0, 60.0, 5.0), "claim holds"
    assert await meta.claim_tag_check("hub/app", "v1", 1066.0, 60.0, 5.0), "claim expired"
    await meta.mark_tag_checked("hub/app", "v1", 1067.0)
    assert await meta.tag_check("hub/app", "v1") == TagCheck(1067.0, 1000.0, 0.0)
    assert not await meta.claim_tag_check("hub/app", "v1", 1068.0, 60.0, 5.0), "fresh again"


async def test_a_tag_never_checked_can_be_claimed(meta: MetadataStore) -> None:
    assert await meta.claim_tag_check("hub/app", "v1", 500.0, 60.0, 5.0)
    assert not await meta.claim_tag_check("hub/app", "v1", 501.0, 60.0, 5.0)
    await meta.mark_tag_checked("hub/app", "v1", 502.0)
    assert await meta.tag_check("hub/app", "v1") == TagCheck(502.0, 502.0, 0.0)
