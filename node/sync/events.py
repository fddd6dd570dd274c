"""The events a node reports to the coordinator, and how they are encoded.

An event is a plain mapping (the shape ``coordinator.events`` ingests)::

    {"type": "push" | "pull" | "delete", "seq": int, "repository": str,
     "reference": str,          # the tag, or the digest when there is none
     "tag": str | None, "digest": str, "media_type": str, "size": int,
     "username": str, "time": float (epoch seconds), "count": int (pulls coalesced)}

``seq`` is the outbox sequence number, given when the batch is shipped (the outbox
assigns it when the event is stored). In the outbox an event is an uncompressed
:mod:`portmesh.codec` frame of the mapping without ``seq`` (:func:`encode_event`); a
batch travels as one compressed frame of the list (:func:`encode_batch`).

:class:`EventRecorder` makes the events of one node process: pushes and deletes are
returned as payloads for the storage call that makes the change (same transaction);
pulls of manifests (``GET``, not ``HEAD``) are counted in memory per (repository,
reference, digest, user) and written to the outbox in one transaction by
:meth:`EventRecorder.flush`, so no pull costs a write.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from node.storage.base import MetadataStore
from node.sync.actor import current_actor
from portmesh import codec

__all__ = ["EventError", "EventRecorder", "decode_event", "encode_batch", "encode_event"]

_PullKey = tuple[str, str, str, str, str, int]


class EventError(ValueError):
    """A stored event that cannot be decoded."""


def encode_event(event: Mapping[str, Any]) -> bytes:
    return codec.encode(dict(event))


def decode_event(payload: bytes, seq: int) -> dict[str, Any]:
    """The event stored as ``payload`` under ``seq``; EventError if it is damaged."""
    try:
        event = codec.decode(payload)
    except codec.CodecError as exc:
        raise EventError(f"outbox entry {seq} is damaged: {exc}") from exc
    if not isinstance(event, dict):
        raise EventError(f"outbox entry {seq} is not an event")
    event["seq"] = seq
    return event


def encode_batch(events: Sequence[Mapping[str, Any]]) -> bytes:
    return codec.encode([dict(e) for e in events], compress=True)


class EventRecorder:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._pulls: dict[_PullKey, tuple[int, float]] = {}

    def _event(
        self,
        kind: str,
        repo: str,
        reference: str,
        tag: str | None,
        digest: str,
        media_type: str,
        size: int,
        username: str,
        when: float,
        count: int = 1,
    ) -> dict[str, Any]:
        return {
            "type": kind,
            "repository": repo,
            "reference": reference,
            "tag": tag,
            "digest": digest,
            "media_type": media_type,
            "size": size,
            "username": username,
            "time": when,
            "count": count,
        }

    def push(self, repo: str, tag: str | None, digest: str, media_type: str, size: int) -> bytes:
        """The payload of a manifest push by the current caller."""
        actor = current_actor().username
        event = self._event(
            "push", repo, tag or digest, tag, digest, media_type, size, actor, self.clock()
        )
        return encode_event(event)

    def delete(self, repo: str, reference: str, digest: str | None) -> bytes:
        """The payload of a manifest or tag delete by the current caller."""
        tag = None if ":" in reference else reference
        actor = current_actor().username
        event = self._event(
            "delete", repo, reference, tag, digest or reference, "", 0, actor, self.clock()
        )
        return encode_event(event)

    def pull(self, repo: str, reference: str, digest: str, media_type: str, size: int) -> None:
        """Count a manifest pull by the current caller (HEAD requests are not pulls)."""
        actor = current_actor()
        if actor.method == "HEAD":
            return
        key = (repo, reference, digest, actor.username, media_type, size)
        count, _ = self._pulls.get(key, (0, 0.0))
        self._pulls[key] = (count + 1, self.clock())

    @property
    def pending(self) -> int:
        return len(self._pulls)

    async def flush(self, meta: MetadataStore) -> int:
        """Write the pulls counted since the last flush to the outbox, in one
        transaction; how many events that made. On failure they are counted again."""
        pulls, self._pulls = self._pulls, {}
        if not pulls:
            return 0
        payloads = []
        for (repo, reference, digest, user, media_type, size), (count, when) in pulls.items():
            tag = None if ":" in reference else reference
            event = self._event(
                "pull", repo, reference, tag, digest, media_type, size, user, when, count
            )
            payloads.append(encode_event(event))
        try:
            await meta.outbox_append(payloads)
        except BaseException:
            for key, (count, when) in pulls.items():
                have, _ = self._pulls.get(key, (0, 0.0))
                self._pulls[key] = (have + count, when)
            raise
        return len(payloads)
