"""The pull-through cache: manifests and blobs of proxied repositories.

- Manifests by digest are immutable: cached for good. By tag: served from cache within
  the upstream's ``tag_ttl``; after it, revalidated with a HEAD (HEADs do not count
  against Docker Hub's pull limits), and refetched only when the digest moved.
- Tag freshness lives in the MetadataStore (``tag_check``), shared by every worker
  process, in wall-clock time: one HEAD per tag per TTL for the whole node. The process
  that revalidates first claims it there (``claim_tag_check``, a lease of the upstream's
  timeout plus a second); meanwhile the others, and requests after a failed
  revalidation until the lease ends, serve the cached digest as stale.
- Stale-if-error: when the upstream refuses, times out (``timeout``, about 2 s), answers
  5xx or 429, fails authentication, or says 404 for something cached, the cached
  manifest is served and marked stale. A circuit breaker stops asking an upstream that
  keeps failing, so a dead upstream never makes pulls wait.
- Upstream 404s are remembered briefly (negative cache).
- Blobs come through :class:`~node.proxy.fill.Fills`: one fetch per digest. The config
  blob of an image manifest fetched from upstream is prefetched (``PREFETCH_MAX``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import trio

from adapters.base import (
    AuthFailed,
    NotFound,
    RateLimited,
    Upstream,
    UpstreamError,
)
from node.proxy.fill import Fill, Fills
from node.proxy.router import Route
from node.registry import Registry
from node.storage.base import BlobReader, ManifestRecord
from portmesh.oci.digest import Digest, parse_digest
from portmesh.oci.errors import OCIError
from portmesh.oci.manifest import parse_manifest

__all__ = ["Breaker", "CachedManifest", "ProxyCache"]

log = logging.getLogger("portmesh.proxy")

NEGATIVE_TTL = 10.0
#: a config blob at most this large is prefetched once its manifest came from upstream
#: (skopeo asks for it after the layers; docker and containerd right away, and so fetch it
#: themselves when they ask within ``PREFETCH_DELAY``)
PREFETCH_MAX = 1024 * 1024
#: how long a prefetch waits, so that the manifest's answer and the first layer the client
#: asks for next go first (its file and metadata syncs would hold their start up)
PREFETCH_DELAY = 0.1
#: how much longer than the upstream's timeout a revalidation claim holds
CLAIM_MARGIN = 1.0


@dataclass(frozen=True, slots=True)
class CachedManifest:
    record: ManifestRecord
    #: "hit", "miss", "revalidated" or "stale"
    state: str


@dataclass(slots=True)
class _Shared:
    """One revalidation that concurrent requests for the same tag wait on."""

    done: trio.Event = field(default_factory=trio.Event)
    outcome: CachedManifest | OCIError | None = None


class Breaker:
    """Opens after ``threshold`` consecutive failures; lets one try through per ``cooldown``."""

    def __init__(self, clock: Callable[[], float], threshold: int = 3, cooldown: float = 10.0):
        self.clock = clock
        self.threshold = threshold
        self.cooldown = cooldown
        self.failures = 0
        self.opened_at: float | None = None

    def allow(self) -> bool:
        if self.opened_at is None:
            return True
        if self.clock() - self.opened_at >= self.cooldown:
            self.opened_at = self.clock()  # half-open: one try, then wait again
            return True
        return False

    def succeeded(self) -> None:
        self.failures, self.opened_at = 0, None

    def failed(self) -> None:
        self.failures += 1
        if self.failures >= self.threshold:
            self.opened_at = self.clock()


class ProxyCache:
    """Pull-through operations for routed repositories, on the node's own storage."""

    def __init__(
        self,
        registry: Registry,
        fills: Fills,
        clients: Mapping[str, Upstream],
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        prefetch_delay: float = PREFETCH_DELAY,
    ) -> None:
        """``clock`` times breakers and the negative cache; ``wall`` (epoch seconds, as
        every process of the node shares it) times tag freshness."""
        self.registry = registry
        self.fills = fills
        self.clients = clients
        self.clock = clock
        self.wall = wall
        self.prefetch_delay = prefetch_delay
        #: the latest validation time of each tag this process has seen (the shared
        #: record only ever moves forward, so a fresh value here spares a store read)
        self._fresh: dict[tuple[str, str], float] = {}
        self._absent: dict[tuple[str, str], float] = {}
        self._revalidating: dict[tuple[str, str], _Shared] = {}
        self._breakers: dict[str, Breaker] = {}

    def _breaker(self, name: str) -> Breaker:
        breaker = self._breakers.get(name)
        if breaker is None:
            breaker = self._breakers[name] = Breaker(self.clock)
        return breaker

    # ------------------------------------------------------------------ manifests

    async def manifest(self, route: Route, reference: str) -> CachedManifest:
        meta, local = self.registry.meta, route.local
        cached = await meta.get_manifest(local, reference)
        if ":" in reference:
            parse_digest(reference)  # OCIError for a malformed one
            if cached is not None:
                return CachedManifest(cached, "hit")

            async def fetch(client: Upstream) -> CachedManifest:
                return CachedManifest(await self._fetch(client, route, reference, None), "miss")

            return await self._ask(route, reference, None, fetch)
        key, ttl = (local, reference), route.upstream.tag_ttl
        if cached is not None:
            if self.wall() - self._fresh.get(key, -1e18) < ttl:
                return CachedManifest(cached, "hit")
            check = await meta.tag_check(local, reference)
            if check is not None:
                self._note_fresh(key, check.checked)
                if self.wall() - check.checked < ttl:
                    return CachedManifest(cached, "hit")
        running = self._revalidating.get(key)
        if running is not None:  # one HEAD per tag at a time: wait for it and share it
            await running.done.wait()
            if running.outcome is None:
                raise OCIError("UNAVAILABLE", f"revalidating {reference} failed")
            if isinstance(running.outcome, OCIError):
                raise running.outcome
            return running.outcome
        shared = self._revalidating[key] = _Shared()
        try:
            if cached is not None and not await meta.claim_tag_check(
                local, reference, self.wall(), ttl, route.upstream.timeout + CLAIM_MARGIN
            ):  # another process revalidated it just now, is doing so, or failed to
                check = await meta.tag_check(local, reference)
                fresh = check is not None and self.wall() - check.checked < ttl
                shared.outcome = CachedManifest(cached, "hit" if fresh else "stale")
                return shared.outcome
            shared.outcome = await self._revalidate(route, reference, cached, key)
            return shared.outcome
        except OCIError as exc:
            shared.outcome = exc
            raise
        finally:
            del self._revalidating[key]
            shared.done.set()

    async def _revalidate(
        self,
        route: Route,
        reference: str,
        cached: ManifestRecord | None,
        key: tuple[str, str],
    ) -> CachedManifest:

        async def revalidate(client: Upstream) -> CachedManifest:
            if cached is None:  # nothing to compare with: one GET, not a HEAD and a GET
                record = await self._fetch(client, route, reference, reference)
            else:
                resolved = await client.resolve(route.remote, reference)
                if resolved.digest == cached.digest:
                    await self._checked(key)
                    return CachedManifest(cached, "revalidated")
                record = await self._fetch(client, route, str(resolved.digest), reference)
            return CachedManifest(record, "miss")

        return await self._ask(route, reference, cached, revalidate)

    async def _checked(self, key: tuple[str, str]) -> None:
        """Record, for every process, that the tag ``key`` was validated just now."""
        now = self.wall()
        await self.registry.meta.mark_tag_checked(*key, now)
        self._note_fresh(key, now)

    def _note_fresh(self, key: tuple[str, str], checked: float) -> None:
        self._fresh[key] = max(self._fresh.get(key, -1e18), checked)

    async def _fetch(
        self, client: Upstream, route: Route, reference: str, tag: str | None
    ) -> ManifestRecord:
        """Fetch ``reference`` and cache it (``tag`` pointing at it, validated now, in the
        same transaction); a config blob of an image manifest starts coming into the cache
        too (see :meth:`_prefetch`)."""
        fetched = await client.fetch_manifest(route.remote, reference)
        parsed = parse_manifest(fetched.body, fetched.media_type)
        record = ManifestRecord(
            digest=fetched.digest,
            media_type=parsed.media_type,
            body=fetched.body,
            subject=parsed.subject.digest if parsed.subject else None,
            artifact_type=parsed.artifact_type,
            annotations=parsed.annotations,
            created=time.time(),
        )
        # The blobs it references are fetched on demand, so none is required here.
        now = self.wall()
        await self.registry.meta.put_manifest(
            route.local,
            record,
            tag=tag,
            blobs=(),
            children=(),
            checked=None if tag is None else now,
        )
        if tag is not None:
            self._note_fresh((route.local, tag), now)
        config = parsed.blobs[0] if parsed.blobs else None
        if config is not None and config.size <= PREFETCH_MAX:
            self.fills.nursery.start_soon(self._prefetch, route, config.digest)
        return record

    async def _prefetch(self, route: Route, digest: Digest) -> None:
        """Start bringing a small blob into the cache before a client asks for it, as a
        client's request would (the fill goes on in the fills' nursery); a failure is left
        for the client's own request to meet."""
        await trio.sleep(self.prefetch_delay)
        try:
            found = await self.blob(route, digest)
            if not isinstance(found, Fill):
                await found.aclose()  # cached already
        except Exception as exc:
            log.debug("prefetching %s failed: %s", digest, exc)

    async def _ask(
        self,
        route: Route,
        reference: str,
        cached: ManifestRecord | None,
        ask: Callable[[Upstream], Awaitable[CachedManifest]],
    ) -> CachedManifest:
        """Run ``ask(client)`` within the failure budget; when it fails serve ``cached``."""
        upstream = route.upstream
        breaker = self._breaker(upstream.name)
        absent_key = (route.local, reference)
        if cached is None and self._absent.get(absent_key, -1e18) > self.clock():
            raise OCIError("MANIFEST_UNKNOWN", f"upstream {upstream.name} has no {reference}")
        error: OCIError
        if cached is not None and self.exhausted(upstream.name):
            return CachedManifest(cached, "stale")  # no pulls left upstream: do not spend one
        if not breaker.allow():
            error = OCIError("UNAVAILABLE", f"upstream {upstream.name} is failing; not asked")
        else:
            try:
                with trio.fail_after(upstream.timeout):
                    result = await ask(self.clients[upstream.name])
                breaker.succeeded()
                return result
            except NotFound as exc:
                breaker.succeeded()
                self._absent[absent_key] = self.clock() + NEGATIVE_TTL
                error = OCIError("MANIFEST_UNKNOWN", f"upstream {upstream.name}: {exc}")
            except (UpstreamError, trio.TooSlowError) as exc:
                breaker.failed()
                error = _translate(upstream.name, exc)
        if cached is not None:
            return CachedManifest(cached, "stale")
        raise error

    def exhausted(self, name: str) -> bool:
        """Whether the upstream said it has no pulls left (Docker Hub's ``ratelimit-*``)."""
        limit = getattr(self.clients[name], "rate_limit", None)
        return limit is not None and limit.remaining == 0

    async def tags(self, route: Route, n: int | None, last: str | None) -> list[str]:
        """The upstream's tags; the cached ones when the upstream cannot answer."""
        upstream = route.upstream
        breaker = self._breaker(upstream.name)
        error: OCIError | None = None
        if breaker.allow():
            try:
                with trio.fail_after(upstream.timeout):
                    found = await self.clients[upstream.name].list_tags(route.remote, n, last)
                breaker.succeeded()
                return found
            except NotFound as exc:
                breaker.succeeded()
                raise OCIError("NAME_UNKNOWN", f"upstream {upstream.name}: {exc}") from exc
            except (UpstreamError, trio.TooSlowError) as exc:
                breaker.failed()
                error = _translate(upstream.name, exc)
        cached = await self.registry.meta.list_tags(route.local, n, last)
        if cached is None:
            raise error or OCIError("UNAVAILABLE", f"upstream {upstream.name} is failing")
        return cached

    async def referrers(
        self, route: Route, subject: Digest, artifact_type: str | None
    ) -> bytes | None:
        """The upstream's referrers index (filtered); None when it cannot answer, so the
        caller serves the cached referrers instead."""
        upstream = route.upstream
        breaker = self._breaker(upstream.name)
        if not breaker.allow():
            return None
        try:
            with trio.fail_after(upstream.timeout):
                body = await self.clients[upstream.name].referrers(
                    route.remote, subject, artifact_type
                )
        except (UpstreamError, trio.TooSlowError):
            breaker.failed()
            return None
        breaker.succeeded()
        return body

    # ------------------------------------------------------------------ blobs

    async def blob(self, route: Route, digest: Digest) -> BlobReader | Fill:
        """The local blob, or the fill bringing it (raises OCIError when that fails)."""
        meta, local = self.registry.meta, route.local
        size = await meta.blob_size(local, digest)
        if size is None:
            size = await self.registry.blobs.stat(digest)
            if size is not None:  # cached through another repository of this upstream
                await meta.link_blob(local, digest, size)
        if size is not None:
            try:
                return await self.registry.open_blob(local, digest)
            except OCIError:
                pass  # evicted meanwhile: fetch it again
        client = self.clients[route.upstream.name]

        async def link(size: int) -> None:
            await meta.link_blob(local, digest, size)
            self.registry.note_pull(digest)

        try:
            return await self.fills.join(
                digest, lambda: client.open_blob(route.remote, digest), link
            )
        except Exception as exc:
            cause = exc.__cause__
            if isinstance(cause, NotFound):
                raise OCIError("BLOB_UNKNOWN", detail={"digest": str(digest)}) from exc
            if isinstance(cause, (UpstreamError, trio.TooSlowError)):
                raise _translate(route.upstream.name, cause) from exc
            raise

    async def ranged(
        self, route: Route, digest: Digest, start: int, length: int | None
    ) -> AsyncIterator[bytes]:
        """Bytes ``[start, start+length)`` of a blob straight from upstream, uncached (the
        fill that runs beside it verifies and caches the whole blob)."""
        client = self.clients[route.upstream.name]
        async with client.open_blob(route.remote, digest, start, length) as stream:
            pos, end = stream.offset, None if length is None else start + length
            async for chunk in stream:  # an upstream that ignored Range sends it all
                lo, hi = max(start - pos, 0), len(chunk) if end is None else end - pos
                pos += len(chunk)
                if hi > lo:
                    yield chunk[lo:hi]
                if end is not None and pos >= end:
                    return


def _translate(name: str, exc: BaseException) -> OCIError:
    if isinstance(exc, RateLimited):
        headers = {"Retry-After": str(int(exc.retry_after))} if exc.retry_after else {}
        return OCIError("TOOMANYREQUESTS", f"upstream {name}: {exc}", headers=headers)
    if isinstance(exc, AuthFailed):
        return OCIError("UNAVAILABLE", f"upstream {name} refused the node's credentials: {exc}")
    if isinstance(exc, trio.TooSlowError):
        return OCIError("UNAVAILABLE", f"upstream {name} did not answer in time")
    return OCIError("UNAVAILABLE", f"upstream {name}: {exc}")
