"""What the coordinator tests share besides fixtures: the running server's handle.

Test modules import ``Coordinator`` from here (not from conftest, whose module name is
ambiguous in a suite with several conftest files).
"""

from __future__ import annotations

from dataclasses import dataclass

from coordinator.config import CoordinatorConfig

__all__ = ["ADMIN_PASSWORD", "Coordinator"]

ADMIN_PASSWORD = "Harbor12345"


@dataclass(frozen=True)
class Coordinator:
    url: str  # http://127.0.0.1:PORT
    config: CoordinatorConfig
    admin_password: str = ADMIN_PASSWORD

    @property
    def api(self) -> str:
        return f"{self.url}/api/v2.0"
