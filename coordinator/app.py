"""The coordinator's composition root: database, migrations, services, HTTP app, server.

``serve`` runs one coordinator process in the caller's trio nursery::

    port = await nursery.start(serve, CoordinatorConfig(data=..., listen="127.0.0.1:0"))

It migrates the database to the newest schema, creates the admin user on first start,
builds the app with ``create_app(config, db)`` and serves it with hypercorn's trio worker
until cancelled. Nothing here is global: every dependency is built in ``serve`` (or
passed to ``create_app``) and handed to the blueprints.

Request pipeline (installed once, in ``create_app``): ``X-Request-Id`` (echoed or
generated) -> principal resolution (Basic, then session cookie) -> CSRF check for
cookie-authenticated unsafe requests -> handler -> audit record for ``@audited``
handlers -> errors rendered as Harbor's ``{"errors": [...]}``.
"""

from __future__ import annotations

import hmac
import logging
import uuid
from functools import partial
from typing import Any

import trio
from hypercorn.config import Config as HyperConfig
from hypercorn.trio.run import worker_serve
from hypercorn.utils import wrap_app
from quart import Response, g, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from coordinator.api import (
    audit_logs,
    docs,
    members,
    metadata,
    projects,
    repositories,
    session,
    system,
    users,
)
from coordinator.api import nodes as nodes_api
from coordinator.api import registries as registries_api
from coordinator.api import robots as robots_api
from coordinator.api import token as token_api
from coordinator.api.http import APIError, AuditTarget, IdConverter, render_error
from coordinator.api.services import Services
from coordinator.api.session import CSRF_HEADER
from coordinator.audit import AuditEntry, AuditSink, DatabaseAuditSink, run_purge
from coordinator.auth.principal import ANONYMOUS, Authenticator, UserBackend
from coordinator.auth.robot_login import RobotBackend
from coordinator.auth.sessions import SESSION_COOKIE
from coordinator.auth.token_service import TokenService
from coordinator.bootstrap import ensure_admin
from coordinator.config import CoordinatorConfig
from coordinator.db.engine import Database
from coordinator.db.migrate import upgrade
from coordinator.errors import CoordinatorError
from coordinator.events import ingest_events
from coordinator.keys import KeyRing, policy_keys
from coordinator.policy_build import PolicySources
from coordinator.policy_watch import PolicyWatch
from coordinator.registries import SECRETS_FILE, policy_upstreams
from coordinator.registries import load_keys as load_secret_keys
from coordinator.robots import policy_revoked, policy_robots
from portmesh.secrets import SecretError

__all__ = ["BLUEPRINTS", "create_app", "serve"]

log = logging.getLogger("portmesh.coordinator")

BLUEPRINTS = (system, users, projects, metadata, members, session, audit_logs, repositories, docs)
NODES_PATH = "/api/v2.0/nodes/"
TOKEN_PATH = "/service/"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_OPERATIONS = {"POST": "create", "PUT": "update", "PATCH": "update", "DELETE": "delete"}


