"""What handlers depend on, built once by ``coordinator.app`` and passed to every
``blueprint(services)``: no module-level state."""

from __future__ import annotations

from dataclasses import dataclass

from coordinator.audit import AuditSink
from coordinator.auth.principal import Authenticator
from coordinator.config import CoordinatorConfig
from coordinator.db.engine import Database

__all__ = ["Services"]


@dataclass(frozen=True)
class Services:
    config: CoordinatorConfig
    db: Database
    authenticator: Authenticator
    audit: AuditSink
