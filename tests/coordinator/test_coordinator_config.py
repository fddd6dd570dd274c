"""Unit tests of ``CoordinatorConfig``: defaults, validation, secrets kept out of repr."""

from __future__ import annotations

from pathlib import Path

import pytest

from coordinator.config import ConfigError, CoordinatorConfig
from coordinator.db.engine import Database


def test_defaults_and_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTMESH_ADMIN_PASSWORD", "S3cretAdminPw")
    config = CoordinatorConfig.from_env(tmp_path)
    assert config.admin_password == "S3cretAdminPw"
    assert "S3cretAdminPw" not in repr(config)
    assert config.db_url == f"sqlite:///{tmp_path / 'coordinator.db'}"
    assert config.url == "http://127.0.0.1:8080"
    db = Database("postgresql+psycopg://postgres:hunter2@127.0.0.1:5432/x")
    try:
        assert "hunter2" not in repr(db)
    finally:
        db.close()


@pytest.mark.parametrize(
    "kwargs",
    [{"listen": "nope"}, {"listen": ":80"}, {"project_creation_restriction": "sometimes"}],
)
def test_invalid(tmp_path: Path, kwargs: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        CoordinatorConfig(data=tmp_path, **kwargs)  # type: ignore[arg-type]
