"""Robot accounts (Harbor's ``/robots``): validation, CRUD, and what nodes learn of them.

A robot is ``robot$<name>`` (level ``system``) or ``robot$<project>+<name>`` (level
``project``, bound to that project and deleted with it). Its ``permissions`` are Harbor's
``[{"kind": "project", "namespace": <project or "*">, "access": [{"resource", "action"}]}]``
(a project robot has exactly one, for its own project; ``kind: system`` entries with
namespace ``/`` are kept for system resources). ``duration`` is in days (-1: never
expires; 0 or absent: :data:`DEFAULT_DURATION_DAYS`); ``expires_at`` is Unix seconds
counted from the creation time, -1 for never.

The secret is generated (or given, under Harbor's secret rule) by the API layer, shown
once, and stored here as an argon2id hash only.

For the nodes' policy snapshot (``coordinator.policy_build.PolicySources``):

- :func:`policy_robots` ``(conn) -> list[portmesh.policy.Robot]``: every robot with its
  secret hash, ``disabled`` flag, ``expires_at`` (None: never) and its project
  permissions, so a node checks robot logins offline;
- :func:`policy_revoked` ``(conn) -> portmesh.policy.Revocations``: the names of disabled
  and expired robots and of robots deleted (``DELETE /robots/{id}``) less than
  :data:`TOMBSTONE_SECONDS` ago, so a node refuses the tokens they still hold. The
  robots of a deleted project go with it, without a tombstone: their project is gone.

Functions take a ``conn`` and run inside the caller's transaction (``db.run``).
"""

from __future__ import annotations

import json
import secrets
import string
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, delete, insert, or_, select, update

from coordinator.db.filters import fetch_page
from coordinator.db.schema import iso, now, robot_tombstones, robots, utc
from coordinator.errors import Conflict, NotFound
from coordinator.query import ListQuery
from coordinator.robot_rules import PREFIX, RobotSpec, check_update
from portmesh.access import Permission
from portmesh.policy import Revocations, Robot

__all__ = [
    "PREFIX",
    "TOMBSTONE_SECONDS",
    "create",
    "delete_robot",
    "generate_secret",
    "get",
    "get_by_name",
    "list_robots",
    "permissions_of",
    "policy_revoked",
    "policy_robots",
    "set_secret_hash",
    "to_json",
    "update_robot",
]

#: how long a deleted robot's name stays in the revocation list (longer than any token)
TOMBSTONE_SECONDS = 24 * 3600

_COLUMNS: Mapping[str, ColumnElement[Any]] = {
    "id": robots.c.id,
    "name": robots.c.name,
    "description": robots.c.description,
    "level": robots.c.level,
    "Level": robots.c.level,
    "project_id": robots.c.project_id,
    "ProjectID": robots.c.project_id,
    "disable": robots.c.disabled,
    "duration": robots.c.duration,
    "expires_at": robots.c.expires_at,
    "creation_time": robots.c.creation_time,
    "update_time": robots.c.update_time,
}


def generate_secret() -> str:
    """A random 32-character secret with upper- and lowercase letters and digits."""
    alphabet = string.ascii_letters + string.digits
    while True:
        value = "".join(secrets.choice(alphabet) for _ in range(32))
        if (
            any(c.isupper() for c in value)
            and any(c.islower() for c in value)
            and any(c.isdigit() for c in value)
        ):
            return value


def _expires_at(created: datetime, duration: int) -> int:
    if duration == -1:
        return -1
    return int((utc(created) + timedelta(days=duration)).timestamp())


def create(conn: Connection, spec: RobotSpec, secret_hash: str, creator_ref: int) -> Row[Any]:
    """Insert the robot of ``spec``; its row. Conflict when the name is taken."""
    if get_by_name(conn, spec.name) is not None:
        raise Conflict(f"robot account {spec.name} already exists")
    stamp = now()
    result = conn.execute(
        insert(robots).values(
            name=spec.name,
            description=spec.description,
            level=spec.level,
            project_id=spec.project_id,
            secret_hash=secret_hash,
            disabled=spec.disable,
            duration=spec.duration,
            expires_at=_expires_at(stamp, spec.duration),
            permissions=json.dumps(spec.permissions),
            creator_type="local",
            creator_ref=creator_ref,
            creation_time=stamp,
            update_time=stamp,
        )
    )
    conn.execute(delete(robot_tombstones).where(robot_tombstones.c.name == spec.name))
    return get(conn, int(result.inserted_primary_key[0]))  # type: ignore[index]


def get(conn: Connection, robot_id: int) -> Row[Any]:
    """The robot ``robot_id``; NotFound otherwise."""
    row = conn.execute(select(robots).where(robots.c.id == robot_id)).first()
    if row is None:
        raise NotFound(f"robot account {robot_id} not found")
    return row


def get_by_name(conn: Connection, name: str) -> Row[Any] | None:
    return conn.execute(select(robots).where(robots.c.name == name)).first()


