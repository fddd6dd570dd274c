"""What an identity may do to registry resources: Harbor's rules as pure functions.

Both the coordinator's token service and a node's local token endpoint decide a token's
``access`` here, from plain data: the identity's project roles, its robot permissions,
whether it is a system administrator, and which projects are public. Nothing here does
I/O or keeps state.

A repository belongs to the project named by its first path component
(``team/app/web`` -> ``team``); a proxy project's repositories follow the same rule.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from portmesh.tokens import Access

__all__ = [
    "DEVELOPER",
    "GUEST",
    "LIMITED_GUEST",
    "MAINTAINER",
    "PROJECT_ADMIN",
    "ROLE_ACTIONS",
    "Identity",
    "Permission",
    "granted",
    "project_of",
]

PROJECT_ADMIN, DEVELOPER, GUEST, MAINTAINER, LIMITED_GUEST = 1, 2, 3, 4, 5

#: Harbor role id -> the repository actions it grants
ROLE_ACTIONS: dict[int, frozenset[str]] = {
    PROJECT_ADMIN: frozenset({"pull", "push", "delete"}),
    DEVELOPER: frozenset({"pull", "push"}),
    GUEST: frozenset({"pull"}),
    MAINTAINER: frozenset({"pull", "push", "delete"}),
    LIMITED_GUEST: frozenset({"pull"}),
}


@dataclass(frozen=True, slots=True)
class Permission:
    """A robot permission: ``actions`` on ``resource`` in project ``namespace``
    (``"*"``: every project)."""

    namespace: str
    resource: str
    actions: tuple[str, ...]


@dataclass(frozen=True)
class Identity:
    """Who asks. ``roles`` maps project name -> Harbor role id (users); ``permissions``
    are a robot's. The anonymous identity is ``Identity("")``."""

    name: str
    sysadmin: bool = False
    roles: Mapping[str, int] | None = None
    permissions: tuple[Permission, ...] = ()

    @property
    def anonymous(self) -> bool:
        return not self.name


def project_of(repository: str) -> str:
    return repository.split("/", 1)[0]


def _repository_actions(
    identity: Identity, project: str, public_projects: Collection[str]
) -> set[str]:
    if identity.sysadmin:
        return {"*"}
    actions: set[str] = set()
    if project in public_projects:
        actions.add("pull")
    role = (identity.roles or {}).get(project)
    if role is not None:
        actions |= ROLE_ACTIONS.get(role, frozenset())
    for permission in identity.permissions:
        if permission.resource == "repository" and permission.namespace in ("*", project):
            actions |= set(permission.actions)
    return actions


def granted(
    requested: Iterable[Access], identity: Identity, public_projects: Collection[str]
) -> list[Access]:
    """The subset of ``requested`` that ``identity`` holds, as token access entries.

    Repository actions come from (in union) a public project (pull for anyone), the
    identity's role in the project, and its robot permissions; a system administrator
    gets everything. ``registry:catalog:*`` is for system administrators only. Unknown
    resource types get nothing. Entries without any granted action are left out.
    """
    out: list[Access] = []
    for entry in requested:
        if entry.type == "repository":
            allowed = _repository_actions(identity, project_of(entry.name), public_projects)
        elif entry.type == "registry" and entry.name == "catalog":
            allowed = {"*"} if identity.sysadmin else set()
        else:
            allowed = set()
        actions = set(entry.actions) if "*" in allowed else set(entry.actions) & allowed
        if actions:
            out.append(Access.of(entry.type, entry.name, actions))
    return out
