"""Auth settings: the [auth] table, CLI flags, and the refusals before anything opens."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.config import ConfigError, load_config
from portmesh.cli import main


def test_auth_table_then_flags(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text(
        '[auth]\ncoordinator_url = "http://coord:8080"\nservice = "edge-1"\ntoken_ttl = 60\n'
    )
    config = load_config(path, {"service": "edge-9", "policy_file": None})
    assert config.auth.coordinator_url == "http://coord:8080"
    assert config.auth.service == "edge-9"  # the flag wins
    assert config.auth.token_ttl == 60
    assert config.auth.enabled
    assert not load_config(None).auth.enabled


def test_unknown_auth_setting(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text('[auth]\nrealm = "x"\n')
    with pytest.raises(ConfigError, match="unknown auth settings: realm"):
        load_config(path)


def test_no_auth_conflicts_with_auth_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        "node",
        "--listen",
        "127.0.0.1:0",
        "--data",
        str(tmp_path / "d"),
        "--no-auth",
        "--coordinator-url",
        "http://coord",
    ]
    assert main(args) == 2
    assert "conflicts" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_unreadable_policy_file_is_refused_before_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "policy.json"
    bad.write_text('{"version": 1}')
    args = [
        "node",
        "--listen",
        "127.0.0.1:0",
        "--data",
        str(tmp_path / "d"),
        "--policy-file",
        str(bad),
    ]
    assert main(args) == 2
    assert "invalid policy snapshot" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()
