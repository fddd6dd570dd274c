"""The one way code touches the database: ``await db.run(fn, *args)``.

``fn(conn, *args)`` runs synchronously in a worker thread (``trio.to_thread.run_sync``)
inside ONE transaction: committed when ``fn`` returns, rolled back when it raises. ``fn``
must not do slow work (password hashing, network) - do that before or after. A unique or
foreign-key violation surfaces as ``coordinator.errors.Conflict``.

SQLite (the default) runs in WAL mode with foreign keys on and a busy timeout, and every
transaction starts with ``BEGIN IMMEDIATE`` so two writers wait for each other instead of
failing on a lock upgrade. PostgreSQL is used through psycopg 3
(``postgresql+psycopg://...``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import trio
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import IntegrityError

from coordinator.errors import Conflict

__all__ = ["Database"]

log = logging.getLogger("portmesh.coordinator.db")

T = TypeVar("T")
SQLITE_BUSY_TIMEOUT_MS = 10_000


def _make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # SQLAlchemy's "begin" below starts them
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True)


class Database:
    """A SQLAlchemy engine plus a thread limiter; owned by ``coordinator.app.serve``.

    ``close()`` disposes of the pool; it may be called twice.
    """

    def __init__(self, url: str, *, max_threads: int = 8) -> None:
        self.url = url
        self.engine = _make_engine(url)
        self._limiter = trio.CapacityLimiter(max_threads)

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    def __repr__(self) -> str:
        return f"Database({self.engine.url.render_as_string(hide_password=True)!r})"

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(conn, *args, **kwargs)`` in one transaction in a worker thread; its result."""
        return await trio.to_thread.run_sync(
            partial(self.run_sync, fn, *args, **kwargs), limiter=self._limiter
        )

    def run_sync(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """The blocking form of ``run``, for startup code already in a thread."""
        try:
            with self.engine.begin() as conn:
                return fn(conn, *args, **kwargs)
        except IntegrityError as exc:
            log.debug("integrity error: %s", exc)
            raise Conflict("the request conflicts with an existing resource") from exc

    async def ping(self) -> bool:
        """Whether a trivial query succeeds."""
        try:
            await self.run(lambda conn: conn.execute(text("SELECT 1")).scalar_one())
        except Exception:
            log.exception("database ping failed")
            return False
        return True

    def close(self) -> None:
        self.engine.dispose()