def create_app(
    config: CoordinatorConfig,
    db: Database,
    *,
    authenticator: Authenticator | None = None,
    audit: AuditSink | None = None,
    policy_recheck: float = 2.0,
) -> QuartTrio:
    """The ASGI app of the coordinator over an already migrated ``db``; it re-checks the
    nodes' policy snapshot every ``policy_recheck`` seconds while serving."""
    services = Services(
        config=config,
        db=db,
        authenticator=authenticator or Authenticator(db, [RobotBackend(db), UserBackend(db)]),
        audit=audit or DatabaseAuditSink(db),
    )
    app = QuartTrio("portmesh.coordinator")
    app.config.update(MAX_CONTENT_LENGTH=1024 * 1024)
    app.url_map.converters["int"] = IdConverter
    for module in BLUEPRINTS:
        app.register_blueprint(module.blueprint(services))
    policy = PolicyWatch(db, policy_sources(config), recheck=policy_recheck)
    app.register_blueprint(nodes_api.blueprint(services, policy, node_events()))
    app.register_blueprint(registries_api.blueprint(services, load_secret_keys(config.data)))
    app.register_blueprint(robots_api.blueprint(services))
    keys = KeyRing(db, load_secret_keys(config.data), token_ttl=config.token_ttl)
    tokens = TokenService(db, keys, issuer=config.url, ttl=config.token_ttl)
    app.register_blueprint(token_api.blueprint(services, tokens, keys))

    @app.before_serving
    async def ensure_signing_key() -> None:
        try:
            await keys.signer()  # nodes get the key in their first snapshot
        except SecretError:
            log.exception(
                "the active token signing key does not open with %s (every replica needs "
                "the same key file); rotate the signing key to issue tokens again",
                config.data / SECRETS_FILE,
            )

    @app.before_serving
    async def start_policy_watch() -> None:
        await app.nursery.start(policy.run)

    @app.before_serving
    async def start_audit_purge() -> None:
        await app.nursery.start(partial(run_purge, db, config.audit_log_retention_hours))

    @app.before_request
    async def identify() -> None:
        g.request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex
        # Take the whole body (at most MAX_CONTENT_LENGTH) before any answer: hypercorn
        # stalls a keep-alive connection whose response (a 404 from the router, a 401)
        # went out before the request body was in.
        await request.get_data(as_text=False)
        g.principal = ANONYMOUS
        caller = await services.authenticator.resolve(
            request.headers.get("Authorization"), request.cookies.get(SESSION_COOKIE)
        )
        # Signing in again replaces the session, so it needs no token of the old one.
        exempt = request.method in SAFE_METHODS or request.path == "/c/login"
        if caller.via == "session" and not exempt:
            token = request.headers.get(CSRF_HEADER, "")
            if not caller.csrf_token or not hmac.compare_digest(token, caller.csrf_token):
                raise APIError(403, "CSRF token is missing or invalid", code="FORBIDDEN")
        g.principal = caller

    @app.after_request
    async def finish(response: Response) -> Response:
        response.headers["X-Request-Id"] = g.get("request_id") or uuid.uuid4().hex
        caller = g.get("principal", ANONYMOUS)
        if caller.via == "session" and caller.csrf_token:
            response.headers.setdefault(CSRF_HEADER, caller.csrf_token)
        target: AuditTarget | None = g.get("audit")
        if (
            request.method in _OPERATIONS
            and response.status_code < 400
            and not request.path.startswith(NODES_PATH)  # node traffic changes no policy
            and not request.path.startswith(TOKEN_PATH)  # nor do token requests
        ):
            policy.poke()  # a change may alter the nodes' snapshot
        if target is not None and request.method in _OPERATIONS:
            entry = AuditEntry(
                username=caller.username,
                operation=_OPERATIONS[request.method],
                resource_type=target.resource_type,
                resource=target.resource,
                result=response.status_code < 400,
                project_id=target.project_id,
            )
            try:
                await services.audit.record(entry)
            except Exception:
                # The operation itself is committed; answering 500 now would misreport it.
                log.exception("could not record audit entry %r", entry)
        return response

    @app.errorhandler(APIError)
    async def api_error(exc: APIError) -> Response:
        return render_error(exc)

    @app.errorhandler(CoordinatorError)
    async def domain_error(exc: CoordinatorError) -> Response:
        return render_error(APIError.from_domain(exc))

    @app.errorhandler(HTTPException)
    async def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        return render_error(APIError(status, (exc.description or exc.name or "").strip()))

    @app.errorhandler(Exception)
    async def unexpected(exc: Exception) -> Response:
        log.error(
            "unhandled error in %s %s (request %s)",
            request.method,
            request.path,
            g.get("request_id"),
            exc_info=exc,
        )
        return render_error(APIError(500, "internal server error"))

    return app


def policy_sources(config: CoordinatorConfig) -> PolicySources:
    """What the nodes' policy snapshot is built from."""
    keys = load_secret_keys(config.data)
    return PolicySources(
        issuer=config.url,
        keys=partial(policy_keys, token_ttl=config.token_ttl),
        robots=policy_robots,
        revoked=policy_revoked,
        upstreams=partial(policy_upstreams, keys=keys),
    )


def node_events() -> nodes_api.Ingest | None:
    """The function that stores events sent by nodes."""
    return ingest_events


def hypercorn_config(config: CoordinatorConfig) -> HyperConfig:
    hc = HyperConfig()
    hc.bind = [config.listen]
    hc.accesslog = None
    hc.errorlog = logging.getLogger("hypercorn.error")
    hc.graceful_timeout = 5.0
    hc.worker_class = "trio"
    return hc


async def serve(
    config: CoordinatorConfig,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run one coordinator until cancelled; ``task_status.started(port)`` once listening.

    Raises ``ConfigError`` for an unacceptable admin password; database errors at start
    propagate as they are.
    """
    config.data.mkdir(parents=True, exist_ok=True)
    db = Database(config.db_url)
    try:
        await trio.to_thread.run_sync(upgrade, db)
        await ensure_admin(db, config.admin_password)
        hc = hypercorn_config(config)
        app: Any = wrap_app(create_app(config, db), hc.wsgi_max_body_size, "asgi")
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(partial(worker_serve, app, hc))
            port = int(binds[0].rsplit(":", 1)[1])
            log.info("coordinator listening on %s (database %r)", binds[0], db)
            task_status.started(port)
    finally:
        db.close()
