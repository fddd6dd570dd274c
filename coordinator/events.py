"""Node events in: audit rows and the artifact index, exactly once per event.

A node ships batches of events (``POST /api/v2.0/nodes/{id}/events``, see
``coordinator.api.nodes``); each event is a mapping::

    {"type": "push" | "pull" | "delete",
     "seq": int,                 # the node's outbox sequence number, increasing
     "repository": str,          # "<project>/<path>", e.g. "library/alpine"
     "reference": str,           # the tag, or the digest when there is none
     "tag": str | None,          # the tag pushed, pulled or deleted (None: by digest)
     "digest": str,              # the manifest's digest ("sha256:...")
     "media_type": str,          # the manifest's media type ("" for a delete)
     "size": int,                # the manifest's size in bytes (0 for a delete)
     "username": str,            # who did it ("" or "anonymous" when nobody signed in)
     "time": float,              # when, in epoch seconds
     "count": int}               # pulls coalesced into this event (1 otherwise)

Delivery is at least once, so duplicates arrive: :func:`ingest_events` keeps, per node,
the highest ``seq`` applied (``event_cursors``) and ignores events at or below it, in the
same transaction that applies the rest. A batch whose ``seq`` values are missing or not
integers is refused whole (Invalid: nothing is written); an event that is well numbered
but otherwise unusable (unknown type, bad digest) is logged and skipped, so one bad event
cannot block a node's outbox forever.

Each applied event writes one audit row (push -> operation ``create``, pull -> ``pull``,
delete -> ``delete``; resource_type ``artifact``, or ``tag`` for a tag delete; resource
``<repository>:<tag>`` or ``<repository>@<digest>``) and updates the artifact index
(``coordinator.artifacts``) when the repository's project exists.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from coordinator import artifacts
from coordinator.audit import AuditEntry, insert_entry
from coordinator.db.schema import event_cursors, now
from coordinator.errors import Invalid

__all__ = ["EVENT_TYPES", "NodeEvent", "ingest_events", "parse_event"]

log = logging.getLogger("portmesh.coordinator.events")

EVENT_TYPES = ("push", "pull", "delete")
_OPERATIONS = {"push": "create", "pull": "pull", "delete": "delete"}
_DIGEST = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+\Z")
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_NAME = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*\Z")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}\Z")


@dataclass(frozen=True)
class NodeEvent:
    """One checked event (see the module docstring for the fields)."""

    type: str
    seq: int
    repository: str
    tag: str | None
    digest: str
    media_type: str
    size: int
    username: str
    time: datetime
    count: int

    @property
    def resource(self) -> str:
        return f"{self.repository}:{self.tag}" if self.tag else f"{self.repository}@{self.digest}"


def _seq(event: Mapping[str, Any]) -> int:
    seq = event.get("seq")
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq < 2**63:
        raise Invalid(f"every event needs an integer seq >= 0, got {seq!r}")
    return seq


def _str(event: Mapping[str, Any], key: str, default: str = "") -> str:
    value = event.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a string")
    return value


def _int(event: Mapping[str, Any], key: str, default: int) -> int:
    value = event.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise ValueError(f"{key} must be an integer >= 0")
    return value


def _time(value: object) -> datetime:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError("time must be epoch seconds")
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise ValueError("time is out of range") from exc


def parse_event(event: Mapping[str, Any]) -> NodeEvent:
    """The checked form of one event; ValueError says what is wrong (Invalid for seq)."""
    seq = _seq(event)
    kind = event.get("type")
    if kind not in EVENT_TYPES:
        raise ValueError(f"unknown event type {kind!r}")
    repository = _str(event, "repository")
    if len(repository) > 255 or not _NAME.match(repository):
        raise ValueError(f"invalid repository name {repository[:300]!r}")
    reference = _str(event, "reference")
    tag = _str(event, "tag") or None
    digest = _str(event, "digest") or (reference if ":" in reference else "")
    if tag is None and kind != "delete" and reference and ":" not in reference:
        tag = reference
    if tag is not None and not _TAG.match(tag):
        raise ValueError(f"invalid tag {tag[:200]!r}")
    if not _DIGEST.match(digest) or len(digest) > 255:
        raise ValueError(f"invalid digest {digest[:300]!r}")
    count = _int(event, "count", 1)
    return NodeEvent(
        type=str(kind),
        seq=seq,
        repository=repository,
        tag=tag,
        digest=digest,
        media_type=_str(event, "media_type")[:255],
        size=_int(event, "size", 0),
        username=(_str(event, "username") or "anonymous")[:255],
        time=_time(event.get("time")),
        count=max(count, 1),
    )


def _cursor(conn: Connection, node_id: int) -> int:
    """The node's highest applied seq (-1: none), its row locked until the transaction
    ends so two deliveries of one batch cannot both apply it (a concurrent first insert
    fails with a conflict and the node sends again)."""
    last = conn.execute(
        select(event_cursors.c.last_seq).where(event_cursors.c.node_id == node_id).with_for_update()
    ).scalar()
    if last is None:
        conn.execute(insert(event_cursors).values(node_id=node_id, last_seq=-1, update_time=now()))
        return -1
    return int(last)


def _apply(conn: Connection, event: NodeEvent) -> None:
    project_id = artifacts.project_of(conn, event.repository)
    resource_type = "tag" if event.type == "delete" and event.tag else "artifact"
    insert_entry(
        conn,
        AuditEntry(
            username=event.username,
            operation=_OPERATIONS[event.type],
            resource_type=resource_type,
            resource=event.resource,
            result=True,
            project_id=project_id,
            op_time=event.time,
        ),
    )
    if project_id is None:
        return
    if event.type == "push":
        artifacts.record_push(
            conn,
            project_id,
            event.repository,
            event.digest,
            event.media_type,
            event.size,
            event.tag,
            event.time,
        )
    elif event.type == "pull":
        artifacts.record_pull(
            conn,
            project_id,
            event.repository,
            event.digest,
            event.media_type,
            event.size,
            event.tag,
            event.time,
            event.count,
        )
    else:
        artifacts.record_delete(conn, event.repository, event.tag, event.digest, event.time)


def ingest_events(conn: Connection, node_id: int, events: Sequence[Mapping[str, Any]]) -> int:
    """Apply the events of ``node_id`` not applied before (by ``seq``), in ``seq`` order;
    how many were applied. Invalid (nothing written) when a ``seq`` is missing or bad."""
    numbered = sorted(((_seq(e), e) for e in events), key=lambda pair: pair[0])
    last = _cursor(conn, node_id)
    applied = 0
    newest = last
    for seq, raw in numbered:
        if seq <= newest:
            continue  # delivered before (or twice in this batch)
        newest = seq
        try:
            event = parse_event(raw)
        except ValueError as exc:
            log.error("node %d: skipping event %d: %s", node_id, seq, exc)
            continue
        _apply(conn, event)
        applied += 1
    if newest > last:
        conn.execute(
            update(event_cursors)
            .where(event_cursors.c.node_id == node_id)
            .values(last_seq=newest, update_time=now())
        )
    return applied
