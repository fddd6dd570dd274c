"""Harbor's access rules: every role against every action, robots, public projects."""

from __future__ import annotations

import pytest

from portmesh.access import (
    DEVELOPER,
    GUEST,
    LIMITED_GUEST,
    MAINTAINER,
    PROJECT_ADMIN,
    Identity,
    Permission,
    granted,
    project_of,
)
from portmesh.tokens import Access, parse_scopes

ACTIONS = ("pull", "push", "delete")
EXPECTED = {
    PROJECT_ADMIN: {"pull", "push", "delete"},
    MAINTAINER: {"pull", "push", "delete"},
    DEVELOPER: {"pull", "push"},
    GUEST: {"pull"},
    LIMITED_GUEST: {"pull"},
}


def actions_for(identity: Identity, scope: str, public: tuple[str, ...] = ()) -> set[str]:
    entries = granted(parse_scopes([scope]), identity, public)
    return {action for entry in entries for action in entry.actions}


@pytest.mark.parametrize("role", sorted(EXPECTED))
@pytest.mark.parametrize("action", ACTIONS)
def test_role_by_action(role: int, action: str) -> None:
    user = Identity("alice", roles={"team": role})
    allowed = actions_for(user, f"repository:team/app:{action}")
    assert allowed == ({action} & EXPECTED[role])
    # the role is for its project only
    assert actions_for(user, f"repository:other/app:{action}") == set()


def test_unknown_role_grants_nothing() -> None:
    assert actions_for(Identity("bob", roles={"team": 99}), "repository:team/app:pull") == set()


def test_sysadmin_gets_everything_including_the_catalog() -> None:
    admin = Identity("admin", sysadmin=True)
    assert actions_for(admin, "repository:any/thing:pull,push,delete,*") == {
        "pull",
        "push",
        "delete",
        "*",
    }
    assert actions_for(admin, "registry:catalog:*") == {"*"}
    assert actions_for(Identity("alice", roles={"team": PROJECT_ADMIN}), "registry:catalog:*") == (
        set()
    )


def test_public_project_gives_pull_to_anyone() -> None:
    anonymous = Identity("")
    assert anonymous.anonymous
    assert actions_for(anonymous, "repository:pub/app:pull,push", ("pub",)) == {"pull"}
    assert actions_for(anonymous, "repository:priv/app:pull", ("pub",)) == set()
    guest = Identity("g", roles={"pub": DEVELOPER})
    assert actions_for(guest, "repository:pub/app:pull,push", ("pub",)) == {"pull", "push"}


def test_robot_permissions() -> None:
    robot = Identity(
        "robot$team+ci",
        permissions=(
            Permission("team", "repository", ("pull", "push")),
            Permission("team", "artifact", ("delete",)),  # not a repository permission
            Permission("*", "repository", ("pull",)),
        ),
    )
    assert actions_for(robot, "repository:team/app:pull,push,delete") == {"pull", "push"}
    assert actions_for(robot, "repository:other/app:pull,push") == {"pull"}
    star = Identity("robot$all", permissions=(Permission("team", "repository", ("*",)),))
    assert actions_for(star, "repository:team/a:pull,delete") == {"pull", "delete"}


def test_unknown_resource_types_get_nothing() -> None:
    admin = Identity("alice", roles={"team": PROJECT_ADMIN})
    assert granted([Access("plugin", "team/x", ("pull",))], admin, ()) == []


def test_entries_without_actions_are_left_out_and_others_kept() -> None:
    dev = Identity("dev", roles={"a": DEVELOPER})
    got = granted(parse_scopes(["repository:a/x:push repository:b/y:push"]), dev, ())
    assert got == [Access("repository", "a/x", ("push",))]


def test_project_of() -> None:
    assert project_of("team/app/web") == "team"
    assert project_of("single") == "single"
