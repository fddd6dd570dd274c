"""The node's sync with its coordinator, for the composition root (``node/app.py``).

:func:`open_sync` gets the node's identity (joining on first start; several worker
processes take turns with an flock on ``<data>/sync/join.lock``), fetches a first
snapshot when the coordinator answers, and yields a :class:`Sync` whose :meth:`Sync.run`
runs the loops. Only one process of the node talks to the coordinator: the one holding
the flock on ``<data>/sync/leader.lock`` polls the policy and ships the outbox; the
others reload the snapshot it stores and try to take over every ``LEADER_RETRY``
seconds (the lock is released when its process dies). Every process flushes the pulls
it counted into the shared outbox.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from functools import partial
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import IO

import httpx
import trio

from node.auth.holder import PolicyHolder
from node.config import NodeConfig
from node.registry import Registry
from node.sync.actor import CacheCounts
from node.sync.client import CoordinatorClient, SyncError
from node.sync.events import EventRecorder
from node.sync.identity import Identity, ensure_identity, sync_dir
from node.sync.loops import flush_pulls, policy_loop, reload_loop, ship_outbox

__all__ = ["LEADER_RETRY", "Sync", "open_sync"]

log = logging.getLogger("portmesh.node.sync")

LEADER_RETRY = 10.0
PULL_FLUSH_INTERVAL = 2.0
FIRST_POLL_TIMEOUT = 5.0


def _node_version() -> str:
    try:
        return version("portmesh")
    except PackageNotFoundError:
        return "dev"


class _Flock:
    """An exclusive flock on a file, held until ``release`` (or the process ends)."""

    def __init__(self, path: Path) -> None:
        self._file: IO[bytes] = open(path, "ab")  # noqa: SIM115 - held until release

    def try_acquire(self) -> bool:
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def acquire(self) -> None:
        fcntl.flock(self._file.fileno(), fcntl.LOCK_EX)

    def release(self) -> None:
        self._file.close()


class Sync:
    """The running parts: ``client`` (coordinator), ``holder`` (snapshot), ``recorder``
    (events of this process), ``counts`` (cache answers of this process)."""

    def __init__(
        self,
        client: CoordinatorClient,
        holder: PolicyHolder,
        registry: Registry,
        recorder: EventRecorder,
        counts: CacheCounts,
        *,
        data: Path,
        wait: int,
    ) -> None:
        self.client = client
        self.holder = holder
        self.registry = registry
        self.recorder = recorder
        self.counts = counts
        self.data = data
        self.wait = wait

    @property
    def identity(self) -> Identity:
        return self.client.identity

    async def stats(self) -> Mapping[str, int | str]:
        hits, misses = await self.counts.totals(self.registry.meta)
        return {
            "cache_bytes": await self.registry.blobs.usage(),
            "cache_hits": hits,
            "cache_misses": misses,
            "node_version": _node_version(),
        }

    async def first_snapshot(self) -> None:
        """Take a newer snapshot if the coordinator answers within a few seconds."""
        with trio.move_on_after(FIRST_POLL_TIMEOUT):
            try:
                policy = await self.client.policy(
                    self.holder.current.policy.version, 0, await self.stats()
                )
            except SyncError as exc:
                log.warning("coordinator unreachable at start (%s); serving the last snapshot", exc)
                return
            if policy is not None:
                await self.holder.replace(policy)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run this process's sync tasks until cancelled."""
        meta = self.registry.meta
        lock = _Flock(sync_dir(self.data) / "leader.lock")
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(
                    flush_pulls, self.recorder, meta, PULL_FLUSH_INTERVAL, self.counts
                )
                task_status.started()
                follower = trio.CancelScope()
                nursery.start_soon(self._follow, follower)
                await _lead(lock)
                follower.cancel()
                log.info("node %d syncs with %s", self.identity.node_id, self.client.base)
                nursery.start_soon(ship_outbox, self.client, meta)
                nursery.start_soon(
                    partial(policy_loop, self.client, self.holder, self.stats, wait=self.wait)
                )
        finally:
            lock.release()

    async def _follow(self, scope: trio.CancelScope) -> None:
        with scope:
            await reload_loop(self.holder)


async def _lead(lock: _Flock) -> None:
    """Return once this process holds ``lock``."""
    while True:
        if lock.try_acquire():
            return
        await trio.sleep(LEADER_RETRY)


def _default_name() -> str:
    return re.sub(r"[^a-z0-9.-]+", "-", os.uname().nodename.lower()).strip(".-") or "node"


@asynccontextmanager
async def open_sync(
    config: NodeConfig, registry: Registry, holder: PolicyHolder, counts: CacheCounts
) -> AsyncIterator[Sync | None]:
    """The node's sync (None without a coordinator). Raises JoinError when the node has
    no identity and cannot join."""
    auth = config.auth
    if not auth.coordinator_url or registry.events is None:
        yield None
        return
    directory = sync_dir(config.data)
    directory.mkdir(parents=True, exist_ok=True)
    async with httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=5.0)) as http:
        join_lock = _Flock(directory / "join.lock")
        try:
            await trio.to_thread.run_sync(join_lock.acquire)
            identity, key = await ensure_identity(
                http,
                auth.coordinator_url,
                data=config.data,
                join_token=auth.join_token,
                name=auth.name or _default_name(),
                url=auth.external_url or f"http://{config.listen}",
            )
        finally:
            join_lock.release()
        client = CoordinatorClient(http, identity, key)
        sync = Sync(
            client,
            holder,
            registry,
            registry.events,
            counts,
            data=config.data,
            wait=auth.poll_wait,
        )
        await sync.first_snapshot()
        yield sync
