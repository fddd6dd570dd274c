"""What the route table cannot say about each operation: summary, Harbor's operationId,
extra query parameters, request and response bodies (``op.Op``). Keyed by the handler's
endpoint (``blueprint.function``); a route without an entry is still documented, from
the route table alone (``coordinator.openapi.document``).
"""

from __future__ import annotations

from coordinator.openapi.catalog_core import CORE
from coordinator.openapi.catalog_more import MORE
from coordinator.openapi.op import Op, QueryParam

__all__ = ["OPERATIONS", "Op", "QueryParam"]

OPERATIONS: dict[str, Op] = {**CORE, **MORE}
