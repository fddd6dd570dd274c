"""The node's composition root: open the stores, build the registry and the HTTP app, serve.

``serve`` runs one node process in the caller's trio nursery::

    port = await nursery.start(serve, NodeConfig(data=..., listen="127.0.0.1:0"))

Several worker processes (``portmesh node --workers N``) each run ``serve`` on sockets the
launcher created, sharing one LMDB environment and one blob directory.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager, nullcontext
from functools import partial
from typing import Any

import trio
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from node.api import blobs, listing, manifests, uploads
from node.api.http import Response, error_response
from node.api.pulls import PullRoutes
from node.auth.setup import open_auth
from node.config import NodeConfig
from node.observe import Metrics, ObserveMiddleware
from node.proxy.cache import ProxyCache
from node.proxy.clients import open_upstream_clients
from node.proxy.evict import evict
from node.proxy.fill import Fills
from node.proxy.router import Router
from node.registry import Registry
from node.server import bind_sockets
from node.server import serve as http_serve
from node.storage.fs import FsBlobStore
from node.storage.lmdb_meta import LmdbMetadataStore
from node.sync.actor import ActorMiddleware, CacheCounts
from node.sync.events import EventRecorder
from node.sync.service import open_sync
from node.sync.upstreams import follow_upstreams, with_policy_upstreams
from portmesh.oci.digest import Digest
from portmesh.oci.errors import OCIError

__all__ = ["create_app", "open_registry", "serve"]

log = logging.getLogger("portmesh.node")

API_VERSION = {"Docker-Distribution-API-Version": "registry/2.0"}
HOUSEKEEPING_INTERVAL = 30.0


@asynccontextmanager
async def open_registry(
    config: NodeConfig,
    read_only: Callable[[str], bool] = lambda repo: False,
    events: EventRecorder | None = None,
) -> AsyncIterator[Registry]:
    """Open the node's stores under ``config.data``; closes them on exit. ``events``
    records pushes, deletes and pulls for the coordinator."""
    config.data.mkdir(parents=True, exist_ok=True)
    blob_store = FsBlobStore(config.data / "blobs")
    meta = LmdbMetadataStore.open(config.data / "meta", map_size=config.lmdb_map_size)
    try:
        yield Registry(
            blob_store,
            meta,
            delete_enabled=config.delete_enabled,
            chunk_min_length=config.chunk_min_length,
            read_only=read_only,
            events=events,
        )
    finally:
        await meta.aclose()


def create_app(
    registry: Registry,
    metrics: Metrics,
    accel: Callable[[Digest], str] | None = None,
    router: Router | None = None,
    proxy: ProxyCache | None = None,
    auth: Callable[[Any], Any] | None = None,
    actor: Callable[[Any], Any] | None = None,
) -> Any:
    """The ASGI application: the OCI routes, /healthz and /metrics, observed.

    ``accel`` maps a blob to the URL a front proxy serves it from (``X-Accel-Redirect``);
    ``auth`` wraps the routes in token enforcement (``node.auth``); ``actor`` wraps them
    inside it (``node.sync.actor``: who made a request, for its events).
    """
    app = QuartTrio("portmesh.node")
    # Blob bodies stream for as long as they take; the registry enforces its own limits.
    app.config.update(MAX_CONTENT_LENGTH=None, BODY_TIMEOUT=None, RESPONSE_TIMEOUT=None)
    # "/v2//x" is an invalid name to report, not a path to redirect.
    app.url_map.merge_slashes = False
    for module in (blobs, uploads, manifests):
        app.register_blueprint(module.blueprint(registry))
    app.register_blueprint(listing.blueprint(registry, router, proxy))

    @app.route("/v2/", methods=["GET", "HEAD"])
    async def base() -> Response:
        return Response(b"{}", content_type="application/json", headers=API_VERSION)

    @app.route("/healthz", methods=["GET"])
    async def healthz() -> Response:
        return Response(b'{"status":"ok"}', content_type="application/json")

    @app.route("/metrics", methods=["GET"])
    async def render_metrics() -> Response:
        metrics.storage.set(await registry.blobs.usage())
        for name, client in (proxy.clients if proxy else {}).items():
            limit = getattr(client, "rate_limit", None)
            if limit is not None and limit.limit is not None:
                metrics.ratelimit_limit.labels(name).set(limit.limit)
            if limit is not None and limit.remaining is not None:
                metrics.ratelimit_remaining.labels(name).set(limit.remaining)
        return Response(metrics.render(), content_type="text/plain; version=0.0.4")

    @app.errorhandler(OCIError)
    async def oci_error(exc: OCIError) -> Response:
        response = error_response(exc)
        response.headers.update(API_VERSION)
        return response

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> Response:
        if isinstance(exc, MethodNotAllowed):
            return error_response(OCIError("UNSUPPORTED", "method not allowed for this route"))
        status = exc.code or 500
        body = f'{{"errors":[{{"code":"NOT_FOUND","message":"{exc.name.lower()}"}}]}}'
        return Response(body, status=status, content_type="application/json")

    routes: Any = PullRoutes(registry, app, accel, router, proxy)
    if actor is not None:
        routes = actor(routes)
    if auth is not None:
        routes = auth(routes)
    return ObserveMiddleware(routes, metrics)


async def housekeeping(
    registry: Registry, config: NodeConfig, metrics: Metrics, router: Router
) -> None:
    """Flush access times, publish storage usage, purge stale uploads and keep the cache
    under its limit, forever."""
    try:
        while True:
            await trio.sleep(HOUSEKEEPING_INTERVAL)
            try:
                await registry.flush_access_times()
                metrics.storage.set(await registry.blobs.usage())
                purged = await registry.purge_uploads(registry.clock() - config.upload_ttl)
                if purged:
                    log.info("purged %d stale upload sessions", purged)
                if router and config.cache_max_bytes:
                    await evict(registry, router.is_cache, config.cache_max_bytes)
            except Exception:
                log.exception("housekeeping failed; retrying next round")
    finally:
        with trio.CancelScope(shield=True):
            await registry.flush_access_times()


async def serve(
    config: NodeConfig,
    *,
    sockets: Sequence[socket.socket] | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run one node process until cancelled; ``task_status.started(port)`` once listening
    on ``config.listen`` or on the listening ``sockets`` given (``--workers``).

    With a coordinator, the node joins it if needed and takes a first snapshot before it
    listens; the snapshot's proxy upstreams join the config file's at this start."""
    metrics = Metrics()
    counts = CacheCounts()
    recorder = EventRecorder() if config.auth.coordinator_url else None
    async with (
        open_registry(config, events=recorder) as registry,
        open_auth(config.auth, registry.meta, config.data) as auth,
        open_sync(config, registry, auth.holder, counts) if auth else nullcontext() as sync,
    ):
        own = config
        if auth is not None:
            config = with_policy_upstreams(config, auth.holder.current.policy.upstreams)
        router = Router(config.upstreams)
        registry.read_only = router.is_proxied
        async with (
            open_upstream_clients(config.upstreams) as clients,
            trio.open_nursery() as nursery,
        ):
            fills = Fills(registry.blobs, nursery, deadline=config.fill_deadline)
            proxy = ProxyCache(registry, fills, clients)
            if auth is not None:
                nursery.start_soon(follow_upstreams, auth.holder, own, router, clients)
            accel = None
            if config.accel_redirect and isinstance(registry.blobs, FsBlobStore):
                prefix, store = config.accel_redirect.rstrip("/") + "/", registry.blobs
                accel = lambda digest: prefix + store.relative_path(digest)  # noqa: E731
            actor = None
            if sync is not None:
                actor = partial(ActorMiddleware, counts=counts, proxied_pull=sync.recorder.pull)
            guard = auth.wrap if auth else None
            app = create_app(registry, metrics, accel, router, proxy, guard, actor)
            listening = list(sockets) if sockets else bind_sockets(config.listen)
            binds = await nursery.start(partial(http_serve, app, listening))
            nursery.start_soon(housekeeping, registry, config, metrics, router)
            if sync is not None:
                await nursery.start(sync.run)
            port = int(binds[0].rsplit(":", 1)[1])
            log.info("node listening on %s", binds[0])
            task_status.started(port)