def to_json(row: Row[Any]) -> dict[str, Any]:
    """A robot as Harbor's ``Robot`` (never with its secret)."""
    return {
        "id": row.id,
        "name": row.name,
        "description": row.description,
        "level": row.level,
        "duration": row.duration,
        "editable": True,
        "disable": bool(row.disabled),
        "expires_at": row.expires_at,
        "permissions": json.loads(row.permissions),
        "creator_type": row.creator_type,
        "creator_ref": row.creator_ref,
        "creation_time": iso(row.creation_time),
        "update_time": iso(row.update_time),
    }


def list_robots(
    conn: Connection, query: ListQuery, *, project_ids: list[int] | None = None
) -> tuple[int, list[Row[Any]]]:
    """(total, page of robots) matching ``query``; only robots of ``project_ids`` when
    given (a caller who is no system administrator sees those of its projects)."""
    stmt = select(robots)
    if project_ids is not None:
        stmt = stmt.where(robots.c.project_id.in_(project_ids))
    return fetch_page(conn, stmt, query, _COLUMNS, robots.c.id)


def update_robot(conn: Connection, robot_id: int, body: Mapping[str, Any]) -> Row[Any]:
    """Apply ``PUT /robots/{id}`` (description, disable, duration, permissions); the
    updated row. Invalid for a changed name or level or a bad permission list."""
    row = get(conn, robot_id)
    changes = check_update(conn, row, body)
    values: dict[str, Any] = {"update_time": now()}
    if "description" in changes:
        values["description"] = changes["description"]
    if "disable" in changes:
        values["disabled"] = changes["disable"]
    if "duration" in changes:
        values["duration"] = changes["duration"]
        values["expires_at"] = _expires_at(row.creation_time, changes["duration"])
    if "permissions" in changes:
        values["permissions"] = json.dumps(changes["permissions"])
    conn.execute(update(robots).where(robots.c.id == robot_id).values(**values))
    return get(conn, robot_id)


def set_secret_hash(conn: Connection, robot_id: int, secret_hash: str) -> Row[Any]:
    get(conn, robot_id)
    conn.execute(
        update(robots)
        .where(robots.c.id == robot_id)
        .values(secret_hash=secret_hash, update_time=now())
    )
    return get(conn, robot_id)


def delete_robot(conn: Connection, robot_id: int) -> Row[Any]:
    """Delete a robot and remember its name as revoked; the deleted row."""
    row = get(conn, robot_id)
    stamp = now()
    conn.execute(delete(robots).where(robots.c.id == robot_id))
    conn.execute(
        delete(robot_tombstones).where(
            or_(
                robot_tombstones.c.name == row.name,
                robot_tombstones.c.deleted_at < stamp - timedelta(seconds=TOMBSTONE_SECONDS),
            )
        )
    )
    conn.execute(insert(robot_tombstones).values(name=row.name, deleted_at=stamp))
    return row


def permissions_of(row: Row[Any], kind: str = "project") -> tuple[Permission, ...]:
    """The robot's permissions of ``kind`` (``project``, or ``system``: namespace ``/``)
    as ``portmesh.access`` permissions, one per (namespace, resource)."""
    merged: dict[tuple[str, str], set[str]] = {}
    for entry in json.loads(row.permissions):
        if entry.get("kind") != kind:
            continue
        for access in entry.get("access", []):
            key = (str(entry["namespace"]), str(access["resource"]))
            merged.setdefault(key, set()).add(str(access["action"]))
    return tuple(
        Permission(namespace, resource, tuple(sorted(actions)))
        for (namespace, resource), actions in sorted(merged.items())
    )


def _expiry(row: Row[Any]) -> float | None:
    return None if row.expires_at == -1 else float(row.expires_at)


def policy_robots(conn: Connection) -> list[Robot]:
    """Every robot account as the nodes' snapshot carries it (see the module docstring)."""
    rows = conn.execute(select(robots).order_by(robots.c.name)).all()
    return [
        Robot(
            name=str(row.name),
            secret_hash=str(row.secret_hash),
            disabled=bool(row.disabled),
            expires_at=_expiry(row),
            permissions=permissions_of(row),
        )
        for row in rows
    ]


def policy_revoked(conn: Connection, *, at: datetime | None = None) -> Revocations:
    """Robots whose tokens nodes must refuse: disabled, expired, recently deleted."""
    stamp = at or now()
    names = {
        str(name)
        for name in conn.execute(
            select(robots.c.name).where(
                or_(
                    robots.c.disabled.is_(True),
                    (robots.c.expires_at != -1) & (robots.c.expires_at <= int(stamp.timestamp())),
                )
            )
        ).scalars()
    }
    cutoff = stamp - timedelta(seconds=TOMBSTONE_SECONDS)
    names |= {
        str(name)
        for name in conn.execute(
            select(robot_tombstones.c.name).where(robot_tombstones.c.deleted_at >= cutoff)
        ).scalars()
    }
    return Revocations(robots=frozenset(names))
