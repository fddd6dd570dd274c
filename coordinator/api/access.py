"""Access checks handlers call before acting.

``require_user`` (401 for anonymous), ``require_sysadmin`` (401/403) and
``project_access``, which resolves ``{project_name_or_id}`` (honouring
``X-Is-Resource-Name``), hides invisible projects behind 404 and asks
``auth.rbac.allowed`` for (resource, action): 401 for an anonymous caller, 403 for a
signed-in one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from quart import request
from sqlalchemy import Connection, Row

from coordinator.api.http import APIError
from coordinator.auth import rbac
from coordinator.auth.principal import Principal
from coordinator.db.engine import Database
from coordinator.domain import projects

__all__ = [
    "ProjectAccess",
    "can",
    "holds_system",
    "is_name_header",
    "project_access",
    "require_sysadmin",
    "require_system",
    "require_user",
    "within_own",
]

#: the namespace of a robot's system permissions (Harbor's ``kind: system``)
SYSTEM_NAMESPACE = "/"


def require_user(caller: Principal) -> None:
    if caller.anonymous:
        raise APIError(401, "authentication is required")


def require_sysadmin(caller: Principal) -> None:
    require_user(caller)
    if not caller.sysadmin:
        raise APIError(403, "only system administrators may do this")


def require_system(caller: Principal, resource: str, action: str) -> None:
    """A system administrator, or a robot holding ``action`` on the system ``resource``
    (a ``kind: system`` permission, namespace ``/``); 401/403 otherwise."""
    require_user(caller)
    if caller.sysadmin or holds_system(caller, resource, action):
        return
    raise APIError(403, f"not allowed to {action} {resource}")


def holds_system(caller: Principal, resource: str, action: str) -> bool:
    return caller.kind == "robot" and any(
        p.namespace == SYSTEM_NAMESPACE
        and p.resource == resource
        and (action in p.actions or "*" in p.actions)
        for p in caller.permissions
    )


def within_own(caller: Principal, permissions: object) -> bool:
    """Whether ``caller`` holds every permission of a robot it creates or updates (a
    robot never hands out more than it has; users are checked by role instead). Entries
    that are malformed are left for the request's own validation to refuse."""
    if caller.kind != "robot" or not isinstance(permissions, list):
        return True
    for entry in permissions:
        if not isinstance(entry, dict) or not isinstance(entry.get("access"), list):
            continue
        namespace = str(entry.get("namespace"))
        for item in entry["access"]:
            if not isinstance(item, dict):
                continue
            resource, action = str(item.get("resource")), str(item.get("action"))
            if entry.get("kind") == "system":
                held = holds_system(caller, resource, action)
            else:
                held = any(
                    p.namespace == "*" or p.namespace == namespace != "*"
                    for p in caller.permissions
                    if p.resource == resource and (action in p.actions or "*" in p.actions)
                )
            if not held:
                return False
    return True


def is_name_header() -> bool:
    return request.headers.get("X-Is-Resource-Name", "").lower() == "true"


@dataclass(frozen=True)
class ProjectAccess:
    """A project the caller may act on, with the caller's role in it (None: no member)."""

    row: Row[Any]
    role: int | None
    public: bool
    metadata: dict[str, str]

    @property
    def project_id(self) -> int:
        return int(self.row.project_id)

    @property
    def name(self) -> str:
        return str(self.row.name)


def _load(conn: Connection, ref: str, is_name: bool, user_id: int | None) -> ProjectAccess:
    row = projects.resolve(conn, ref, is_name=is_name)
    meta = projects.metadata_of(conn, [row.project_id]).get(row.project_id, {})
    role = projects.role_of(conn, row.project_id, user_id)
    return ProjectAccess(row, role, meta.get("public") == "true", meta)


def _robot_holds(caller: Principal, project: str, resource: str, action: str) -> bool:
    """Whether a robot caller's permissions give ``action`` on ``resource`` in ``project``."""
    return any(
        p.namespace in ("*", project)
        and p.resource == resource
        and (action in p.actions or "*" in p.actions)
        for p in caller.permissions
    )


def can(caller: Principal, access: ProjectAccess, resource: str, action: str) -> bool:
    if caller.kind == "robot" and _robot_holds(caller, access.name, resource, action):
        return True
    return caller.sysadmin or rbac.allowed(access.role, resource, action, public=access.public)


async def project_access(
    db: Database,
    caller: Principal,
    ref: str,
    resource: str,
    action: str,
    *,
    is_name: bool | None = None,
) -> ProjectAccess:
    """The project ``ref`` if ``caller`` may ``action`` on ``resource`` in it; ``is_name``
    overrides the ``X-Is-Resource-Name`` header (False: ``ref`` is an id)."""
    by_name = is_name_header() if is_name is None else is_name
    access = await db.run(_load, ref, by_name, caller.user_id)
    visible = access.role is not None or access.public
    if caller.kind == "robot":
        visible = visible or any(p.namespace in ("*", access.name) for p in caller.permissions)
    if not caller.sysadmin and not visible:
        raise APIError(404, f"project {ref} not found")
    if not can(caller, access, resource, action):
        if caller.anonymous:
            raise APIError(401, "authentication is required")
        raise APIError(403, f"not allowed to {action} {resource} in project {access.name}")
    return access
