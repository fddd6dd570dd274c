"""Projects and their metadata (Harbor's ``/projects`` semantics).

A project is public when its metadata has ``public: "true"``; metadata values are strings
as in Harbor (booleans are ``"true"``/``"false"``). The creator becomes the project's
first member with role projectAdmin. Visibility: a system administrator sees every
project, anybody else sees public projects and those they are a member of; an invisible
project is reported as not found.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Row,
    and_,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)

from coordinator.auth.rbac import Role
from coordinator.db.filters import fetch_page
from coordinator.db.schema import (
    ID_MAX,
    iso,
    members,
    now,
    project_metadata,
    projects,
    repositories,
    users,
)
from coordinator.errors import Conflict, Invalid, NotFound
from coordinator.query import ListQuery
from coordinator.registries import require_registry

__all__ = [
    "METADATA_KEYS",
    "check_metadata",
    "check_name",
    "counts",
    "create",
    "delete_metadata",
    "delete_project",
    "exists_by_name",
    "is_public",
    "list_projects",
    "metadata_of",
    "resolve",
    "role_of",
    "set_metadata",
    "summary",
    "to_json",
    "update_project",
]

_NAME = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*\Z")
_BOOL_KEYS = frozenset(
    {
        "public",
        "enable_content_trust",
        "enable_content_trust_cosign",
        "prevent_vul",
        "auto_scan",
        "auto_sbom_generation",
        "reuse_sys_cve_allowlist",
    }
)
_SEVERITIES = frozenset({"none", "low", "medium", "high", "critical"})
METADATA_KEYS = _BOOL_KEYS | {"severity", "retention_id", "proxy_speed_kb"}

_PUBLIC = exists().where(
    project_metadata.c.project_id == projects.c.project_id,
    project_metadata.c.name == "public",
    project_metadata.c.value == "true",
)

_OWNER = users.alias("owner")
_COLUMNS: Mapping[str, ColumnElement[Any]] = {
    "project_id": projects.c.project_id,
    "name": projects.c.name,
    "owner_id": projects.c.owner_id,
    "owner_name": _OWNER.c.username,
    "registry_id": projects.c.registry_id,
    "public": _PUBLIC,
    "creation_time": projects.c.creation_time,
    "update_time": projects.c.update_time,
}
_SELECT = select(projects, _OWNER.c.username.label("owner_name")).select_from(
    projects.outerjoin(_OWNER, _OWNER.c.user_id == projects.c.owner_id)
)


def check_name(name: object) -> str:
    if not isinstance(name, str) or not 1 <= len(name) <= 255 or not _NAME.match(name):
        raise Invalid(
            f"invalid project name {name!r}: lowercase letters, digits and . _ - separators"
        )
    return name


def _metadata_value(key: str, value: object) -> str:
    if key not in METADATA_KEYS:
        raise Invalid(f"unknown project metadata {key!r}")
    text = str(value).lower() if isinstance(value, bool) else value
    if not isinstance(text, str):
        raise Invalid(f"metadata {key} must be a string")
    if key in _BOOL_KEYS and text not in ("true", "false"):
        raise Invalid(f"metadata {key} must be 'true' or 'false'")
    if key == "severity" and text not in _SEVERITIES:
        raise Invalid(f"metadata severity must be one of {', '.join(sorted(_SEVERITIES))}")
    if key in ("retention_id", "proxy_speed_kb") and not re.fullmatch(r"-?\d+", text):
        raise Invalid(f"metadata {key} must be an integer")
    return text


def check_metadata(values: object) -> dict[str, str]:
    """Validated, normalised metadata (Invalid for unknown keys or bad values)."""
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise Invalid("metadata must be an object")
    return {key: _metadata_value(key, value) for key, value in values.items() if value is not None}


def _check_limit(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not -1 <= value < 2**63:
        raise Invalid("storage_limit must be -1 (unlimited) or a number of bytes")
    return value


def set_metadata(conn: Connection, project_id: int, values: Mapping[str, str]) -> None:
    """Insert or replace metadata entries (already validated)."""
    stamp = now()
    for key, value in values.items():
        changed = conn.execute(
            update(project_metadata)
            .where(project_metadata.c.project_id == project_id, project_metadata.c.name == key)
            .values(value=value, update_time=stamp)
        ).rowcount
        if not changed:
            conn.execute(
                insert(project_metadata).values(
                    project_id=project_id,
                    name=key,
                    value=value,
                    creation_time=stamp,
                    update_time=stamp,
                )
            )


def delete_metadata(conn: Connection, project_id: int, key: str) -> None:
    gone = conn.execute(
        delete(project_metadata).where(
            project_metadata.c.project_id == project_id, project_metadata.c.name == key
        )
    ).rowcount
    if not gone:
        raise NotFound(f"metadata {key} not found")


def metadata_of(conn: Connection, project_ids: Iterable[int]) -> dict[int, dict[str, str]]:
    result: dict[int, dict[str, str]] = {}
    ids = list(project_ids)
    rows = conn.execute(
        select(
            project_metadata.c.project_id, project_metadata.c.name, project_metadata.c.value
        ).where(project_metadata.c.project_id.in_(ids))
    )
    for pid, name, value in rows:
        result.setdefault(pid, {})[name] = value
    return result


def create(
    conn: Connection,
    name: str,
    owner_id: int,
    *,
    metadata: Mapping[str, str],
    storage_limit: object = -1,
    registry_id: object = None,
) -> int:
    """Insert a project owned by ``owner_id`` (who becomes projectAdmin); its id."""
    name = check_name(name)
    limit = _check_limit(storage_limit if storage_limit is not None else -1)
    if registry_id is not None:
        require_registry(conn, registry_id)  # a proxy cache of an existing registry
    if exists_by_name(conn, name):
        raise Conflict(f"the project named {name} already exists")
    stamp = now()
    project_id = int(
        conn.execute(
            insert(projects).values(
                name=name,
                owner_id=owner_id,
                registry_id=registry_id,
                storage_limit=limit,
                creation_time=stamp,
                update_time=stamp,
            )
        ).inserted_primary_key[0]  # type: ignore[index]
    )
    set_metadata(conn, project_id, {"public": "false", **metadata})
    conn.execute(
        insert(members).values(
            project_id=project_id,
            entity_type="u",
            entity_id=owner_id,
            role_id=int(Role.PROJECT_ADMIN),
            creation_time=stamp,
            update_time=stamp,
        )
    )
    return project_id


def exists_by_name(conn: Connection, name: str) -> bool:
    return (
        conn.execute(select(projects.c.project_id).where(projects.c.name == name)).first()
        is not None
    )


def resolve(conn: Connection, ref: str, *, is_name: bool) -> Row[Any]:
    """The project named ``ref`` (or with id ``ref`` when it is numeric and not ``is_name``)."""
    if not is_name and ref.isascii() and ref.isdigit():
        project_id = int(ref)
        if project_id > ID_MAX:
            raise NotFound(f"project {ref} not found")
        clause = projects.c.project_id == project_id
    else:
        clause = projects.c.name == ref
    row = conn.execute(_SELECT.where(clause)).first()
    if row is None:
        raise NotFound(f"project {ref} not found")
    return row


def role_of(conn: Connection, project_id: int, user_id: int | None) -> int | None:
    """The user's role id in the project, or None when not a member."""
    if user_id is None:
        return None
    role = conn.execute(
        select(members.c.role_id).where(
            members.c.project_id == project_id,
            members.c.entity_type == "u",
            members.c.entity_id == user_id,
        )
    ).scalar()
    return int(role) if role is not None else None


