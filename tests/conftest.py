"""Fixtures shared by the whole suite: real registries started as subprocesses.

``registry_target`` is the registry the integration tests drive. It is the Portmesh node;
set ``PORTMESH_IT_TARGETS=portmesh,docker-registry`` to run the same tests against
docker-registry too (the reference implementation, to tell client quirks from node bugs).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from support.servers import (
    Server,
    require_binary,
    run_docker_registry,
    run_node,
)

TARGETS = [
    name.strip()
    for name in os.environ.get("PORTMESH_IT_TARGETS", "portmesh").split(",")
    if name.strip()
]


@pytest.fixture
async def portmesh_node(tmp_path: Path) -> AsyncIterator[Server]:
    """A Portmesh node (``portmesh node --no-auth``) with its data under ``tmp_path``."""
    async with run_node(tmp_path / "portmesh") as server:
        yield server


@pytest.fixture
async def docker_registry(tmp_path: Path) -> AsyncIterator[Server]:
    """docker-registry with filesystem storage under ``tmp_path``."""
    async with run_docker_registry(tmp_path / "docker-registry") as server:
        yield server


@pytest.fixture(params=TARGETS)
async def registry_target(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Server]:
    """The registry under test: the Portmesh node, or docker-registry (see module doc)."""
    kind = request.param
    if kind == "portmesh":
        async with run_node(tmp_path / "target") as server:
            yield server
    elif kind == "docker-registry":
        async with run_docker_registry(tmp_path / "target") as server:
            yield server
    else:
        raise ValueError(f"unknown PORTMESH_IT_TARGETS entry {kind!r}")


@pytest.fixture
def skopeo() -> str:
    """Path of the skopeo binary."""
    return require_binary("skopeo")


@pytest.fixture
def podman() -> str:
    """Path of the podman binary."""
    return require_binary("podman")
