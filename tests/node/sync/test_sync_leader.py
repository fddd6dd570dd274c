"""One process of a node syncs: the flock holder polls and ships; the others reload the
snapshot it stores and take over when it stops."""

from __future__ import annotations

from pathlib import Path

import httpx
import trio

from node.auth.holder import PolicyHolder
from node.registry import Registry
from node.storage.memory import MemoryBlobStore, MemoryMetadataStore
from node.sync.actor import CacheCounts
from node.sync.client import CoordinatorClient
from node.sync.events import EventRecorder
from node.sync.identity import Identity
from node.sync.service import LEADER_RETRY, Sync
from portmesh.policy import Policy, ServiceInfo
from portmesh.tokens import KeySet, SigningKey


async def make_sync(tmp_path: Path, meta: MemoryMetadataStore, calls: list[str], who: str) -> Sync:
    async def coordinator(request: httpx.Request) -> httpx.Response:
        calls.append(who)
        await trio.sleep(float(request.url.params["wait"]))
        return httpx.Response(304)

    http = httpx.AsyncClient(transport=httpx.MockTransport(coordinator))
    client = CoordinatorClient(http, Identity(1, "edge", "edge", "http://c"), SigningKey.generate())
    initial = Policy(version=0, issued_at=0.0, service=ServiceInfo("", ""))
    holder = await PolicyHolder.open(meta, KeySet(), initial)
    recorder = EventRecorder()
    registry = Registry(MemoryBlobStore(), meta, events=recorder)
    (tmp_path / "sync").mkdir(exist_ok=True)
    return Sync(client, holder, registry, recorder, CacheCounts(), data=tmp_path, wait=1)


async def test_only_the_lock_holder_syncs_and_another_takes_over(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    meta = MemoryMetadataStore()  # shared, as the LMDB environment is between processes
    calls: list[str] = []
    first = await make_sync(tmp_path, meta, calls, "first")
    second = await make_sync(tmp_path, meta, calls, "second")
    async with trio.open_nursery() as nursery:
        leader = trio.CancelScope()

        async def run_first() -> None:
            with leader:
                await first.run()

        nursery.start_soon(run_first)
        await trio.sleep(0.1)
        await nursery.start(second.run)
        await trio.sleep(5)
        assert calls and set(calls) == {"first"}
        # the follower adopts what the leader stores
        newer = Policy(version=3, issued_at=1.0, service=ServiceInfo("c", "edge"))
        await first.holder.replace(newer)
        await trio.sleep(3)
        assert second.holder.current.policy.version == 3
        leader.cancel()
        await trio.sleep(LEADER_RETRY + 2)
        assert calls[-1] == "second", "the follower took over"
        nursery.cancel_scope.cancel()