def is_public(conn: Connection, project_id: int) -> bool:
    return metadata_of(conn, [project_id]).get(project_id, {}).get("public") == "true"


def to_json(row: Row[Any], metadata: Mapping[str, str], role: int | None) -> dict[str, Any]:
    """A project as Harbor's ``Project``."""
    body: dict[str, Any] = {
        "project_id": row.project_id,
        "name": row.name,
        "owner_id": row.owner_id,
        "owner_name": row.owner_name or "",
        "registry_id": row.registry_id,
        "creation_time": iso(row.creation_time),
        "update_time": iso(row.update_time),
        "deleted": False,
        "togglable": True,
        "repo_count": 0,
        "metadata": dict(metadata),
        "current_user_role_id": role or 0,
        "current_user_role_ids": [role] if role else [],
    }
    if body["registry_id"] is None:
        del body["registry_id"]
    return body


def list_projects(
    conn: Connection,
    query: ListQuery,
    *,
    user_id: int | None,
    sysadmin: bool,
) -> tuple[int, list[dict[str, Any]]]:
    """(total, page of projects as JSON) visible to the caller and matching ``query``."""
    stmt = _SELECT
    if not sysadmin:
        member = exists().where(
            members.c.project_id == projects.c.project_id,
            members.c.entity_type == "u",
            members.c.entity_id == user_id,
        )
        stmt = stmt.where(or_(_PUBLIC, member) if user_id is not None else _PUBLIC)
    total, rows = fetch_page(conn, stmt, query, _COLUMNS, projects.c.project_id)
    ids = [row.project_id for row in rows]
    meta = metadata_of(conn, ids)
    roles: dict[int, int] = {}
    if user_id is not None and ids:
        roles = dict(
            conn.execute(
                select(members.c.project_id, members.c.role_id).where(
                    and_(
                        members.c.project_id.in_(ids),
                        members.c.entity_type == "u",
                        members.c.entity_id == user_id,
                    )
                )
            ).all()
        )
    return total, [to_json(r, meta.get(r.project_id, {}), roles.get(r.project_id)) for r in rows]


