"""The policy holder keeps the last snapshot in LMDB; the node key survives restarts."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from auth_fixtures import make_policy

from node.auth.holder import POLICY_KEY, PolicyHolder
from node.auth.nodekey import load_node_key
from node.storage.lmdb_meta import LmdbMetadataStore
from portmesh.policy import PolicyError
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
        "setup",
        "token_service",
    ):
        module = importlib.import_module(f"node.auth.{name}")
        for exported in module.__all__:
            assert hasattr(module, exported), (name, exported)
