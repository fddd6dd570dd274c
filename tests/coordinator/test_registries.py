"""Registry endpoints on SQLite and PostgreSQL, driven by harborapi: CRUD, the secret
sealed at rest and never returned, real pings of docker-registry (with and without Basic
auth, wrong password, nothing listening), adapter listings, proxy-cache projects that
must name an existing registry, and the upstreams the nodes' policy snapshot gets."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import harbor_client  # type: ignore[import-untyped]
import httpx
import pytest
import trio
from coordinator_fixtures import Coordinator
from harborapi import HarborAsyncClient
from harborapi.exceptions import BadRequest, Conflict, Forbidden, NotFound, PreconditionFailed
from harborapi.models import (
    ProjectReq,
    Registry,
    RegistryCredential,
    RegistryPing,
    RegistryUpdate,
    UserCreationReq,
)
from sqlalchemy import select

from coordinator.db.engine import Database
from coordinator.db.schema import registries
from coordinator.registries import SECRETS_FILE, policy_upstreams
from portmesh.secrets import SecretKeys
from support.servers import free_port, run_docker_registry

SECRET = "s3cret-Passw0rd"


@pytest.fixture
async def admin(coordinator: Coordinator) -> AsyncIterator[HarborAsyncClient]:
    client = HarborAsyncClient(
        url=coordinator.api, username="admin", secret=coordinator.admin_password, retry=None
    )
    yield client
    await client.client.aclose()


def _id(location: str) -> int:
    return int(location.rsplit("/", 1)[1])


async def _raw_row(coordinator: Coordinator, registry_id: int) -> dict[str, object]:
    db = Database(coordinator.config.db_url)
    try:
        row = await db.run(
            lambda conn: (
                conn.execute(select(registries).where(registries.c.id == registry_id))
                .one()
                ._asdict()
            )
        )
    finally:
        db.close()
    return row


async def test_crud_and_the_secret_stays_sealed(
    coordinator: Coordinator, admin: HarborAsyncClient, unique: Callable[[str], str]
) -> None:
    name = unique("hub")
    location = await admin.create_registry(
        Registry(
            name=name,
            url="https://registry.example.com",
            type="docker-registry",
            description="the upstream",
            credential=RegistryCredential(type="basic", access_key="bob", access_secret=SECRET),
        )
    )
    assert location.startswith("/api/v2.0/registries/")
    registry_id = _id(location)

    got = await admin.get_registry(registry_id)
    assert (got.name, got.url, got.type, got.status) == (
        name,
        "https://registry.example.com",
        "docker-registry",
        "unknown",
    )
    assert got.credential is not None
    assert (got.credential.type, got.credential.access_key) == ("basic", "bob")
    assert got.credential.access_secret == "*****"

    raw = await _raw_row(coordinator, registry_id)
    sealed = str(raw["access_secret"])
    assert sealed.startswith("pm1:") and SECRET not in sealed
    keys = SecretKeys.load(coordinator.config.data / SECRETS_FILE)
    assert keys.open(sealed) == SECRET

    async with httpx.AsyncClient(
        base_url=coordinator.api, auth=("admin", coordinator.admin_password)
    ) as http:
        listing = await http.get("/registries", params={"q": f"name=~{name[:6]}"})
        assert SECRET not in listing.text
        assert name in [r["name"] for r in listing.json()]
        assert listing.headers["X-Total-Count"]

    found = await admin.get_registries(query=f"name={name}")
    assert [r.id for r in found] == [registry_id]

    with pytest.raises(Conflict):
        await admin.create_registry(Registry(name=name, url="http://a.example", type="harbor"))
    with pytest.raises(BadRequest):
        await admin.create_registry(Registry(name=unique("x"), url="http://a", type="dtr"))
    with pytest.raises(BadRequest):
        await admin.create_registry(Registry(name=unique("x"), url="ftp://a", type="quay"))

    # Updating other fields keeps the secret; "*****" means "unchanged".
    await admin.update_registry(
        registry_id, RegistryUpdate(description="renamed", access_secret="*****")
    )
    assert keys.open(str((await _raw_row(coordinator, registry_id))["access_secret"])) == SECRET
    await admin.update_registry(registry_id, RegistryUpdate(access_secret="another-one"))
    assert (await admin.get_registry(registry_id)).description == "renamed"
    resealed = str((await _raw_row(coordinator, registry_id))["access_secret"])
    assert keys.open(resealed) == "another-one"

    await admin.delete_registry(registry_id)
    with pytest.raises(NotFound):
        await admin.get_registry(registry_id)


async def test_only_sysadmins_manage_registries(
    coordinator: Coordinator, admin: HarborAsyncClient, unique: Callable[[str], str]
) -> None:
    user = unique("carol")
    await admin.create_user(
        UserCreationReq(username=user, email=f"{user}@example.com", password="Passw0rdPassw0rd")
    )
    carol = HarborAsyncClient(
        url=coordinator.api, username=user, secret="Passw0rdPassw0rd", retry=None
    )
    try:
        with pytest.raises(Forbidden):
            await carol.get_registries()
        with pytest.raises(Forbidden):
            await carol.create_registry(Registry(name=unique("r"), url="http://a", type="quay"))
    finally:
        await carol.client.aclose()


async def test_ping_a_real_registry(
    coordinator: Coordinator,
    admin: HarborAsyncClient,
    unique: Callable[[str], str],
    tmp_path: Path,
) -> None:
    async with (
        run_docker_registry(tmp_path / "open") as open_registry,
        run_docker_registry(tmp_path / "locked", users={"alice": SECRET}) as locked,
    ):
        await admin.check_registry_status(
            RegistryPing(type="docker-registry", url=open_registry.url)
        )

        good = RegistryPing(
            type="docker-registry",
            url=locked.url,
            credential_type="basic",
            access_key="alice",
            access_secret=SECRET,
        )
        await admin.check_registry_status(good)

        wrong = good.model_copy(update={"access_secret": "not-the-password"})
        with pytest.raises(BadRequest) as refused:
            await admin.check_registry_status(wrong)
        message = refused.value.errors[0].message or ""
        assert "refused the credential" in message and "alice" in message
        assert "not-the-password" not in message

        with pytest.raises(BadRequest) as anonymous:
            await admin.check_registry_status(RegistryPing(type="docker-registry", url=locked.url))
        assert "none are configured" in (anonymous.value.errors[0].message or "")

        # By id: the stored (sealed) secret is used, and the status is recorded.
        registry_id = _id(
            await admin.create_registry(
                Registry(
                    name=unique("locked"),
                    url=locked.url,
                    type="docker-registry",
                    credential=RegistryCredential(
                        type="basic", access_key="alice", access_secret=SECRET
                    ),
                )
            )
        )
        await admin.check_registry_status(RegistryPing(id=registry_id))
        assert (await admin.get_registry(registry_id)).status == "healthy"
        with pytest.raises(BadRequest):
            await admin.check_registry_status(RegistryPing(id=registry_id, access_secret="nope"))
        assert (await admin.get_registry(registry_id)).status == "unhealthy"
        await admin.check_registry_status(RegistryPing(id=registry_id, access_secret="*****"))
        assert (await admin.get_registry(registry_id)).status == "healthy"
        await admin.delete_registry(registry_id)

    # Nothing listens there any more.
    with pytest.raises(BadRequest) as down:
        await admin.check_registry_status(
            RegistryPing(type="docker-registry", url=f"http://127.0.0.1:{free_port()}")
        )
    assert "not reachable" in (down.value.errors[0].message or "")
    with pytest.raises(NotFound):
        await admin.check_registry_status(RegistryPing(id=987654))


async def test_adapters_and_info(admin: HarborAsyncClient, unique: Callable[[str], str]) -> None:
    adapters = await admin.get_registry_adapters()
    for kind in ("docker-hub", "docker-registry", "harbor", "aws-ecr", "github-ghcr", "quay"):
        assert kind in adapters
    providers = await admin.get_registry_providers()
    assert set(providers.root) == set(adapters)
    assert providers.root["docker-registry"].credential_pattern is not None

    registry_id = _id(
        await admin.create_registry(
            Registry(name=unique("hub"), url="https://hub.docker.com", type="docker-hub")
        )
    )
    info = await admin.get_registry_info(registry_id)
    assert info.type == "docker-hub"
    assert info.supported_triggers and "manual" in info.supported_triggers
    assert [f.type for f in info.supported_resource_filters or []] == ["name", "tag"]
    await admin.delete_registry(registry_id)


async def test_proxy_projects_need_their_registry(
    coordinator: Coordinator, admin: HarborAsyncClient, unique: Callable[[str], str]
) -> None:
    with pytest.raises(BadRequest):
        await admin.create_project(ProjectReq(project_name=unique("p"), registry_id=123456))
    registry_id = _id(
        await admin.create_registry(
            Registry(
                name=unique("mirror"),
                url="http://127.0.0.1:5999",
                type="docker-registry",
                insecure=True,
                credential=RegistryCredential(access_key="robot", access_secret=SECRET),
            )
        )
    )
    project = unique("cache")
    await admin.create_project(ProjectReq(project_name=project, registry_id=registry_id))
    with pytest.raises(PreconditionFailed):
        await admin.delete_registry(registry_id)

    db = Database(coordinator.config.db_url)
    try:
        keys = SecretKeys.load(coordinator.config.data / SECRETS_FILE)
        upstreams = await db.run(policy_upstreams, keys)
    finally:
        db.close()
    mine = [u for u in upstreams if u["project"] == project]
    assert mine == [
        {
            "name": project,
            "project": project,
            "type": "distribution",
            "url": "http://127.0.0.1:5999",
            "username": "robot",
            "password": SECRET,
            "insecure": True,
        }
    ]

    await admin.delete_project(project)
    await admin.delete_registry(registry_id)


async def test_harbor_api_client_registry_calls(
    coordinator: Coordinator, unique: Callable[[str], str]
) -> None:
    config = harbor_client.Configuration()
    config.host = coordinator.api
    config.username = "admin"
    config.password = coordinator.admin_password
    client = harbor_client.ApiClient(config)
    api = harbor_client.RegistryApi(client)
    try:
        name = unique("gen")
        body = harbor_client.Registry(
            name=name,
            url="https://quay.io",
            type="quay",
            credential=harbor_client.RegistryCredential(
                type="basic", access_key="k", access_secret=SECRET
            ),
        )
        await trio.to_thread.run_sync(api.create_registry, body)
        listed = await trio.to_thread.run_sync(lambda: api.list_registries(q=f"name={name}"))
        assert [r.name for r in listed] == [name]
        assert listed[0].credential.access_secret == "*****"
        await trio.to_thread.run_sync(api.delete_registry, listed[0].id)
    finally:
        client.rest_client.pool_manager.clear()
