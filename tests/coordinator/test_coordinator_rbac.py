"""Unit tests of the role table (Harbor's role ids and the shape of its policy)."""

from __future__ import annotations

import pytest

from coordinator.auth import rbac
from coordinator.auth.rbac import Role, allowed, permissions


def test_role_ids_are_harbors() -> None:
    assert {r.value: rbac.role_name(r) for r in Role} == {
        1: "projectAdmin",
        2: "developer",
        3: "guest",
        4: "maintainer",
        5: "limitedGuest",
    }
    with pytest.raises(ValueError):
        rbac.role_name(6)


@pytest.mark.parametrize(
    ("role", "resource", "action", "expected"),
    [
        (Role.PROJECT_ADMIN, "member", "create", True),
        (Role.MAINTAINER, "member", "create", False),
        (Role.MAINTAINER, "repository", "delete", True),
        (Role.DEVELOPER, "repository", "push", True),
        (Role.DEVELOPER, "repository", "delete", False),
        (Role.DEVELOPER, "tag", "delete", False),
        (Role.GUEST, "repository", "pull", True),
        (Role.GUEST, "repository", "push", False),
        (Role.GUEST, "member", "list", True),
        (Role.LIMITED_GUEST, "member", "list", False),
        (Role.LIMITED_GUEST, "log", "list", False),
        (Role.MAINTAINER, "robot", "create", False),
        (Role.PROJECT_ADMIN, "robot", "create", True),
        (None, "repository", "pull", False),
    ],
)
def test_policy(role: Role | None, resource: str, action: str, expected: bool) -> None:
    assert allowed(role, resource, action) is expected


def test_roles_are_nested_as_in_harbor() -> None:
    admin = set(permissions(Role.PROJECT_ADMIN))
    maintainer = set(permissions(Role.MAINTAINER))
    developer = set(permissions(Role.DEVELOPER))
    guest = set(permissions(Role.GUEST))
    limited = set(permissions(Role.LIMITED_GUEST))
    assert limited < guest < developer < maintainer < admin


def test_public_projects_allow_pull_to_everyone() -> None:
    assert allowed(None, "repository", "pull", public=True)
    assert not allowed(None, "repository", "push", public=True)
    assert ("repository", "pull") in permissions(None, public=True)
