"""The policy holder keeps the last snapshot in LMDB, sealed with the node's key file;
the node key survives restarts."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
import trio
from auth_fixtures import make_policy

from node.auth.holder import POLICY_KEY, PolicyHolder
from node.auth.nodekey import load_node_key
from node.auth.sealing import KEY_FILE, SealError, SnapshotSeal
from node.storage.lmdb_meta import LmdbMetadataStore
from portmesh.policy import Policy, PolicyError
from portmesh.tokens import KeySet, SigningKey

MAP = 64 * 1024 * 1024


async def test_restart_keeps_the_last_snapshot(tmp_path: Path) -> None:
    coordinator = SigningKey.generate("c1")
    local = KeySet()
    meta = LmdbMetadataStore.open(tmp_path / "meta", MAP)
    try:
        holder = await PolicyHolder.open(meta, local, make_policy(coordinator, version=1))
        assert await holder.replace(make_policy(coordinator, version=5))
        assert not await holder.replace(make_policy(coordinator, version=4))  # older: ignored
        assert not await holder.replace(make_policy(coordinator, version=5))
        assert holder.current.policy.version == 5
    finally:
        await meta.aclose()
    meta = LmdbMetadataStore.open(tmp_path / "meta", MAP)
    try:
        # an older policy file does not win over the stored snapshot
        again = await PolicyHolder.open(meta, local, make_policy(coordinator, version=2))
        assert again.current.policy.version == 5
        assert again.current.keyset.kids == ["c1"]
        # a newer one does, and is stored
        newer = await PolicyHolder.open(meta, local, make_policy(coordinator, version=9))
        assert newer.current.policy.version == 9
        assert (await PolicyHolder.open(meta, local)).current.policy.version == 9
    finally:
        await meta.aclose()


async def test_local_keys_join_every_snapshot(tmp_path: Path) -> None:
    node = SigningKey.generate("node")
    local = KeySet()
    local.add(node.kid, node.key.verify_key)
    meta = LmdbMetadataStore.open(tmp_path / "meta", MAP)
    try:
        holder = await PolicyHolder.open(meta, local, make_policy(SigningKey.generate("a")))
        assert holder.current.keyset.kids == ["a", "node"]
        await holder.replace(make_policy(SigningKey.generate("b"), version=2))
        assert holder.current.keyset.kids == ["b", "node"]
    finally:
        await meta.aclose()


async def test_no_snapshot_at_all_is_an_error_and_garbage_is_ignored(tmp_path: Path) -> None:
    meta = LmdbMetadataStore.open(tmp_path / "meta", MAP)
    try:
        with pytest.raises(PolicyError, match="no policy snapshot"):
            await PolicyHolder.open(meta, KeySet())
        await meta.put_setting(POLICY_KEY, b"\x01\x00garbage")
        with pytest.raises(PolicyError):
            await PolicyHolder.open(meta, KeySet())
        holder = await PolicyHolder.open(meta, KeySet(), make_policy(SigningKey.generate()))
        assert holder.current.policy.version == 1
    finally:
        await meta.aclose()


async def test_a_snapshot_with_bad_keys_is_not_swapped_in(tmp_path: Path) -> None:
    meta = LmdbMetadataStore.open(tmp_path / "meta", MAP)
    try:
        good = make_policy(SigningKey.generate("a"))
        holder = await PolicyHolder.open(meta, KeySet(), good)
        bad = make_policy(SigningKey.generate("b"), version=2, keys=({"kty": "RSA"},))
        with pytest.raises(PolicyError):
            await holder.replace(bad)
        assert holder.current.policy is good
        assert (await PolicyHolder.open(meta, KeySet())).current.policy.version == 1
    finally:
        await meta.aclose()


def test_node_key_is_created_once_and_private(tmp_path: Path) -> None:
    first = load_node_key(tmp_path / "auth")
    second = load_node_key(tmp_path / "auth")
    assert first.public_jwk() == second.public_jwk()
    path = tmp_path / "auth" / "node-key"
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert json.loads(path.read_text())["kid"] == first.kid
    assert [p.name for p in (tmp_path / "auth").iterdir()] == ["node-key"]


async def test_other_processes_reload_the_stored_snapshot(tmp_path: Path) -> None:
    coordinator = SigningKey.generate("c1")
    meta = LmdbMetadataStore.open(tmp_path / "meta", MAP)
    try:
        writer = await PolicyHolder.open(meta, KeySet(), make_policy(coordinator))
        reader = await PolicyHolder.open(meta, KeySet())
        assert not await reader.reload()  # nothing newer yet
        await writer.replace(make_policy(SigningKey.generate("c2"), version=2))
        assert await reader.reload()
        assert reader.current.policy.version == 2 and reader.current.keyset.kids == ["c2"]
        await meta.put_setting(POLICY_KEY, b"\x01\x00garbage")
        assert not await reader.reload()
        assert reader.current.policy.version == 2
    finally:
        await meta.aclose()


def test_auth_modules_export_what_they_list() -> None:
    import importlib

    for name in (
        "asgi",
        "holder",
        "middleware",
        "nodekey",
        "robots",
        "scopes",
        "sealing",
        "setup",
        "token_service",
    ):
        module = importlib.import_module(f"node.auth.{name}")
        for exported in module.__all__:
            assert hasattr(module, exported), (name, exported)


PASSWORD = "upstream-pass-7f3c91d2e8"


def with_upstream(coordinator: SigningKey, version: int, password: str = PASSWORD) -> Policy:
    upstream = {
        "name": "parent",
        "type": "portmesh",
        "url": "http://127.0.0.1:5999",
        "project": "mirror",
        "username": "robot$team+pull",
        "password": password,
    }
    return make_policy(coordinator, version=version, upstreams=(upstream,))


def files_containing(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


async def test_stored_snapshot_is_sealed_and_opens_after_a_restart(tmp_path: Path) -> None:
    coordinator = SigningKey.generate("c1")
    seal = SnapshotSeal.load(tmp_path / "auth")
    meta = LmdbMetadataStore.open(tmp_path / "meta", MAP)
    try:
        holder = await PolicyHolder.open(meta, KeySet(), with_upstream(coordinator, 1), seal=seal)
        second = with_upstream(coordinator, 2, PASSWORD + "-v2")
        assert await holder.replace(second)
        raw = await meta.get_setting(POLICY_KEY)
        assert raw is not None and raw.startswith(b"pm1:")
        with pytest.raises(PolicyError):
            Policy.from_bytes(raw)
    finally:
        await meta.aclose()
    # neither the secrets nor the (compressed) snapshot frames are anywhere on disk
    assert files_containing(tmp_path, PASSWORD.encode()) == []
    assert files_containing(tmp_path, b"robot$team+pull") == []
    assert files_containing(tmp_path, second.to_bytes()) == []
    assert files_containing(tmp_path, with_upstream(coordinator, 1).to_bytes()) == []
    assert os.stat(tmp_path / "auth" / KEY_FILE).st_mode & 0o777 == 0o600
    meta = LmdbMetadataStore.open(tmp_path / "meta", MAP)
    try:
        again = await PolicyHolder.open(meta, KeySet(), seal=SnapshotSeal.load(tmp_path / "auth"))
        assert again.current.policy.version == 2
        assert again.current.policy.upstreams[0]["password"] == PASSWORD + "-v2"
    finally:
        await meta.aclose()


async def test_an_unsealed_snapshot_of_an_older_node_is_read_and_sealed(tmp_path: Path) -> None:
    coordinator = SigningKey.generate("c1")
    meta = LmdbMetadataStore.open(tmp_path / "meta", MAP)
    try:
        await meta.put_setting(POLICY_KEY, with_upstream(coordinator, 3).to_bytes())
        seal = SnapshotSeal.load(tmp_path / "auth")
        holder = await PolicyHolder.open(meta, KeySet(), with_upstream(coordinator, 1), seal=seal)
        assert holder.current.policy.version == 3  # the stored one, newer than the file
        assert holder.current.policy.upstreams[0]["password"] == PASSWORD
        raw = await meta.get_setting(POLICY_KEY)
        assert raw is not None and SnapshotSeal.is_sealed(raw)
        assert Policy.from_bytes(seal.open(raw)) == holder.current.policy
    finally:
        await meta.aclose()


async def test_a_wrong_key_file_refuses_to_open_and_names_the_file(tmp_path: Path) -> None:
    coordinator = SigningKey.generate("c1")
    key_file = tmp_path / "auth" / KEY_FILE
    meta = LmdbMetadataStore.open(tmp_path / "meta", MAP)
    try:
        seal = SnapshotSeal.load(tmp_path / "auth")
        await PolicyHolder.open(meta, KeySet(), with_upstream(coordinator, 1), seal=seal)
        key_file.unlink()
        other = SnapshotSeal.load(tmp_path / "auth")  # a new key, not the sealing one
        with pytest.raises(SealError, match=str(key_file)):
            await PolicyHolder.open(meta, KeySet(), seal=other)
        # a newer policy file does not paper over it either: the node stops
        with pytest.raises(SealError, match="does not open"):
            await PolicyHolder.open(meta, KeySet(), with_upstream(coordinator, 9), seal=other)
        with pytest.raises(SealError, match="no key file"):
            await PolicyHolder.open(meta, KeySet())
        # the stored snapshot is left as it was
        raw = await meta.get_setting(POLICY_KEY)
        assert raw is not None and Policy.from_bytes(seal.open(raw)).version == 1
    finally:
        await meta.aclose()


def test_an_unusable_key_file_is_a_clear_error(tmp_path: Path) -> None:
    key_file = tmp_path / "auth" / KEY_FILE
    SnapshotSeal.load(tmp_path / "auth")
    os.chmod(key_file, 0o644)
    with pytest.raises(SealError, match=f"{key_file}.*readable by others"):
        SnapshotSeal.load(tmp_path / "auth")
    os.chmod(key_file, 0o600)
    key_file.write_text("garbage\n")
    with pytest.raises(SealError, match=f"{key_file}.*line 1"):
        SnapshotSeal.load(tmp_path / "auth")


async def test_worker_processes_share_one_key_file(tmp_path: Path) -> None:
    seals: list[SnapshotSeal] = []

    async def load() -> None:
        seals.append(await trio.to_thread.run_sync(SnapshotSeal.load, tmp_path / "auth"))

    async with trio.open_nursery() as nursery:
        for _ in range(8):
            nursery.start_soon(load)
    sealed = seals[0].seal(b"snapshot")
    assert all(seal.open(sealed) == b"snapshot" for seal in seals)
    assert sorted(p.name for p in (tmp_path / "auth").iterdir()) == [KEY_FILE]


async def test_reload_keeps_serving_when_the_stored_snapshot_does_not_open(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    coordinator = SigningKey.generate("c1")
    meta = LmdbMetadataStore.open(tmp_path / "meta", MAP)
    try:
        seal = SnapshotSeal.load(tmp_path / "a")
        reader = await PolicyHolder.open(meta, KeySet(), with_upstream(coordinator, 1), seal=seal)
        stranger = SnapshotSeal.load(tmp_path / "b")
        await meta.put_setting(POLICY_KEY, stranger.seal(with_upstream(coordinator, 2).to_bytes()))
        with caplog.at_level(logging.ERROR, "portmesh.node.auth"):
            assert not await reader.reload()
        assert reader.current.policy.version == 1
        assert "keeping version 1" in caplog.text
        assert PASSWORD not in caplog.text
    finally:
        await meta.aclose()
