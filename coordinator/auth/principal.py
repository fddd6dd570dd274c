"""Who is calling: ``Principal`` and the ``Authenticator`` that resolves it.

One function decides identity for every request: ``Authenticator.resolve(authorization,
session_id)``. Order: an ``Authorization: Basic`` header wins (wrong credentials are a
401, never a silent fall back to anonymous); else a session cookie; else anonymous.

Basic credentials are checked by a chain of ``BasicBackend``s: local users here; robot
accounts add a backend claiming names with their prefix (``robot$...``). A password check
costs about 50 ms (argon2id), so successful checks are remembered for ``CACHE_TTL``
seconds under an HMAC of (username, stored hash, password) with a per-process key: no
password is kept, and changing a password changes the stored hash, which retires the
entry.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol

import trio

from coordinator.auth import sessions
from coordinator.db.engine import Database
from coordinator.domain import users
from coordinator.errors import Unauthorized
from portmesh.access import Permission
from portmesh.passwords import hash_secret, verify_secret

__all__ = [
    "ANONYMOUS",
    "Authenticator",
    "BasicBackend",
    "Principal",
    "UserBackend",
    "VerifiedCache",
    "parse_basic",
]

CACHE_TTL = 300.0
CACHE_SIZE = 4096


@dataclass(frozen=True)
class Principal:
    """The caller. ``kind`` is ``user``, ``anonymous`` or ``robot``; ``via`` says how it
    authenticated (``basic``, ``session``, ``none``). ``csrf_token`` is set for session
    callers only and never shown in ``repr``. A robot has no ``user_id``; its
    ``permissions`` are its project permissions (``coordinator.robots``)."""

    user_id: int | None
    username: str
    sysadmin: bool = False
    kind: Literal["user", "anonymous", "robot"] = "user"
    via: Literal["basic", "session", "none"] = "none"
    csrf_token: str | None = field(default=None, repr=False, compare=False)
    permissions: tuple[Permission, ...] = ()

    @property
    def anonymous(self) -> bool:
        return self.kind == "anonymous"


ANONYMOUS = Principal(None, "anonymous", kind="anonymous")


class BasicBackend(Protocol):
    """Checks HTTP Basic credentials it is responsible for."""

    def claims(self, username: str) -> bool:
        """Whether this backend owns ``username`` (the first claiming backend decides)."""
        ...

    async def authenticate(self, username: str, password: str) -> Principal | None:
        """The principal, or None for wrong credentials."""
        ...


def parse_basic(header: str) -> tuple[str, str] | None:
    """(username, password) of an ``Authorization: Basic`` header, None for other schemes;
    Unauthorized when it is malformed."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise Unauthorized("malformed basic credentials") from exc
    username, sep, password = decoded.partition(":")
    if not sep:
        raise Unauthorized("malformed basic credentials")
    return username, password


class VerifiedCache:
    """Remembers successful secret checks (see the module docstring)."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)
        self._entries: OrderedDict[bytes, float] = OrderedDict()

    def _digest(self, username: str, hashed: str, password: str) -> bytes:
        message = b"\0".join(s.encode() for s in (username, hashed, password))
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def hit(self, username: str, hashed: str, password: str) -> bool:
        key = self._digest(username, hashed, password)
        expires = self._entries.get(key)
        return expires is not None and expires > time.monotonic()

    def add(self, username: str, hashed: str, password: str) -> None:
        self._entries[self._digest(username, hashed, password)] = time.monotonic() + CACHE_TTL
        while len(self._entries) > CACHE_SIZE:
            self._entries.popitem(last=False)


class UserBackend:
    """Local users with argon2id password hashes."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._cache = VerifiedCache()
        self._dummy_hash: str | None = None

    def claims(self, username: str) -> bool:
        return True

    async def authenticate(self, username: str, password: str) -> Principal | None:
        row = await self._db.run(users.get_by_name, username)
        if row is None:
            # Spend the same time as a real check so names cannot be probed by timing.
            if self._dummy_hash is None:
                self._dummy_hash = await trio.to_thread.run_sync(
                    hash_secret, secrets.token_urlsafe(16)
                )
            await trio.to_thread.run_sync(verify_secret, self._dummy_hash, password)
            return None
        hashed = str(row.password_hash)
        if not self._cache.hit(username, hashed, password):
            if not await trio.to_thread.run_sync(verify_secret, hashed, password):
                return None
            self._cache.add(username, hashed, password)
        return Principal(int(row.user_id), str(row.username), bool(row.sysadmin_flag))


class Authenticator:
    """Resolves the ``Principal`` of a request (see the module docstring)."""

    def __init__(self, db: Database, backends: Sequence[BasicBackend]) -> None:
        self._db = db
        self._backends = list(backends)

    async def basic(self, username: str, password: str) -> Principal:
        """The principal for Basic credentials; Unauthorized when they are wrong."""
        for backend in self._backends:
            if backend.claims(username):
                principal = await backend.authenticate(username, password)
                if principal is None:
                    break
                return principal
        raise Unauthorized("invalid credentials")

    async def resolve(self, authorization: str | None, session_id: str | None) -> Principal:
        if authorization:
            credentials = parse_basic(authorization)
            if credentials is not None:
                principal = await self.basic(*credentials)
                return replace(principal, via="basic")
        if session_id:
            found = await self._db.run(sessions.lookup, session_id)
            if found is not None:
                row, csrf = found
                return Principal(
                    int(row.user_id),
                    str(row.username),
                    bool(row.sysadmin_flag),
                    "user",
                    "session",
                    csrf,
                )
        return ANONYMOUS
