"""The current policy snapshot of this coordinator process, and waiting for a newer one.

:class:`PolicyWatch` keeps the last ``(version, policy)`` it computed
(:mod:`coordinator.policy_build`). :meth:`PolicyWatch.run` re-checks the database every
``recheck`` seconds (so a change made through another replica is seen) and at once after
:meth:`PolicyWatch.poke` (called by this process after a successful change). Long polls
wait in :meth:`PolicyWatch.newer_than`, which returns as soon as a newer version is known.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import trio
from sqlalchemy import Connection

from coordinator.db.engine import Database
from coordinator.policy_build import PolicySources, build_policy, content_digest, sync_version
from portmesh.policy import Policy

__all__ = ["PolicyWatch", "Snapshot"]

log = logging.getLogger("portmesh.coordinator.policy")


@dataclass(frozen=True)
class Snapshot:
    version: int
    policy: Policy


class PolicyWatch:
    def __init__(self, db: Database, sources: PolicySources, *, recheck: float = 2.0) -> None:
        self._db = db
        self._sources = sources
        self._recheck = recheck
        self._snapshot: Snapshot | None = None
        self._lock = trio.Lock()
        self._changed = trio.Event()
        self._poke = trio.Event()

    def _compute(self, conn: Connection) -> Snapshot:
        policy = build_policy(conn, self._sources)
        return Snapshot(sync_version(conn, content_digest(policy)), policy)

    async def refresh(self) -> Snapshot:
        """Rebuild from the database now; wakes the waiters when the version grew."""
        async with self._lock:
            fresh = await self._db.run(self._compute)
            old = self._snapshot
            if old is not None and fresh.version == old.version:
                return old
            self._snapshot = fresh
            if old is not None:
                log.info("policy version %d -> %d", old.version, fresh.version)
            self._changed.set()
            self._changed = trio.Event()
            return fresh

    async def current(self) -> Snapshot:
        return self._snapshot if self._snapshot is not None else await self.refresh()

    def poke(self) -> None:
        """Ask :meth:`run` to re-check now (after a change made by this process)."""
        self._poke.set()

    async def newer_than(self, version: int, seconds: float) -> Snapshot | None:
        """The current snapshot once its version is above ``version``, or None after
        ``seconds`` without one."""
        snapshot = await self.current()
        with trio.move_on_after(seconds):
            while snapshot.version <= version:
                await self._changed.wait()
                snapshot = await self.current()
            return snapshot
        return None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Re-check forever (database errors are logged and retried next round)."""
        task_status.started()
        while True:
            with trio.move_on_after(self._recheck):
                await self._poke.wait()
            self._poke = trio.Event()
            try:
                await self.refresh()
            except Exception:
                log.exception("could not rebuild the policy snapshot; retrying")