def update_project(conn: Connection, project_id: int, body: Mapping[str, Any]) -> None:
    """Apply a ``ProjectReq``: metadata (merged), ``public``, ``storage_limit``."""
    values = check_metadata(body.get("metadata"))
    if isinstance(body.get("public"), bool) and "public" not in values:
        values["public"] = "true" if body["public"] else "false"
    changes: dict[str, Any] = {"update_time": now()}
    if body.get("storage_limit") is not None:
        changes["storage_limit"] = _check_limit(body["storage_limit"])
    conn.execute(update(projects).where(projects.c.project_id == project_id).values(**changes))
    set_metadata(conn, project_id, values)


def delete_project(conn: Connection, project_id: int) -> None:
    conn.execute(delete(projects).where(projects.c.project_id == project_id))


def summary(conn: Connection, row: Row[Any], *, with_members: bool) -> dict[str, Any]:
    """Harbor's ``ProjectSummary`` (repositories as the nodes reported them)."""
    repo_count = conn.execute(
        select(func.count()).where(repositories.c.project_id == row.project_id)
    ).scalar_one()
    body: dict[str, Any] = {
        "repo_count": int(repo_count),
        "quota": {"hard": {"storage": row.storage_limit}, "used": {"storage": 0}},
    }
    if with_members:
        counts: dict[int, int] = dict(
            conn.execute(
                select(members.c.role_id, func.count())
                .where(members.c.project_id == row.project_id)
                .group_by(members.c.role_id)
            ).all()
        )
        body.update(
            project_admin_count=counts.get(int(Role.PROJECT_ADMIN), 0),
            maintainer_count=counts.get(int(Role.MAINTAINER), 0),
            developer_count=counts.get(int(Role.DEVELOPER), 0),
            guest_count=counts.get(int(Role.GUEST), 0),
            limited_guest_count=counts.get(int(Role.LIMITED_GUEST), 0),
        )
    return body


def counts(conn: Connection, user_id: int | None, sysadmin: bool) -> dict[str, int]:
    """Project counts for ``/statistics``: public ones, and the private ones the caller can
    see (all of them for a system administrator)."""
    public = conn.execute(select(func.count()).select_from(projects).where(_PUBLIC)).scalar_one()
    private = select(func.count()).select_from(projects).where(~_PUBLIC)
    if not sysadmin:
        private = private.where(
            exists().where(
                members.c.project_id == projects.c.project_id,
                members.c.entity_type == "u",
                members.c.entity_id == user_id,
            )
        )
    hidden = int(conn.execute(private).scalar_one())
    return {"public": int(public), "private": hidden, "total": int(public) + hidden}
