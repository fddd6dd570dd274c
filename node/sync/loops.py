"""The node's sync tasks: policy long poll, outbox shipping, pull flushing, reloading.

Each runs until cancelled and never lets a failure of the coordinator end it: transport
errors and refusals are logged and retried with :class:`Backoff`; ``trio.Cancelled``
always propagates.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Mapping

import trio

from node.auth.holder import PolicyHolder
from node.storage.base import MetadataStore
from node.sync.actor import CacheCounts
from node.sync.client import CoordinatorClient, SyncError
from node.sync.events import EventError, EventRecorder, decode_event
from portmesh.policy import PolicyError

__all__ = ["Backoff", "flush_pulls", "policy_loop", "reload_loop", "ship_once", "ship_outbox"]

log = logging.getLogger("portmesh.node.sync")

BATCH = 500
#: the shortest time between two polls that brought nothing new
MIN_POLL_INTERVAL = 1.0


class Backoff:
    """Delays that double from ``initial`` up to ``maximum``, with +-20 % jitter."""

    def __init__(self, initial: float = 0.5, maximum: float = 30.0) -> None:
        self.initial = initial
        self.maximum = maximum
        self._next = initial

    def next(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self.maximum)
        return delay * random.uniform(0.8, 1.2)

    def reset(self) -> None:
        self._next = self.initial


async def policy_loop(
    client: CoordinatorClient,
    holder: PolicyHolder,
    stats: Callable[[], Awaitable[Mapping[str, int | str]]],
    *,
    wait: int = 30,
    backoff: Backoff | None = None,
) -> None:
    """Long-poll for newer snapshots and swap them in, forever."""
    backoff = backoff or Backoff()
    while True:
        started = trio.current_time()
        try:
            policy = await client.policy(holder.current.policy.version, wait, await stats())
            if policy is not None:
                await holder.replace(policy)
            backoff.reset()
            if policy is None:  # a coordinator answering at once must not make a busy loop
                await trio.sleep_until(started + MIN_POLL_INTERVAL)
            continue
        except SyncError as exc:
            log.warning(
                "policy sync failed (%s); keeping version %d", exc, holder.current.policy.version
            )
        except PolicyError as exc:
            log.error("the coordinator's snapshot is unusable: %s", exc)
        await trio.sleep(backoff.next())


async def ship_once(client: CoordinatorClient, meta: MetadataStore, batch: int = BATCH) -> int:
    """Send the oldest outbox entries and drop them once the coordinator has them; how
    many were shipped. Raises SyncError (then nothing is dropped)."""
    entries = await meta.outbox_peek(batch)
    if not entries:
        return 0
    events = []
    for seq, payload in entries:
        try:
            events.append(decode_event(payload, seq))
        except EventError as exc:
            log.error("dropping an outbox entry: %s", exc)
    if events:
        await client.send_events(events)
    await meta.outbox_ack(entries[-1][0])
    return len(entries)


async def ship_outbox(
    client: CoordinatorClient,
    meta: MetadataStore,
    *,
    idle: float = 0.5,
    backoff: Backoff | None = None,
) -> None:
    """Ship the outbox forever: at least once, in order, acknowledged after a 2xx."""
    backoff = backoff or Backoff()
    while True:
        try:
            shipped = await ship_once(client, meta)
        except SyncError as exc:
            log.warning("event shipping failed (%s); retrying", exc)
            await trio.sleep(backoff.next())
            continue
        backoff.reset()
        if shipped < BATCH:
            await trio.sleep(idle)


async def flush_pulls(
    recorder: EventRecorder,
    meta: MetadataStore,
    interval: float,
    counts: CacheCounts | None = None,
) -> None:
    """Write this process's counted pulls to the outbox, and its cache answers to the
    shared counters, every ``interval`` seconds (and once more when cancelled)."""

    async def flush() -> None:
        await recorder.flush(meta)
        if counts is not None:
            await counts.flush(meta)

    try:
        while True:
            await trio.sleep(interval)
            try:
                await flush()
            except Exception:
                log.exception("could not write pull events; retrying")
    finally:
        with trio.CancelScope(shield=True):
            try:
                await flush()
            except Exception:
                log.exception("could not write pull events at shutdown")


async def reload_loop(holder: PolicyHolder, interval: float = 1.0) -> None:
    """Adopt snapshots another process of this node stored (workers that do not sync)."""
    while True:
        await trio.sleep(interval)
        try:
            await holder.reload()
        except Exception:
            log.exception("could not reload the policy snapshot")
