"""Fixtures for the coordinator: a real coordinator (hypercorn on a loopback port) on
SQLite and on PostgreSQL, and an httpx client signed in as admin.

``coordinator`` is parametrised over ``sqlite`` (a fresh database in the test's temp dir)
and ``postgresql`` (127.0.0.1:5432, user postgres: one fresh, uniquely named database per
test module, dropped afterwards). The server runs inside the test's trio nursery; the
admin password is ``coordinator_fixtures.ADMIN_PASSWORD``. Tests on PostgreSQL share the
module's database, so they name what they create with the ``unique`` fixture.

PostgreSQL tests are skipped when nothing listens on 127.0.0.1:5432 (they fail under CI).
"""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
import trio
from coordinator_fixtures import ADMIN_PASSWORD, Coordinator

from coordinator.app import serve
from coordinator.config import CoordinatorConfig
from coordinator.registries import SECRETS_FILE
from portmesh.secrets import SecretKeys

PG_HOST, PG_PORT = "127.0.0.1", 5432


def _unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


@pytest.fixture
def unique() -> Callable[[str], str]:
    """``unique(prefix)``: a name no other test uses (PostgreSQL tests share a database)."""
    return _unique


def _postgres_up() -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((PG_HOST, PG_PORT)) == 0


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test module (dropped afterwards)."""
    if not _postgres_up():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("PostgreSQL is not running on 127.0.0.1:5432")
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    import psycopg

    name = f"pm_coord_{uuid.uuid4().hex[:12]}"
    admin = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def module_secrets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One secrets key file per module: coordinators on one database (the module's
    PostgreSQL database, or replicas) need the same key file to open what others sealed."""
    path = tmp_path_factory.mktemp("secrets") / SECRETS_FILE
    SecretKeys.load(path)
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str | None:
    """None for SQLite in the data dir, else the module's PostgreSQL database."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
async def coordinator(
    nursery: trio.Nursery, tmp_path: Path, database_url: str | None, module_secrets: Path
) -> AsyncIterator[Coordinator]:
    """A running coordinator (cancelled with the test's nursery)."""
    if database_url is not None:
        (tmp_path / "coordinator").mkdir(parents=True, exist_ok=True)
        shutil.copy2(module_secrets, tmp_path / "coordinator" / SECRETS_FILE)
    config = CoordinatorConfig(
        data=tmp_path / "coordinator",
        listen="127.0.0.1:0",
        database_url=database_url,
        admin_password=ADMIN_PASSWORD,
    )
    port = await nursery.start(serve, config)
    yield Coordinator(f"http://127.0.0.1:{port}", config)


@pytest.fixture
async def admin_http(coordinator: Coordinator) -> AsyncIterator[httpx.AsyncClient]:
    """httpx signed in as admin with Basic auth, based at ``/api/v2.0``."""
    async with httpx.AsyncClient(
        base_url=coordinator.api, auth=("admin", ADMIN_PASSWORD), timeout=30
    ) as client:
        yield client
