"""HTTP Basic logins of robot accounts (``robot$...`` + secret), on the API and the token
service alike.

:class:`RobotBackend` claims every name starting with ``robot$`` (user names cannot
contain ``$``), so it sits before ``UserBackend`` in the ``Authenticator``'s chain. The
secret is checked first (argon2id, in a worker thread, remembered like user passwords);
only then is a disabled or expired robot refused, with ``Unauthorized`` saying which, so
a wrong secret never learns the account's state. An unknown name costs the same time as a
real check.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

import trio

from coordinator.auth.principal import Principal, VerifiedCache
from coordinator.db.engine import Database
from coordinator.errors import Unauthorized
from coordinator.robots import PREFIX, get_by_name, permissions_of
from portmesh.passwords import hash_secret, verify_secret

__all__ = ["RobotBackend"]


class RobotBackend:
    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._clock = clock
        self._cache = VerifiedCache()
        self._dummy_hash: str | None = None

    def claims(self, username: str) -> bool:
        return username.startswith(PREFIX)

    async def authenticate(self, username: str, password: str) -> Principal | None:
        row = await self._db.run(get_by_name, username)
        if row is None:
            if self._dummy_hash is None:
                self._dummy_hash = await trio.to_thread.run_sync(
                    hash_secret, secrets.token_urlsafe(16)
                )
            await trio.to_thread.run_sync(verify_secret, self._dummy_hash, password)
            return None
        hashed = str(row.secret_hash)
        if not self._cache.hit(username, hashed, password):
            if not await trio.to_thread.run_sync(verify_secret, hashed, password):
                return None
            self._cache.add(username, hashed, password)
        if row.disabled:
            raise Unauthorized(f"robot account {username} is disabled")
        if row.expires_at != -1 and self._clock() >= row.expires_at:
            raise Unauthorized(f"robot account {username} has expired")
        granted = permissions_of(row) + permissions_of(row, "system")
        return Principal(None, username, kind="robot", permissions=granted)
