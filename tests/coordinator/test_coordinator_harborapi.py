"""The coordinator driven by ``harborapi`` (the async Harbor client from PyPI).

harborapi is httpx-based, and httpx runs under trio, so the tests await it directly. Its
retry helper is turned off (``retry=None``): it sleeps with asyncio between attempts and
touches a pydantic attribute deprecated in 2.11; a test should see the first answer anyway.
Each test runs on SQLite and on PostgreSQL (see conftest).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from coordinator_fixtures import Coordinator
from harborapi import HarborAsyncClient
from harborapi.exceptions import BadRequest, Conflict, Forbidden, NotFound, Unauthorized
from harborapi.models import (
    ProjectMetadata,
    ProjectReq,
    Registry,
    UserCreationReq,
    UserProfile,
)

PASSWORD = "Passw0rdPassw0rd"


@pytest.fixture
async def admin(coordinator: Coordinator) -> AsyncIterator[HarborAsyncClient]:
    client = _client(coordinator, "admin", coordinator.admin_password)
    yield client
    await client.client.aclose()


async def _new_user(admin: HarborAsyncClient, name: str) -> int:
    location = await admin.create_user(
        UserCreationReq(
            username=name, email=f"{name}@example.com", realname=name.title(), password=PASSWORD
        )
    )
    return int(location.rsplit("/", 1)[1])


def _client(coordinator: Coordinator, username: str, password: str = PASSWORD) -> HarborAsyncClient:
    return HarborAsyncClient(url=coordinator.api, username=username, secret=password, retry=None)


async def test_system_endpoints(admin: HarborAsyncClient) -> None:
    assert await admin.ping() == "Pong"
    info = await admin.get_system_info()
    assert info.harbor_version and "portmesh" in info.harbor_version
    assert info.auth_mode == "db_auth"
    health = await admin.health_check()
    assert health.status == "healthy"
    stats = await admin.get_statistics()
    assert stats.total_repo_count == 0
    assert stats.total_project_count == (stats.public_project_count or 0) + (
        stats.private_project_count or 0
    )


async def test_users_lifecycle(
    coordinator: Coordinator, admin: HarborAsyncClient, unique: Callable[[str], str]
) -> None:
    name = unique("alice")
    location = await admin.create_user(
        UserCreationReq(username=name, email=f"{name}@example.com", password=PASSWORD)
    )
    assert location.startswith("/api/v2.0/users/")
    user_id = int(location.rsplit("/", 1)[1])

    user = await admin.get_user(user_id)
    assert (user.username, user.email, user.sysadmin_flag) == (name, f"{name}@example.com", False)

    found = await admin.search_users_by_username(name[:8])
    assert name in [u.username for u in found]

    await admin.update_user(user_id, UserProfile(email=f"{name}@new.example", realname="Alice A"))
    assert (await admin.get_user(user_id)).realname == "Alice A"

    # The user itself: current user, password change with the old password.
    own = _client(coordinator, name)
    try:
        me = await own.get_current_user()
        assert me.user_id == user_id and me.email == f"{name}@new.example"
        await own.set_user_password(user_id, "N3wPassword!", old_password=PASSWORD)
    finally:
        await own.client.aclose()
    renewed = _client(coordinator, name, "N3wPassword!")
    try:
        assert (await renewed.get_current_user()).username == name
    finally:
        await renewed.client.aclose()
    stale = _client(coordinator, name)
    try:
        with pytest.raises(Unauthorized):
            await stale.get_current_user()
    finally:
        await stale.client.aclose()

    await admin.set_user_admin(user_id, True)
    assert (await admin.get_user(user_id)).sysadmin_flag is True
    await admin.set_user_admin(user_id, False)
    assert (await admin.get_user(user_id)).sysadmin_flag is False

    await admin.delete_user(user_id)
    with pytest.raises(NotFound):
        await admin.get_user(user_id)


async def test_user_listing_paginates(
    coordinator: Coordinator, admin: HarborAsyncClient, unique: Callable[[str], str]
) -> None:
    prefix = unique("page")
    for i in range(5):
        await _new_user(admin, f"{prefix}{i}")
    # harborapi follows the Link headers: a page size of 2 still yields all five.
    users = await admin.get_users(query=f"username=~{prefix}", page_size=2)
    assert sorted(str(u.username) for u in users) == [f"{prefix}{i}" for i in range(5)]
    async with httpx.AsyncClient(auth=("admin", coordinator.admin_password)) as http:
        response = await http.get(
            f"{coordinator.api}/users",
            params={"q": f"username=~{prefix}", "page": 2, "page_size": 2, "sort": "-username"},
        )
    assert response.status_code == 200
    assert response.headers["X-Total-Count"] == "5"
    assert [u["username"] for u in response.json()] == [f"{prefix}2", f"{prefix}1"]
    link = response.headers["Link"]
    assert 'rel="prev"' in link and 'rel="next"' in link and "page=3" in link


async def test_projects_lifecycle(
    coordinator: Coordinator, admin: HarborAsyncClient, unique: Callable[[str], str]
) -> None:
    name = unique("proj")
    location = await admin.create_project(
        ProjectReq(project_name=name, metadata=ProjectMetadata(public="false"), storage_limit=-1)
    )
    assert location == f"/api/v2.0/projects/{name}"
    assert await admin.project_exists(name)
    assert not await admin.project_exists(unique("absent"))

    by_name = await admin.get_project(name)
    by_id = await admin.get_project(by_name.project_id)  # type: ignore[arg-type]
    assert by_id.name == name and by_name.project_id == by_id.project_id
    assert by_name.metadata and by_name.metadata.public == "false"
    assert by_name.owner_name == "admin"
    assert by_name.current_user_role_id == 1

    await admin.update_project(name, ProjectReq(metadata=ProjectMetadata(public="true")))
    assert (await admin.get_project(name)).metadata.public == "true"  # type: ignore[union-attr]
    await admin.set_project_metadata(name, ProjectMetadata(auto_scan="true"))
    meta = await admin.get_project_metadata(name)
    assert (meta.public, meta.auto_scan) == ("true", "true")
    assert await admin.get_project_metadata_entry(name, "auto_scan") == {"auto_scan": "true"}
    await admin.delete_project_metadata_entry(name, "auto_scan")
    assert (await admin.get_project_metadata(name)).auto_scan is None

    summary = await admin.get_project_summary(name)
    assert summary.repo_count == 0 and summary.project_admin_count == 1

    others = [unique(f"{name}-x") for _ in range(3)]
    for other in others:
        await admin.create_project(ProjectReq(project_name=other))
    listed = await admin.get_projects(query=f"name=~{name}-x", page_size=2)
    assert sorted(str(p.name) for p in listed) == sorted(others)
    public_only = await admin.get_projects(name=name, public=True)
    assert [p.name for p in public_only] == [name]
    owned = await admin.get_projects(name=name, owner="admin")
    assert sorted(str(p.name) for p in owned) == sorted([name, *others])
    assert await admin.get_projects(name=name, owner="nobody-at-all") == []

    proxy = unique("proxy")
    with pytest.raises(BadRequest):  # a proxy cache needs an existing registry
        await admin.create_project(ProjectReq(project_name=proxy, registry_id=987654))
    upstream = Registry(name=unique("up"), url="http://127.0.0.1:9", type="docker-registry")
    registry_id = int((await admin.create_registry(upstream)).rsplit("/", 1)[1])
    await admin.create_project(
        ProjectReq(project_name=proxy, registry_id=registry_id, storage_limit=1024)
    )
    proxied = await admin.get_project(proxy)
    assert proxied.registry_id == registry_id
    assert (await admin.get_project_summary(proxy)).quota.hard.root == {"storage": 1024}  # type: ignore[union-attr]

    await admin.delete_project(name)
    assert not await admin.project_exists(name)
    with pytest.raises(NotFound):
        await admin.get_project(name)


async def test_members_lifecycle(
    coordinator: Coordinator, admin: HarborAsyncClient, unique: Callable[[str], str]
) -> None:
    project = unique("team")
    await admin.create_project(ProjectReq(project_name=project))
    bob = unique("bob")
    bob_id = await _new_user(admin, bob)

    location = await admin.add_project_member_user(project, bob, role_id=2)
    member_id = int(location.rsplit("/", 1)[1])
    members = await admin.get_project_members(project)
    assert sorted((str(m.entity_name), str(m.role_name)) for m in members) == sorted(
        [("admin", "projectAdmin"), (bob, "developer")]
    )
    member = await admin.get_project_member(project, member_id)
    assert (member.entity_id, member.entity_type, member.role_id) == (bob_id, "u", 2)

    # As a developer, bob sees the private project and may not manage members.
    as_bob = _client(coordinator, bob)
    try:
        seen = await as_bob.get_project(project)
        assert seen.current_user_role_id == 2
        with pytest.raises(Forbidden):
            await as_bob.add_project_member_user(project, "admin", role_id=3)
    finally:
        await as_bob.client.aclose()

    await admin.update_project_member_role(project, member_id, role=4)
    assert (await admin.get_project_member(project, member_id)).role_name == "maintainer"
    with pytest.raises(Conflict):
        await admin.add_project_member_user(project, bob_id, role_id=3)

    await admin.remove_project_member(project, member_id)
    assert [m.entity_name for m in await admin.get_project_members(project)] == ["admin"]
    as_bob = _client(coordinator, bob)
    try:
        with pytest.raises(NotFound):  # private again, and bob is an outsider now
            await as_bob.get_project(project)
    finally:
        await as_bob.client.aclose()


async def test_errors(
    coordinator: Coordinator, admin: HarborAsyncClient, unique: Callable[[str], str]
) -> None:
    name = unique("carol")
    await _new_user(admin, name)
    with pytest.raises(Conflict):
        await _new_user(admin, name)
    private = unique("secret")
    await admin.create_project(ProjectReq(project_name=private))
    with pytest.raises(Conflict):
        await admin.create_project(ProjectReq(project_name=private))
    with pytest.raises(NotFound):
        await admin.get_user(987654)

    # harborapi insists on credentials; without any, the API answers 401 in Harbor's shape.
    async with httpx.AsyncClient(base_url=coordinator.api) as anonymous:
        response = await anonymous.get("/users/current")
        assert response.status_code == 401
        assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"
        response = await anonymous.post("/projects", json={"project_name": unique("anon")})
        assert response.status_code == 401
        response = await anonymous.get(f"/projects/{private}")
        assert response.status_code == 404
    wrong = _client(coordinator, name, "Wr0ngPassword")
    try:
        with pytest.raises(Unauthorized):
            await wrong.get_current_user()
    finally:
        await wrong.client.aclose()

    carol = _client(coordinator, name)
    try:
        with pytest.raises(Forbidden):
            await carol.get_users()
        with pytest.raises(Forbidden):
            await carol.create_user(UserCreationReq(username=unique("x"), password=PASSWORD))
        with pytest.raises(NotFound):
            await carol.get_project(private)
        assert private not in [p.name for p in await carol.get_projects(name=private)]
        # Anyone signed in may create a project (Harbor's default restriction "everyone").
        own = unique("own")
        await carol.create_project(ProjectReq(project_name=own))
        assert (await carol.get_project(own)).current_user_role_id == 1
    finally:
        await carol.client.aclose()
