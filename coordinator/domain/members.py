"""Project members (Harbor's ``/projects/{p}/members`` semantics).

A member is a user (``entity_type`` 'u') or, later, a user group ('g') with one role in
one project. Listing joins the entity's name; ``entity_name`` filters by substring.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Row, and_, delete, insert, select, update

from coordinator.auth.rbac import Role, role_name
from coordinator.db.filters import fetch_page
from coordinator.db.schema import ID_MAX, members, now, users
from coordinator.errors import Conflict, Invalid, NotFound
from coordinator.query import ListQuery

__all__ = ["add", "check_role", "get", "list_members", "remove", "to_json", "update_role"]

_SELECT = select(members, users.c.username.label("entity_name")).select_from(
    members.outerjoin(
        users, and_(members.c.entity_type == "u", users.c.user_id == members.c.entity_id)
    )
)


def check_role(role_id: object) -> int:
    if isinstance(role_id, bool) or not isinstance(role_id, int):
        raise Invalid("role_id must be an integer")
    try:
        return int(Role(role_id))
    except ValueError as exc:
        raise Invalid(f"role_id must be one of {[int(r) for r in Role]}") from exc


def to_json(row: Row[Any]) -> dict[str, Any]:
    """A member as Harbor's ``ProjectMemberEntity``."""
    return {
        "id": row.id,
        "project_id": row.project_id,
        "entity_id": row.entity_id,
        "entity_type": row.entity_type,
        "entity_name": row.entity_name or "",
        "role_id": row.role_id,
        "role_name": role_name(row.role_id),
    }


def list_members(
    conn: Connection, project_id: int, query: ListQuery, entity_name: str | None = None
) -> tuple[int, list[Row[Any]]]:
    stmt = _SELECT.where(members.c.project_id == project_id)
    if entity_name:
        escaped = entity_name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        stmt = stmt.where(users.c.username.ilike(f"%{escaped}%", escape="\\"))
    columns = {"entity_name": users.c.username, "role_id": members.c.role_id}
    return fetch_page(conn, stmt, query, columns, members.c.id)


def get(conn: Connection, project_id: int, member_id: int) -> Row[Any]:
    row = conn.execute(
        _SELECT.where(members.c.project_id == project_id, members.c.id == member_id)
    ).first()
    if row is None:
        raise NotFound(f"member {member_id} not found in project {project_id}")
    return row


def _user_id(conn: Connection, member_user: Mapping[str, Any]) -> int:
    user_id = member_user.get("user_id")
    username = member_user.get("username")
    if isinstance(user_id, int) and not isinstance(user_id, bool) and 0 < user_id <= ID_MAX:
        clause = users.c.user_id == user_id
    elif isinstance(username, str) and username:
        clause = users.c.username == username
    else:
        raise Invalid("member_user needs user_id or username")
    found = conn.execute(select(users.c.user_id).where(clause)).scalar()
    if found is None:
        raise NotFound(f"user {user_id or username} not found")
    return int(found)


def add(conn: Connection, project_id: int, body: Mapping[str, Any]) -> int:
    """Add the ``member_user`` of a ``ProjectMember`` body; the new member's id."""
    role_id = check_role(body.get("role_id"))
    if body.get("member_group"):
        raise Invalid("user group members are not supported; add users with member_user")
    member_user = body.get("member_user")
    if not isinstance(member_user, dict):
        raise Invalid("member_user is required")
    user_id = _user_id(conn, member_user)
    taken = conn.execute(
        select(members.c.id).where(
            members.c.project_id == project_id,
            members.c.entity_type == "u",
            members.c.entity_id == user_id,
        )
    ).first()
    if taken:
        raise Conflict(f"user {user_id} is already a member of project {project_id}")
    stamp = now()
    result = conn.execute(
        insert(members).values(
            project_id=project_id,
            entity_type="u",
            entity_id=user_id,
            role_id=role_id,
            creation_time=stamp,
            update_time=stamp,
        )
    )
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def update_role(conn: Connection, project_id: int, member_id: int, role_id: object) -> None:
    role = check_role(role_id)
    get(conn, project_id, member_id)
    conn.execute(
        update(members).where(members.c.id == member_id).values(role_id=role, update_time=now())
    )


def remove(conn: Connection, project_id: int, member_id: int) -> Row[Any]:
    """Delete the membership; the removed row."""
    row = get(conn, project_id, member_id)
    conn.execute(delete(members).where(members.c.id == member_id))
    return row
