"""The coordinator's configuration: where it listens, where its data and database live.

``CoordinatorConfig`` is a frozen value built by the CLI (or a test) and handed to
``coordinator.app.serve``; nothing reads the environment after that, except
``from_env`` which is the one place that does (``PORTMESH_ADMIN_PASSWORD``).
The admin password is kept out of ``repr`` so the config can be logged safely.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ADMIN_PASSWORD_ENV", "ConfigError", "CoordinatorConfig"]

ADMIN_PASSWORD_ENV = "PORTMESH_ADMIN_PASSWORD"


class ConfigError(ValueError):
    """A setting is missing or malformed."""


@dataclass(frozen=True)
class CoordinatorConfig:
    """Settings of one coordinator process.

    ``database_url`` defaults to SQLite at ``<data>/coordinator.db``; PostgreSQL is
    ``postgresql+psycopg://user@host:port/dbname``. ``admin_password`` is used once, when
    the first start creates the ``admin`` user; without it a password is generated and
    printed to stderr. ``external_url`` is how clients reach the API (``/systeminfo``).
    """

    data: Path
    listen: str = "127.0.0.1:8080"
    database_url: str | None = None
    admin_password: str | None = field(default=None, repr=False)
    external_url: str | None = None
    session_ttl: float = 8 * 3600.0
    project_creation_restriction: str = "everyone"  # or "adminonly", as Harbor
    #: audit log entries older than this are purged hourly; 0 keeps them forever
    audit_log_retention_hours: int = 0
    #: lifetime of registry tokens from ``/service/token`` (seconds; Harbor's is 30 min)
    token_ttl: int = 1800

    def __post_init__(self) -> None:
        host, sep, port = self.listen.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ConfigError(f"listen must be HOST:PORT, got {self.listen!r}")
        if self.project_creation_restriction not in ("everyone", "adminonly"):
            raise ConfigError("project_creation_restriction must be 'everyone' or 'adminonly'")
        if self.audit_log_retention_hours < 0:
            raise ConfigError("audit_log_retention_hours must be 0 (keep) or more")
        if not 10 <= self.token_ttl <= 86400:
            raise ConfigError("token_ttl must be between 10 seconds and one day")

    @property
    def db_url(self) -> str:
        """The SQLAlchemy URL of the database."""
        return self.database_url or f"sqlite:///{self.data / 'coordinator.db'}"

    @property
    def url(self) -> str:
        """The external base URL (``http://listen`` unless configured)."""
        return (self.external_url or f"http://{self.listen}").rstrip("/")

    @classmethod
    def from_env(
        cls,
        data: Path,
        listen: str = "127.0.0.1:8080",
        database_url: str | None = None,
        *,
        external_url: str | None = None,
    ) -> CoordinatorConfig:
        """A config whose admin password comes from ``PORTMESH_ADMIN_PASSWORD``."""
        return cls(
            data=data,
            listen=listen,
            database_url=database_url,
            admin_password=os.environ.get(ADMIN_PASSWORD_ENV) or None,
            external_url=external_url,
        )
