"""Local users: validation rules, CRUD, search (Harbor's ``/users`` semantics).

Passwords arrive here already hashed (``portmesh.passwords.hash_secret`` runs in a worker
thread before the transaction); ``check_password_policy`` is Harbor's rule: 8-128
characters with at least one uppercase letter, one lowercase letter and one digit.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Connection, Row, delete, insert, select, update

from coordinator.db.filters import fetch_page
from coordinator.db.schema import iso, members, now, sessions, users
from coordinator.errors import Conflict, Invalid, NotFound
from coordinator.query import ListQuery

__all__ = [
    "USER_COLUMNS",
    "check_password_policy",
    "check_username",
    "create",
    "delete_user",
    "get",
    "get_by_name",
    "list_users",
    "password_hash",
    "search",
    "set_password_hash",
    "set_sysadmin",
    "to_json",
    "update_profile",
]

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+\Z")
_BAD_USERNAME_CHARS = set(',"~#%$:')

USER_COLUMNS = {
    "user_id": users.c.user_id,
    "username": users.c.username,
    "email": users.c.email,
    "realname": users.c.realname,
    "sysadmin_flag": users.c.sysadmin_flag,
    "creation_time": users.c.creation_time,
    "update_time": users.c.update_time,
}

_PUBLIC = [c for c in users.c if c.name != "password_hash"]


def check_username(username: object) -> str:
    if not isinstance(username, str) or not username.strip():
        raise Invalid("username is required")
    if len(username) > 255 or _BAD_USERNAME_CHARS & set(username) or username != username.strip():
        raise Invalid(f"username may not contain any of {''.join(sorted(_BAD_USERNAME_CHARS))}")
    return username


def check_password_policy(password: object) -> str:
    if not isinstance(password, str):
        raise Invalid("password is required")
    ok = (
        8 <= len(password) <= 128
        and any(c.isupper() for c in password)
        and any(c.islower() for c in password)
        and any(c.isdigit() for c in password)
    )
    if not ok:
        raise Invalid(
            "password must be 8-128 characters with at least one uppercase letter, "
            "one lowercase letter and one digit"
        )
    return password


def _check_email(email: object) -> str | None:
    if email in (None, ""):
        return None
    if not isinstance(email, str) or len(email) > 255 or not _EMAIL.match(email):
        raise Invalid(f"invalid email {email!r}")
    return email


def _check_text(name: str, value: object, limit: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > limit:
        raise Invalid(f"{name} must be a string of at most {limit} characters")
    return value


def to_json(row: Row[Any]) -> dict[str, Any]:
    """A user as Harbor's ``UserResp``."""
    return {
        "user_id": row.user_id,
        "username": row.username,
        "email": row.email or "",
        "realname": row.realname,
        "comment": row.comment,
        "sysadmin_flag": bool(row.sysadmin_flag),
        "admin_role_in_auth": False,
        "creation_time": iso(row.creation_time),
        "update_time": iso(row.update_time),
    }


def create(
    conn: Connection,
    username: str,
    hashed_password: str,
    *,
    email: object = None,
    realname: object = "",
    comment: object = "",
    sysadmin: bool = False,
) -> int:
    """Insert a user; its id. Conflict when the username or email is taken."""
    username = check_username(username)
    email = _check_email(email)
    if conn.execute(select(users.c.user_id).where(users.c.username == username)).first():
        raise Conflict(f"user {username} already exists")
    if email and conn.execute(select(users.c.user_id).where(users.c.email == email)).first():
        raise Conflict(f"email {email} is already used by another user")
    stamp = now()
    result = conn.execute(
        insert(users).values(
            username=username,
            email=email,
            realname=_check_text("realname", realname, 255),
            comment=_check_text("comment", comment, 1024),
            password_hash=hashed_password,
            sysadmin_flag=sysadmin,
            creation_time=stamp,
            update_time=stamp,
        )
    )
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def get(conn: Connection, user_id: int) -> Row[Any]:
    """The user ``user_id`` (without its hash); NotFound otherwise."""
    row = conn.execute(select(*_PUBLIC).where(users.c.user_id == user_id)).first()
    if row is None:
        raise NotFound(f"user {user_id} not found")
    return row


def get_by_name(conn: Connection, username: str) -> Row[Any] | None:
    """The user called ``username`` (with ``password_hash``), or None."""
    return conn.execute(select(users).where(users.c.username == username)).first()


def password_hash(conn: Connection, user_id: int) -> str:
    row = conn.execute(select(users.c.password_hash).where(users.c.user_id == user_id)).first()
    if row is None:
        raise NotFound(f"user {user_id} not found")
    return str(row.password_hash)


def list_users(conn: Connection, query: ListQuery) -> tuple[int, list[Row[Any]]]:
    """(total, page of users) filtered by ``query`` (keys of ``USER_COLUMNS``)."""
    return fetch_page(conn, select(*_PUBLIC), query, USER_COLUMNS, users.c.user_id)


def search(conn: Connection, username: str, query: ListQuery) -> tuple[int, list[Row[Any]]]:
    """Users whose name contains ``username`` (case-insensitive), by name."""
    escaped = username.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    stmt = select(users.c.user_id, users.c.username).where(
        users.c.username.ilike(f"%{escaped}%", escape="\\")
    )
    return fetch_page(conn, stmt, query, {}, users.c.username)


def update_profile(conn: Connection, user_id: int, profile: dict[str, Any]) -> None:
    """Set email, realname and comment (those present in ``profile``)."""
    get(conn, user_id)
    values: dict[str, Any] = {}
    if "email" in profile:
        email = _check_email(profile["email"])
        taken = conn.execute(
            select(users.c.user_id).where(users.c.email == email, users.c.user_id != user_id)
        ).first()
        if email and taken:
            raise Conflict(f"email {email} is already used by another user")
        values["email"] = email
    if "realname" in profile:
        values["realname"] = _check_text("realname", profile["realname"], 255)
    if "comment" in profile:
        values["comment"] = _check_text("comment", profile["comment"], 1024)
    values["update_time"] = now()
    conn.execute(update(users).where(users.c.user_id == user_id).values(**values))


def set_password_hash(conn: Connection, user_id: int, hashed: str) -> None:
    """Replace the password hash and end the user's sessions."""
    get(conn, user_id)
    conn.execute(
        update(users)
        .where(users.c.user_id == user_id)
        .values(password_hash=hashed, update_time=now())
    )
    conn.execute(delete(sessions).where(sessions.c.user_id == user_id))


def set_sysadmin(conn: Connection, user_id: int, flag: bool) -> None:
    get(conn, user_id)
    conn.execute(
        update(users)
        .where(users.c.user_id == user_id)
        .values(sysadmin_flag=flag, update_time=now())
    )


def delete_user(conn: Connection, user_id: int) -> str:
    """Delete a user, its memberships and sessions; its name."""
    row = get(conn, user_id)
    conn.execute(
        delete(members).where(members.c.entity_type == "u", members.c.entity_id == user_id)
    )
    conn.execute(delete(users).where(users.c.user_id == user_id))
    return str(row.username)
