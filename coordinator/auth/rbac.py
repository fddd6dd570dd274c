"""Project roles and what they allow, mirroring Harbor's RBAC policy table.

A permission is a (resource, action) pair inside one project. ``allowed(role, resource,
action)`` is the single question handlers ask; ``permissions(role)`` lists them for
``GET /users/current/permissions``. A system administrator is allowed everything
(``SYSADMIN_POLICY`` covers the system scope). New resources (robots, registries,
webhooks ...) add their rows to ``_POLICY`` here, next to Harbor's.

Role ids are Harbor's: 1 projectAdmin, 2 developer, 3 guest, 4 maintainer, 5 limitedGuest.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "ACTIONS",
    "RESOURCES",
    "SYSADMIN_POLICY",
    "Role",
    "allowed",
    "permissions",
    "role_name",
]


class Role(IntEnum):
    PROJECT_ADMIN = 1
    DEVELOPER = 2
    GUEST = 3
    MAINTAINER = 4
    LIMITED_GUEST = 5


_ROLE_NAMES = {
    Role.PROJECT_ADMIN: "projectAdmin",
    Role.DEVELOPER: "developer",
    Role.GUEST: "guest",
    Role.MAINTAINER: "maintainer",
    Role.LIMITED_GUEST: "limitedGuest",
}

ACTIONS = frozenset(
    {"create", "read", "update", "delete", "list", "pull", "push", "stop", "operate"}
)

Permission = tuple[str, str]


def _p(resource: str, *actions: str) -> set[Permission]:
    return {(resource, action) for action in actions}


_CRUDL = ("create", "read", "update", "delete", "list")

# Every project permission (what projectAdmin holds).
_ALL: set[Permission] = (
    _p("project", "read", "update", "delete")
    | _p("metadata", *_CRUDL)
    | _p("member", *_CRUDL)
    | _p("log", "list")
    | _p("quota", "read")
    | _p("label", *_CRUDL)
    | _p("repository", *_CRUDL, "pull", "push")
    | _p("artifact", "create", "read", "delete", "list")
    | _p("tag", "create", "delete", "list")
    | _p("artifact-label", "create", "delete")
    | _p("accessory", "list")
    | _p("artifact-addition", "read")
    | _p("scan", "create", "read", "stop")
    | _p("sbom", "create", "read", "stop")
    | _p("robot", *_CRUDL)
    | _p("immutable-tag", "create", "update", "delete", "list")
    | _p("tag-retention", *_CRUDL, "operate")
    | _p("notification-policy", *_CRUDL)
    | _p("preheat-policy", *_CRUDL)
    | _p("scanner", "create", "read")
)

_MAINTAINER: set[Permission] = (
    _p("project", "read")
    | _p("metadata", "read", "list")
    | _p("member", "read", "list")
    | _p("log", "list")
    | _p("quota", "read")
    | _p("label", *_CRUDL)
    | _p("repository", *_CRUDL, "pull", "push")
    | _p("artifact", "create", "read", "delete", "list")
    | _p("tag", "create", "delete", "list")
    | _p("artifact-label", "create", "delete")
    | _p("accessory", "list")
    | _p("artifact-addition", "read")
    | _p("scan", "create", "read", "stop")
    | _p("sbom", "create", "read", "stop")
    | _p("robot", "read", "list")
    | _p("immutable-tag", "create", "update", "delete", "list")
    | _p("tag-retention", *_CRUDL, "operate")
    | _p("notification-policy", "read", "list")
    | _p("preheat-policy", "read", "list")
    | _p("scanner", "read")
)

_DEVELOPER: set[Permission] = (
    _p("project", "read")
    | _p("metadata", "read", "list")
    | _p("member", "read", "list")
    | _p("log", "list")
    | _p("quota", "read")
    | _p("label", "read", "list")
    | _p("repository", "create", "read", "update", "list", "pull", "push")
    | _p("artifact", "create", "read", "list")
    | _p("tag", "create", "list")
    | _p("artifact-label", "create", "delete")
    | _p("accessory", "list")
    | _p("artifact-addition", "read")
    | _p("scan", "create", "read")
    | _p("sbom", "create", "read")
    | _p("robot", "read", "list")
    | _p("scanner", "read")
)

_GUEST: set[Permission] = (
    _p("project", "read")
    | _p("metadata", "read", "list")
    | _p("member", "read", "list")
    | _p("log", "list")
    | _p("quota", "read")
    | _p("label", "read", "list")
    | _p("repository", "read", "list", "pull")
    | _p("artifact", "read", "list")
    | _p("tag", "list")
    | _p("accessory", "list")
    | _p("artifact-addition", "read")
    | _p("scan", "read")
    | _p("sbom", "read")
    | _p("robot", "read", "list")
    | _p("scanner", "read")
)

_LIMITED_GUEST: set[Permission] = (
    _p("project", "read")
    | _p("metadata", "read", "list")
    | _p("quota", "read")
    | _p("label", "read", "list")
    | _p("repository", "read", "list", "pull")
    | _p("artifact", "read", "list")
    | _p("tag", "list")
    | _p("accessory", "list")
    | _p("artifact-addition", "read")
    | _p("scan", "read")
    | _p("sbom", "read")
)

_POLICY: dict[Role, frozenset[Permission]] = {
    Role.PROJECT_ADMIN: frozenset(_ALL),
    Role.MAINTAINER: frozenset(_MAINTAINER),
    Role.DEVELOPER: frozenset(_DEVELOPER),
    Role.GUEST: frozenset(_GUEST),
    Role.LIMITED_GUEST: frozenset(_LIMITED_GUEST),
}

RESOURCES = frozenset(resource for resource, _ in _ALL)

# What an anonymous caller (or any outsider) may do in a public project.
PUBLIC_POLICY: frozenset[Permission] = frozenset(
    _p("project", "read")
    | _p("repository", "read", "list", "pull")
    | _p("artifact", "read", "list")
    | _p("tag", "list")
    | _p("accessory", "list")
    | _p("artifact-addition", "read")
    | _p("label", "read", "list")
)

# System-scope permissions of a system administrator (``/system`` scope).
SYSADMIN_POLICY: frozenset[Permission] = frozenset(
    _p("user", *_CRUDL)
    | _p("project", "create", "list")
    | _p("audit-log", "list")
    | _p("registry", *_CRUDL)
    | _p("replication-policy", *_CRUDL)
    | _p("statistics", "read")
    | _p("configuration", "read", "update")
    | _p("robot", *_CRUDL)
)


def role_name(role_id: int) -> str:
    """Harbor's name of ``role_id`` (``projectAdmin`` ...); ValueError for an unknown id."""
    return _ROLE_NAMES[Role(role_id)]


def allowed(role: Role | int | None, resource: str, action: str, *, public: bool = False) -> bool:
    """Whether a member with ``role`` (None: not a member) may ``action`` on ``resource``.

    ``public`` adds what everyone may do in a public project.
    """
    if public and (resource, action) in PUBLIC_POLICY:
        return True
    if role is None:
        return False
    return (resource, action) in _POLICY[Role(role)]


def permissions(role: Role | int | None, *, public: bool = False) -> list[Permission]:
    """All (resource, action) pairs of ``role`` (plus public ones), sorted."""
    granted: set[Permission] = set(PUBLIC_POLICY) if public else set()
    if role is not None:
        granted |= _POLICY[Role(role)]
    return sorted(granted)
