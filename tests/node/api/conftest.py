"""Fixtures for the OCI Distribution API tests: a real node served in the test's nursery.

``node`` is a Portmesh node (``node.app.serve``) listening on a free loopback port, with its
data under the test's ``tmp_path`` and authentication off; ``node.client`` is a real
``httpx.AsyncClient`` talking HTTP to it. ``await node.restart()`` stops the server, waits
until it has closed its stores, and starts a new one on the same data directory (the client
follows the new port). Tests that need other settings use ``start_node(nursery, config)``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio
from oci_helpers import RunningNode, make_config, start_node


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[RunningNode]:
    """A Portmesh node with default settings, data under ``tmp_path / "node"``."""
    async with trio.open_nursery() as nursery:
        running = await start_node(nursery, make_config(tmp_path / "node"))
        try:
            yield running
        finally:
            await running.aclose()


@pytest.fixture
def client(node: RunningNode) -> httpx.AsyncClient:
    """The HTTP client of the ``node`` fixture (base URL set)."""
    return node.client
