"""Fixtures for the OCI Distribution API tests: a real node served in the test's nursery.

``node`` is a Portmesh node (``node.app.serve``) listening on a free loopback port, with its
data under the test's ``tmp_path`` and authentication off; ``node.client`` is a real
``httpx.AsyncClient`` talking HTTP to it. ``await node.restart()`` stops the server, waits
until it has closed its stores, and starts a new one on the same data directory (the client
follows the new port). Tests that need other settings use ``start_node(nursery, config)``.

``PORTMESH_API_PEER=docker-registry`` runs the same tests against docker-registry instead
(the reference implementation), to tell spec questions from node bugs; tests that need a
restart or node settings are skipped there, and the peer is expected to fail the v1.1
features it lacks (referrers, OCI-Subject, sha512).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio
from oci_helpers import REQUEST_TIMEOUT, RunningNode, make_config, start_node

PEER = os.environ.get("PORTMESH_API_PEER", "")


class PeerNode(RunningNode):
    """docker-registry behind the same interface; it cannot be restarted here."""

    def __init__(self, nursery: trio.Nursery, port: int) -> None:
        super().__init__(nursery, make_config(Path("/nonexistent")))
        self.port = port
        self.client = httpx.AsyncClient(base_url=self.base_url, timeout=REQUEST_TIMEOUT)

    async def restart(self) -> None:
        pytest.skip("the peer registry is not restarted by these tests")


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[RunningNode]:
    """A Portmesh node with default settings, data under ``tmp_path / "node"``."""
    async with trio.open_nursery() as nursery:
        if PEER == "docker-registry":
            from support.servers import run_docker_registry

            async with run_docker_registry(tmp_path / "peer") as server:
                peer = PeerNode(nursery, server.port)
                try:
                    yield peer
                finally:
                    await peer.client.aclose()
            return
        running = await start_node(nursery, make_config(tmp_path / "node"))
        try:
            yield running
        finally:
            await running.aclose()


@pytest.fixture
def client(node: RunningNode) -> httpx.AsyncClient:
    """The HTTP client of the ``node`` fixture (base URL set)."""
    return node.client
