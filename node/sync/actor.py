"""Who made the current request, for the events it causes.

:class:`ActorMiddleware` sits inside the token enforcement (``node.auth``): a request that
reaches it with a Bearer token has had that token verified already, so the token's
``sub`` is read without verifying it a second time. The value lives in a context
variable for the duration of the request (trio tasks the request spawns inherit it);
outside a request, or on a node without authentication, :func:`current_actor` is
anonymous.

It also counts proxied pulls by their ``X-Portmesh-Cache`` answer (:class:`CacheCounts`:
each process adds its counts to counters in the node's LMDB that every worker shares; the
node's hit rate goes out with each policy poll) and reports the manifests the pull-through
cache served as pull events.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from node.auth.asgi import Receive, Scope, Send, header
from node.storage.base import MetadataStore

__all__ = ["Actor", "ActorMiddleware", "CacheCounts", "PullSink", "current_actor"]


@dataclass(frozen=True, slots=True)
class Actor:
    #: the request's authorization header, decoded only when an event needs the name
    authorization: str = ""
    method: str = ""

    @property
    def username(self) -> str:
        scheme, _, token = self.authorization.partition(" ")
        if scheme.lower() != "bearer" or token.count(".") != 2:
            return "anonymous"
        body = token.split(".")[1]
        try:
            claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except (binascii.Error, ValueError, UnicodeDecodeError):
            return "anonymous"
        sub = claims.get("sub") if isinstance(claims, dict) else None
        return sub if isinstance(sub, str) and sub else "anonymous"


_ANONYMOUS = Actor()
_ACTOR: ContextVar[Actor | None] = ContextVar("portmesh_actor", default=None)


#: the node's shared cache-answer counters: [hits, misses]
CACHE_COUNTS = "cache"


def current_actor() -> Actor:
    return _ACTOR.get() or _ANONYMOUS


@dataclass
class CacheCounts:
    """This process's cache answers since its last :meth:`flush`."""

    #: answers from the cache (``hit``, ``revalidated``, ``stale``)
    hits: int = 0
    #: answers fetched from the upstream (``miss``)
    misses: int = 0

    async def flush(self, meta: MetadataStore) -> None:
        """Add the counts to the node's shared counters and start again from zero."""
        hits, misses = self.hits, self.misses
        if hits or misses:
            await meta.add_counts(CACHE_COUNTS, [hits, misses])
            self.hits -= hits
            self.misses -= misses

    async def totals(self, meta: MetadataStore) -> tuple[int, int]:
        """(hits, misses) of every process of the node, this one's unflushed included."""
        stored = [*await meta.add_counts(CACHE_COUNTS, []), 0, 0]
        return stored[0] + self.hits, stored[1] + self.misses


#: ``pull(repository, reference, digest, media_type, size)``: a manifest pull to record
PullSink = Callable[[str, str, str, str, int], None]
_MANIFEST = re.compile(r"^/v2/(?P<name>.+)/manifests/(?P<ref>[^/]+)\Z")


class ActorMiddleware:
    """Records the caller of each HTTP request for :func:`current_actor`, counts cache
    answers into ``counts``, and reports manifests served by the pull-through cache to
    ``proxied_pull`` (the registry reports the pulls of its own repositories)."""

    def __init__(
        self, app: Any, counts: CacheCounts | None = None, proxied_pull: PullSink | None = None
    ) -> None:
        self.app = app
        self.counts = counts if counts is not None else CacheCounts()
        self.proxied_pull = proxied_pull

    def _answered(self, scope: Scope, message: Any) -> None:
        found = {}
        for key, value in message.get("headers", ()):
            name = bytes(key).lower()
            if name in _WANTED:
                found[name] = bytes(value).decode("latin-1")
        state = found.get(b"x-portmesh-cache")
        if state is None:
            return
        if state == "miss":
            self.counts.misses += 1
        else:
            self.counts.hits += 1
        if self.proxied_pull is None or scope["method"] != "GET" or message["status"] != 200:
            return
        match = _MANIFEST.match(scope["path"])
        digest = found.get(b"docker-content-digest")
        if match is None or digest is None:
            return
        size = found.get(b"content-length", "0")
        self.proxied_pull(
            match["name"],
            match["ref"],
            digest,
            found.get(b"content-type", ""),
            int(size) if size.isdigit() else 0,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = _ACTOR.set(Actor(header(scope, b"authorization") or "", scope["method"]))

        async def watching_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                self._answered(scope, message)
            await send(message)

        try:
            await self.app(scope, receive, watching_send)
        finally:
            _ACTOR.reset(token)


_WANTED = frozenset(
    {b"x-portmesh-cache", b"docker-content-digest", b"content-type", b"content-length"}
)
