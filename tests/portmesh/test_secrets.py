"""Secrets at rest: key file creation and mode, seal/open, rotation, wrong keys, tampering."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from portmesh.secrets import PREFIX, SecretError, SecretKeys


def test_key_file_is_created_0600_and_values_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "secrets.key"
    keys = SecretKeys.load(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    sealed = keys.seal("hunter2 ✓")
    assert sealed.startswith(f"{PREFIX}:{keys.key_ids[0]}:")
    assert "hunter2" not in sealed and keys.seal("hunter2 ✓") != sealed  # fresh nonce
    assert keys.open(sealed) == "hunter2 ✓"
    again = SecretKeys.load(path)  # the same file: the same key
    assert again.key_ids == keys.key_ids and again.open(sealed) == "hunter2 ✓"
    assert "hunter2" not in repr(again) and path.read_text().split()[1] not in repr(again)


def test_rotation_seals_with_the_newest_and_opens_with_old_keys(tmp_path: Path) -> None:
    path = tmp_path / "secrets.key"
    keys = SecretKeys.load(path)
    old = keys.seal("old password")
    new_id = keys.rotate()
    new = keys.seal("new password")
    assert new.split(":")[1] == new_id != old.split(":")[1]
    reloaded = SecretKeys.load(path)
    assert reloaded.key_ids == [old.split(":")[1], new_id]
    assert reloaded.open(old) == "old password" and reloaded.open(new) == "new password"
    assert reloaded.seal("x").split(":")[1] == new_id
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_wrong_key_tampering_and_garbage_are_clear_errors(tmp_path: Path) -> None:
    keys = SecretKeys.load(tmp_path / "a.key")
    other = SecretKeys.load(tmp_path / "b.key")
    sealed = keys.seal("s3cret")
    with pytest.raises(SecretError, match="does not hold"):
        other.open(sealed)
    # a key file whose key has the same id but other bytes: the value does not authenticate
    forged = tmp_path / "c.key"
    os.close(os.open(forged, os.O_WRONLY | os.O_CREAT, 0o600))
    forged.write_text(keys.key_ids[0] + " " + (tmp_path / "b.key").read_text().split()[1] + "\n")
    with pytest.raises(SecretError, match="tampered or a wrong key"):
        SecretKeys.load(forged).open(sealed)
    head, data = sealed.rsplit(":", 1)
    flipped = data[:10] + ("A" if data[10] != "A" else "B") + data[11:]
    with pytest.raises(SecretError, match="tampered"):
        keys.open(f"{head}:{flipped}")
    for garbage in (
        "",
        "hunter2",
        "pm0:k:abc",
        f"{PREFIX}:{keys.key_ids[0]}:",
        f"{PREFIX}:{keys.key_ids[0]}:!!",
    ):
        with pytest.raises(SecretError) as info:
            keys.open(garbage)
        assert "s3cret" not in str(info.value)


def test_key_files_open_to_others_or_malformed_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "k"
    SecretKeys.load(path)
    path.chmod(0o644)
    with pytest.raises(SecretError, match="readable by others"):
        SecretKeys.load(path)
    path.chmod(0o600)
    path.write_text("just-one-field\n")
    with pytest.raises(SecretError, match="line 1"):
        SecretKeys.load(path)
    path.write_text("k1 c2hvcnQ\n")
    with pytest.raises(SecretError, match="32 bytes"):
        SecretKeys.load(path)
    path.write_text("\n")
    with pytest.raises(SecretError, match="no key"):
        SecretKeys.load(path)
