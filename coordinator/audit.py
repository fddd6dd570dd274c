"""The audit hook: every mutating API call records one row.

``AuditSink`` is the protocol; ``DatabaseAuditSink`` writes ``audit_log`` rows. The API
layer calls ``record`` once per unsafe request (POST/PUT/PATCH/DELETE) that a handler
marked with ``api.http.audited``, after the response is known, so failures are recorded
too (``result`` False). Further sinks (webhooks, syslog) wrap or replace it in
``coordinator.app``. Node events add rows of their own (``coordinator.events``).

Reading: :func:`list_logs` is ``GET /audit-logs`` and ``/projects/{p}/logs`` (Harbor's
``AuditLog``: id, username, resource, resource_type, operation, op_time), filtered by
``q`` over those keys. Retention: :func:`purge` deletes rows older than a cutoff;
:func:`run_purge` is the housekeeping task that applies ``audit_log_retention_hours``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import trio
from sqlalchemy import ColumnElement, Connection, delete, insert, select

from coordinator.auth import rbac
from coordinator.db.engine import Database
from coordinator.db.filters import fetch_page
from coordinator.db.schema import audit_log, iso, members, now
from coordinator.query import ListQuery

__all__ = [
    "PURGE_INTERVAL",
    "AuditEntry",
    "AuditSink",
    "DatabaseAuditSink",
    "insert_entry",
    "list_logs",
    "purge",
    "run_purge",
    "to_json",
]

log = logging.getLogger("portmesh.coordinator.audit")

#: how often the housekeeping task purges expired audit rows (seconds)
PURGE_INTERVAL = 3600.0


@dataclass(frozen=True)
class AuditEntry:
    """One audited operation. ``operation`` is create, update or delete; ``resource`` is
    the name the operation was about (``library``, ``library/member/alice``)."""

    username: str
    operation: str
    resource_type: str
    resource: str
    result: bool
    project_id: int | None = None
    op_time: datetime = field(default_factory=now)


class AuditSink(Protocol):
    async def record(self, entry: AuditEntry) -> None: ...


def insert_entry(conn: Connection, entry: AuditEntry) -> None:
    """Write one audit row in the caller's transaction."""
    conn.execute(
        insert(audit_log).values(
            project_id=entry.project_id,
            op_time=entry.op_time,
            username=entry.username,
            operation=entry.operation,
            resource_type=entry.resource_type,
            resource=entry.resource[:1024],
            result=entry.result,
        )
    )


class DatabaseAuditSink:
    """Writes entries into ``audit_log``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(self, entry: AuditEntry) -> None:
        await self._db.run(insert_entry, entry)


_COLUMNS: Mapping[str, ColumnElement[Any]] = {
    "id": audit_log.c.id,
    "username": audit_log.c.username,
    "operation": audit_log.c.operation,
    "resource": audit_log.c.resource,
    "resource_type": audit_log.c.resource_type,
    "op_time": audit_log.c.op_time,
    "project_id": audit_log.c.project_id,
}


def to_json(row: Any) -> dict[str, Any]:
    """An audit row as Harbor's ``AuditLog``."""
    return {
        "id": row.id,
        "username": row.username,
        "resource": row.resource,
        "resource_type": row.resource_type,
        "operation": row.operation,
        "op_time": iso(row.op_time),
    }


def list_logs(
    conn: Connection,
    query: ListQuery,
    *,
    project_id: int | None = None,
    member: int | None = None,
) -> tuple[int, list[dict[str, Any]]]:
    """(total, page) of audit rows matching ``query``, newest first unless sorted
    otherwise: those of ``project_id``, else those of the projects where user ``member``
    holds a role that may list logs (not a limitedGuest), else every row."""
    stmt = select(audit_log)
    if project_id is not None:
        stmt = stmt.where(audit_log.c.project_id == project_id)
    elif member is not None:
        readers = [int(role) for role in rbac.Role if rbac.allowed(role, "log", "list")]
        mine = select(members.c.project_id).where(
            members.c.entity_type == "u",
            members.c.entity_id == member,
            members.c.role_id.in_(readers),
        )
        stmt = stmt.where(audit_log.c.project_id.in_(mine))
    total, rows = fetch_page(conn, stmt, query, _COLUMNS, audit_log.c.id.desc())
    return total, [to_json(row) for row in rows]


def purge(conn: Connection, before: datetime) -> int:
    """Delete audit rows older than ``before``; how many."""
    return int(conn.execute(delete(audit_log).where(audit_log.c.op_time < before)).rowcount)


async def run_purge(
    db: Database,
    retention_hours: int,
    *,
    interval: float = PURGE_INTERVAL,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Every ``interval`` seconds (first right away), delete audit rows older than
    ``retention_hours``; ``retention_hours`` 0 keeps them forever (the task just waits).
    Runs until cancelled; a failed purge is logged and tried again next time."""
    task_status.started()
    if retention_hours <= 0:
        await trio.sleep_forever()
    while True:
        cutoff = now() - timedelta(hours=retention_hours)
        try:
            removed = await db.run(purge, cutoff)
        except Exception:
            log.exception("audit log purge failed")
        else:
            if removed:
                log.info("purged %d audit log rows older than %s", removed, iso(cutoff))
        await trio.sleep(interval)
