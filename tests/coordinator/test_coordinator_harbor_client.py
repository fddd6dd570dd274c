"""The coordinator driven by ``harbor-api-client`` (the generated, synchronous Harbor
client from PyPI, package ``harbor_client``). Its calls block, so each runs in a worker
thread (``trio.to_thread.run_sync``) while the coordinator serves in the test's nursery.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any, TypeVar

import harbor_client  # type: ignore[import-untyped]
import pytest
import trio
from coordinator_fixtures import Coordinator
from harbor_client.rest import ApiException  # type: ignore[import-untyped]

PASSWORD = "Passw0rdPassw0rd"
T = TypeVar("T")


class Harbor:
    """The generated API classes over one ``ApiClient`` (urllib3, blocking)."""

    def __init__(self, coordinator: Coordinator, username: str, password: str) -> None:
        config = harbor_client.Configuration()
        config.host = coordinator.api
        config.username = username
        config.password = password
        self.client = harbor_client.ApiClient(config)
        self.users = harbor_client.UserApi(self.client)
        self.projects = harbor_client.ProjectApi(self.client)
        self.members = harbor_client.MemberApi(self.client)
        self.metadata = harbor_client.ProjectMetadataApi(self.client)
        self.ping = harbor_client.PingApi(self.client)
        self.health = harbor_client.HealthApi(self.client)
        self.systeminfo = harbor_client.SysteminfoApi(self.client)
        self.statistic = harbor_client.StatisticApi(self.client)

    def close(self) -> None:
        self.client.rest_client.pool_manager.clear()


async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await trio.to_thread.run_sync(partial(fn, *args, **kwargs))


async def status_of(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[int, str]:
    """(HTTP status, Harbor error code) of a call expected to fail."""
    with pytest.raises(ApiException) as info:
        await call(fn, *args, **kwargs)
    code = json.loads(info.value.body)["errors"][0]["code"] if info.value.body else ""
    return info.value.status, code


@pytest.fixture
def admin(coordinator: Coordinator) -> Iterator[Harbor]:
    harbor = Harbor(coordinator, "admin", coordinator.admin_password)
    yield harbor
    harbor.close()


async def test_system(admin: Harbor) -> None:
    assert await call(admin.ping.get_ping) == "Pong"
    assert (await call(admin.health.get_health)).status == "healthy"
    info = await call(admin.systeminfo.get_system_info)
    assert "portmesh" in info.harbor_version
    stats = await call(admin.statistic.get_statistic)
    assert stats.total_repo_count == 0 and stats.total_project_count >= 0


async def test_users_projects_members(
    coordinator: Coordinator, admin: Harbor, unique: Callable[[str], str]
) -> None:
    dave = unique("dave")
    _, status, headers = await call(
        admin.users.create_user_with_http_info,
        harbor_client.UserCreationReq(
            username=dave, email=f"{dave}@example.com", password=PASSWORD, realname="Dave"
        ),
    )
    assert status == 201
    dave_id = int(headers["Location"].rsplit("/", 1)[1])
    user = await call(admin.users.get_user, dave_id)
    assert (user.username, user.realname, user.sysadmin_flag) == (dave, "Dave", False)
    assert user.creation_time is not None  # parsed as a datetime by the client

    users, _, headers = await call(
        admin.users.list_users_with_http_info, q=f"username={dave}", page_size=1
    )
    assert [u.username for u in users] == [dave] and headers["X-Total-Count"] == "1"
    found = await call(admin.users.search_users, dave)
    assert [(u.user_id, u.username) for u in found] == [(dave_id, dave)]

    await call(
        admin.users.update_user_password,
        dave_id,
        harbor_client.PasswordReq(new_password="An0therPassword"),
    )
    await call(
        admin.users.set_user_sys_admin, dave_id, harbor_client.UserSysAdminFlag(sysadmin_flag=True)
    )
    assert (await call(admin.users.get_user, dave_id)).sysadmin_flag is True

    project = unique("hc")
    _, status, headers = await call(
        admin.projects.create_project_with_http_info,
        harbor_client.ProjectReq(
            project_name=project, metadata=harbor_client.ProjectMetadata(public="true")
        ),
    )
    # Without X-Resource-Name-In-Location the Location names the project by id.
    assert status == 201
    project_id = int(headers["Location"].rsplit("/", 1)[1])
    assert headers["Location"] == f"/api/v2.0/projects/{project_id}"
    await call(admin.projects.head_project, project)
    assert (await status_of(admin.projects.head_project, unique("nope")))[0] == 404
    got = await call(admin.projects.get_project, str(project_id))
    assert got.name == project and got.metadata.public == "true"
    got = await call(admin.projects.get_project, project, x_is_resource_name=True)
    assert got.project_id == project_id
    listed = await call(admin.projects.list_projects, q=f"name={project}")
    assert [p.name for p in listed] == [project]
    summary = await call(admin.projects.get_project_summary, project)
    assert summary.project_admin_count == 1

    _, status, headers = await call(
        admin.members.create_project_member_with_http_info,
        project,
        project_member=harbor_client.ProjectMember(
            role_id=3, member_user=harbor_client.UserEntity(username=dave)
        ),
    )
    assert status == 201
    member_id = int(headers["Location"].rsplit("/", 1)[1])
    await call(
        admin.members.update_project_member,
        project,
        member_id,
        role=harbor_client.RoleRequest(role_id=5),
    )
    member = await call(admin.members.get_project_member, project, member_id)
    assert (member.entity_name, member.role_name) == (dave, "limitedGuest")
    members = await call(admin.members.list_project_members, project)
    assert sorted(m.entity_name for m in members) == sorted(["admin", dave])
    await call(admin.members.delete_project_member, project, member_id)
    assert (await status_of(admin.members.get_project_member, project, member_id))[0] == 404

    await call(admin.projects.delete_project, project)
    assert await status_of(admin.projects.get_project, project) == (404, "NOT_FOUND")
    await call(admin.users.delete_user, dave_id)
    assert await status_of(admin.users.get_user, dave_id) == (404, "NOT_FOUND")


async def test_errors(
    coordinator: Coordinator, admin: Harbor, unique: Callable[[str], str]
) -> None:
    erin = unique("erin")
    request = harbor_client.UserCreationReq(username=erin, password=PASSWORD)
    await call(admin.users.create_user, request)
    assert await status_of(admin.users.create_user, request) == (409, "CONFLICT")
    weak = harbor_client.UserCreationReq(username=unique("weak"), password="short")
    assert await status_of(admin.users.create_user, weak) == (400, "BAD_REQUEST")

    as_erin = Harbor(coordinator, erin, PASSWORD)
    try:
        assert await status_of(as_erin.users.list_users) == (403, "FORBIDDEN")
        private = unique("private")
        await call(admin.projects.create_project, harbor_client.ProjectReq(project_name=private))
        assert await status_of(as_erin.projects.get_project, private) == (404, "NOT_FOUND")
        assert await status_of(as_erin.projects.delete_project, private) == (404, "NOT_FOUND")
    finally:
        as_erin.close()
    wrong = Harbor(coordinator, erin, "Wr0ngPassword")
    try:
        assert await status_of(wrong.users.get_current_user_info) == (401, "UNAUTHORIZED")
    finally:
        wrong.close()
