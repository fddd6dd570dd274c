"""``/audit-logs`` and ``/projects/{p}/logs``: the audit log (Harbor's ``AuditLog``).

``GET /audit-logs``: every entry for a system administrator; for anybody else signed in,
the entries of the projects where their role holds ``log:list`` (as Harbor). ``GET
/projects/{p}/logs``: one project's entries, for its members (permission ``log:list``).
Both take ``q`` over ``operation``, ``resource``, ``resource_type``, ``username`` and
``op_time`` (``op_time=[2026-01-01 00:00:00~2026-12-31 23:59:59]``), ``sort`` and
pagination.
"""

from __future__ import annotations

from quart import Blueprint, Response

from coordinator import audit
from coordinator.api.access import holds_system, project_access, require_user
from coordinator.api.http import API_PREFIX, list_query, paged, principal
from coordinator.api.services import Services

__all__ = ["blueprint"]


def blueprint(services: Services) -> Blueprint:
    bp = Blueprint("audit_logs", __name__, url_prefix=API_PREFIX)
    db = services.db

    @bp.get("/audit-logs")
    async def list_all() -> Response:
        caller = principal()
        require_user(caller)
        query = list_query()
        # -1 matches nobody: a caller without a user id (robots) is a member of nothing
        every = caller.sysadmin or holds_system(caller, "audit-log", "list")
        member = None if every else (caller.user_id or -1)
        total, items = await db.run(lambda conn: audit.list_logs(conn, query, member=member))
        return paged(items, total, query)

    @bp.get("/projects/<ref>/logs")
    async def project_logs(ref: str) -> Response:
        access = await project_access(db, principal(), ref, "log", "list")
        query = list_query()
        total, items = await db.run(
            lambda conn: audit.list_logs(conn, query, project_id=access.project_id)
        )
        return paged(items, total, query)

    return bp
