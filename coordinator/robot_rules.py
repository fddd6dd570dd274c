"""Harbor's rules for robot account requests: names, levels, durations, permissions, secrets.

:func:`check_create` turns a ``RobotCreate`` body into a :class:`RobotSpec`;
:func:`check_update` checks a ``PUT /robots/{id}`` body against the stored robot;
:func:`check_secret` is Harbor's secret rule (8-128 characters with an uppercase letter,
a lowercase letter and a digit). Every violation is ``Invalid`` (400) with a message
naming the field; a permission naming a project that does not exist is ``Invalid`` too.
Permissions come out normalised: ``[{"kind", "namespace", "access": [{"resource",
"action", "effect": "allow"}]}]``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Row, select

from coordinator.auth.rbac import ACTIONS
from coordinator.db.schema import projects
from coordinator.errors import Invalid

__all__ = [
    "DEFAULT_DURATION_DAYS",
    "LEVELS",
    "PREFIX",
    "RobotSpec",
    "check_create",
    "check_secret",
    "check_update",
]

PREFIX = "robot$"
LEVELS = ("system", "project")
#: the lifetime of a robot created without a duration (days), as Harbor's default
DEFAULT_DURATION_DAYS = 30
_MAX_DURATION_DAYS = 36500
_NAME = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*\Z")
_RESOURCE = re.compile(r"^[a-z][a-z0-9-]{0,63}\Z")
_ROBOT_ACTIONS = ACTIONS | {"*", "scanner-pull"}
_MAX_PERMISSIONS = 100
_MAX_ACCESS = 200


@dataclass(frozen=True)
class RobotSpec:
    """A checked ``RobotCreate``; ``name`` is the full name (``robot$...``)."""

    name: str
    level: str
    description: str
    disable: bool
    duration: int
    permissions: list[dict[str, Any]]
    project_id: int | None = None
    secret: str | None = field(default=None, repr=False)


def check_secret(secret: object) -> str:
    if not isinstance(secret, str):
        raise Invalid("secret must be a string")
    ok = (
        8 <= len(secret) <= 128
        and any(c.isupper() for c in secret)
        and any(c.islower() for c in secret)
        and any(c.isdigit() for c in secret)
    )
    if not ok:
        raise Invalid(
            "secret must be 8-128 characters with at least one uppercase letter, "
            "one lowercase letter and one digit"
        )
    return secret


def _text(body: Mapping[str, Any], key: str, limit: int) -> str:
    value = body.get(key)
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > limit:
        raise Invalid(f"{key} must be a string of at most {limit} characters")
    return value


def _flag(body: Mapping[str, Any], key: str) -> bool:
    value = body.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise Invalid(f"{key} must be true or false")
    return value


def _duration(value: object) -> int:
    if value is None or value == 0:
        return DEFAULT_DURATION_DAYS
    if not isinstance(value, int) or isinstance(value, bool):
        raise Invalid("duration must be an integer number of days")
    if value != -1 and not 0 < value <= _MAX_DURATION_DAYS:
        raise Invalid(f"duration must be -1 (never expires) or 1-{_MAX_DURATION_DAYS} days")
    return value


def _project_id(conn: Connection, name: str) -> int:
    found = conn.execute(select(projects.c.project_id).where(projects.c.name == name)).scalar()
    if found is None:
        raise Invalid(f"permission namespace: project {name} not found")
    return int(found)


def _access(value: object) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value or len(value) > _MAX_ACCESS:
        raise Invalid(f"permission access must be a list of 1-{_MAX_ACCESS} entries")
    out: list[dict[str, str]] = []
    for entry in value:
        if not isinstance(entry, Mapping):
            raise Invalid("permission access entries must be objects")
        resource, action = entry.get("resource"), entry.get("action")
        effect = entry.get("effect") or "allow"
        if not isinstance(resource, str) or not _RESOURCE.match(resource):
            raise Invalid(f"invalid access resource {str(resource)[:64]!r}")
        if action not in _ROBOT_ACTIONS:
            raise Invalid(f"invalid access action {str(action)[:64]!r}")
        if effect != "allow":
            raise Invalid("only the effect 'allow' is supported")
        item = {"resource": resource, "action": str(action), "effect": "allow"}
        if item not in out:
            out.append(item)
    return out


def _permissions(
    conn: Connection, value: object, level: str, project: str | None
) -> tuple[list[dict[str, Any]], int | None]:
    """Normalised permissions and, for a project robot, its project id."""
    if not isinstance(value, list) or not value or len(value) > _MAX_PERMISSIONS:
        raise Invalid(f"permissions must be a list of 1-{_MAX_PERMISSIONS} entries")
    if level == "project" and len(value) != 1:
        raise Invalid("a project robot has exactly one permission, for its project")
    out: list[dict[str, Any]] = []
    project_id: int | None = None
    for entry in value:
        if not isinstance(entry, Mapping):
            raise Invalid("permissions must be objects")
        kind, namespace = entry.get("kind"), entry.get("namespace")
        if not isinstance(namespace, str) or not namespace:
            raise Invalid("a permission needs a namespace")
        if kind == "system" and level == "system":
            if namespace != "/":
                raise Invalid("a system permission has the namespace '/'")
        elif kind == "project":
            if level == "project" and project is not None and namespace != project:
                raise Invalid(f"a robot of project {project} may only hold its permissions")
            if namespace == "*":
                if level == "project":
                    raise Invalid("a project robot cannot cover every project ('*')")
            else:
                project_id = _project_id(conn, namespace)
        else:
            raise Invalid(f"invalid permission kind {str(kind)[:32]!r} for a {level} robot")
        out.append({"kind": kind, "namespace": namespace, "access": _access(entry.get("access"))})
    return out, project_id if level == "project" else None


def check_create(conn: Connection, body: Mapping[str, Any]) -> RobotSpec:
    name = body.get("name")
    if not isinstance(name, str) or not _NAME.match(name) or len(name) > 200:
        raise Invalid("name must be 1-200 lowercase letters, digits and single separators (. _ -)")
    level = body.get("level")
    if level not in LEVELS:
        raise Invalid("level must be 'system' or 'project'")
    permissions, project_id = _permissions(conn, body.get("permissions"), str(level), None)
    if level == "project":
        full = f"{PREFIX}{permissions[0]['namespace']}+{name}"
    else:
        full = f"{PREFIX}{name}"
    secret = body.get("secret")
    return RobotSpec(
        name=full,
        level=str(level),
        description=_text(body, "description", 1024),
        disable=_flag(body, "disable"),
        duration=_duration(body.get("duration")),
        permissions=permissions,
        project_id=project_id,
        secret=None if secret in (None, "") else check_secret(secret),
    )


def check_update(conn: Connection, row: Row[Any], body: Mapping[str, Any]) -> dict[str, Any]:
    """The fields ``PUT`` changes (of description, disable, duration, permissions)."""
    full = str(row.name)
    short = full.removeprefix(PREFIX).rpartition("+")[2]
    name = body.get("name")
    if name not in (None, "", full, full.removeprefix(PREFIX), short):
        raise Invalid("the name of a robot account cannot be changed")
    if body.get("level") not in (None, "", row.level):
        raise Invalid("the level of a robot account cannot be changed")
    changes: dict[str, Any] = {}
    if "description" in body:
        changes["description"] = _text(body, "description", 1024)
    if "disable" in body:
        changes["disable"] = _flag(body, "disable")
    if body.get("duration") is not None:
        changes["duration"] = _duration(body["duration"])
    if body.get("permissions") is not None:
        project = None
        if row.level == "project":
            project = full.removeprefix(PREFIX).rpartition("+")[0]
        changes["permissions"], _ = _permissions(conn, body["permissions"], str(row.level), project)
    return changes
