"""First start: create the ``admin`` user (id 1, system administrator).

The password is ``config.admin_password`` (``PORTMESH_ADMIN_PASSWORD``) or, without one,
a generated password printed once to stderr and never logged. Nothing happens when any
user exists already, so later starts (and other replicas) leave accounts alone.
"""

from __future__ import annotations

import secrets
import sys
from typing import TextIO

import trio
from sqlalchemy import Connection, func, select

from coordinator.config import ConfigError
from coordinator.db.engine import Database
from coordinator.db.schema import users
from coordinator.domain import users as user_domain
from coordinator.errors import Conflict, Invalid
from portmesh.passwords import hash_secret

__all__ = ["ensure_admin"]

ADMIN = "admin"


def _count(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(users)).scalar_one())


def _create_if_empty(conn: Connection, hashed: str) -> bool:
    if _count(conn):
        return False
    user_domain.create(conn, ADMIN, hashed, realname="system admin", sysadmin=True)
    return True


def _generated() -> str:
    return secrets.token_urlsafe(15) + "Aa1"


async def ensure_admin(db: Database, password: str | None, out: TextIO = sys.stderr) -> bool:
    """Create ``admin`` on an empty database; whether it did. ConfigError when the given
    password breaks the password policy."""
    if await db.run(_count):
        return False
    chosen = password or _generated()
    try:
        user_domain.check_password_policy(chosen)
    except Invalid as exc:
        raise ConfigError(f"the admin password is not acceptable: {exc}") from exc
    hashed = await trio.to_thread.run_sync(hash_secret, chosen)
    try:
        created = await db.run(_create_if_empty, hashed)
    except Conflict:  # another replica won the race
        return False
    if created and not password:
        print(
            f"portmesh coordinator: created user {ADMIN!r} with password {chosen} "
            "(shown only now; change it with PUT /api/v2.0/users/1/password)",
            file=out,
            flush=True,
        )
    return created
