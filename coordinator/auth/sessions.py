"""Browser sessions (``POST /c/login``) and their CSRF tokens.

The cookie value is 32 random bytes; only its sha256 is stored, with the user, a CSRF
token and an absolute expiry. A password change ends the user's sessions
(``domain.users.set_password_hash``). Requests authenticated by the cookie must echo the
CSRF token in ``X-Harbor-CSRF-Token`` on unsafe methods (checked in ``api.app``).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, delete, insert, select

from coordinator.db.schema import now, sessions, users, utc

__all__ = ["SESSION_COOKIE", "create", "end", "lookup"]

SESSION_COOKIE = "sid"


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def create(conn: Connection, user_id: int, ttl: float) -> tuple[str, str]:
    """A new session for ``user_id``: (cookie value, csrf token)."""
    session_id = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    stamp = now()
    conn.execute(delete(sessions).where(sessions.c.expires_at < stamp))
    conn.execute(
        insert(sessions).values(
            sid_hash=_hash(session_id),
            user_id=user_id,
            csrf_token=csrf,
            creation_time=stamp,
            expires_at=stamp + timedelta(seconds=ttl),
        )
    )
    return session_id, csrf


def lookup(conn: Connection, session_id: str) -> tuple[Any, str] | None:
    """(user row, csrf token) of a live session, or None."""
    row = conn.execute(
        select(
            users.c.user_id,
            users.c.username,
            users.c.sysadmin_flag,
            sessions.c.csrf_token,
            sessions.c.expires_at,
        )
        .select_from(sessions.join(users, users.c.user_id == sessions.c.user_id))
        .where(sessions.c.sid_hash == _hash(session_id))
    ).first()
    if row is None or utc(row.expires_at) <= now():
        return None
    return row, str(row.csrf_token)


def end(conn: Connection, session_id: str) -> None:
    conn.execute(delete(sessions).where(sessions.c.sid_hash == _hash(session_id)))
