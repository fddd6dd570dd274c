"""The token service's signing keys: Ed25519 key pairs in ``signing_keys``, rotation, JWKS.

Each row holds a ``kid``, the public key (base64url) and the private seed sealed with
:mod:`portmesh.secrets` (the coordinator's ``secrets.key``), ``created_at``,
``activated_at`` and ``retired_at``. A key is *next* (created, not yet signing), *active*
(signing new tokens; the newest activated, unretired key wins, so replicas that activate
one at the same moment agree) or *retired*.

The next key is published - in the JWKS and in the nodes' policy snapshot
(:func:`policy_keys`) - from its creation, so when :func:`rotate` retires the active key,
activates the next one and creates a new next key, every node already holds the key the
coming tokens are signed with. A retired key stays published for
``token_ttl + KEY_GRACE`` seconds after its retirement, so every token it signed verifies
until that token has expired; afterwards :func:`rotate` deletes it.

Functions take a ``conn`` and run inside the caller's transaction (``db.run``).
:class:`KeyRing` is what the token service holds: it loads the active key through the
database and keeps the unsealed key while the active ``kid`` is unchanged.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, insert, or_, select, update

from coordinator.db.engine import Database
from coordinator.db.schema import iso, now, signing_keys
from coordinator.errors import NotFound
from portmesh.secrets import SecretError, SecretKeys
from portmesh.tokens import KeySet, SigningKey

__all__ = [
    "DEFAULT_TOKEN_TTL",
    "KEY_GRACE",
    "KeyRing",
    "active_kid",
    "create_key",
    "ensure_active",
    "keys_json",
    "load_signing_key",
    "next_kid",
    "policy_keys",
    "published",
    "rotate",
]

#: the token lifetime the publication window assumes unless told otherwise (seconds)
DEFAULT_TOKEN_TTL = 1800
#: seconds a retired key stays published beyond the lifetime of its last token: covers
#: the verifiers' clock-skew leeway (30 s on nodes) and snapshot propagation
KEY_GRACE = 120


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def create_key(
    conn: Connection, sealer: SecretKeys, *, at: datetime | None = None, active: bool = False
) -> str:
    """Insert a new key, the next one (or ``active``); its ``kid``."""
    key = SigningKey.generate()
    stamp = at or now()
    conn.execute(
        insert(signing_keys).values(
            kid=key.kid,
            public_key=_b64e(bytes(key.key.verify_key)),
            private_key=sealer.seal(_b64e(key.seed)),
            created_at=stamp,
            activated_at=stamp if active else None,
            retired_at=None,
        )
    )
    return key.kid


def active_kid(conn: Connection) -> str | None:
    """The ``kid`` of the key that signs new tokens, or None when there is none."""
    row = conn.execute(
        select(signing_keys.c.kid)
        .where(signing_keys.c.retired_at.is_(None), signing_keys.c.activated_at.is_not(None))
        .order_by(signing_keys.c.activated_at.desc(), signing_keys.c.kid.desc())
        .limit(1)
    ).first()
    return None if row is None else str(row.kid)


def next_kid(conn: Connection) -> str | None:
    """The ``kid`` of the published key the next rotation activates, or None."""
    row = conn.execute(
        select(signing_keys.c.kid)
        .where(signing_keys.c.retired_at.is_(None), signing_keys.c.activated_at.is_(None))
        .order_by(signing_keys.c.created_at, signing_keys.c.kid)
        .limit(1)
    ).first()
    return None if row is None else str(row.kid)


def _activate_next(conn: Connection, sealer: SecretKeys, stamp: datetime) -> str:
    kid = next_kid(conn)
    if kid is None:
        kid = create_key(conn, sealer, at=stamp, active=True)
    else:
        conn.execute(
            update(signing_keys).where(signing_keys.c.kid == kid).values(activated_at=stamp)
        )
    create_key(conn, sealer, at=stamp)
    return kid


def ensure_active(conn: Connection, sealer: SecretKeys) -> str:
    """The active ``kid``; on first use an active key and a next key are created."""
    return active_kid(conn) or _activate_next(conn, sealer, now())


def _window(token_ttl: int) -> timedelta:
    return timedelta(seconds=token_ttl + KEY_GRACE)


def rotate(
    conn: Connection, sealer: SecretKeys, *, token_ttl: int, at: datetime | None = None
) -> str:
    """Retire the active key(s), activate the next key (published since it was created),
    create a new next key, and delete retired keys whose publication window has passed;
    the ``kid`` that signs from now on."""
    stamp = at or now()
    conn.execute(
        update(signing_keys)
        .where(signing_keys.c.retired_at.is_(None), signing_keys.c.activated_at.is_not(None))
        .values(retired_at=stamp)
    )
    conn.execute(
        delete(signing_keys).where(signing_keys.c.retired_at <= stamp - _window(token_ttl))
    )
    return _activate_next(conn, sealer, stamp)


def _published_rows(conn: Connection, token_ttl: int, at: datetime | None) -> list[Any]:
    cutoff = (at or now()) - _window(token_ttl)
    rows = conn.execute(
        select(signing_keys)
        .where(or_(signing_keys.c.retired_at.is_(None), signing_keys.c.retired_at > cutoff))
        .order_by(signing_keys.c.created_at, signing_keys.c.kid)
    ).all()
    return list(rows)


def published(
    conn: Connection, *, token_ttl: int = DEFAULT_TOKEN_TTL, at: datetime | None = None
) -> KeySet:
    """The public keys verifiers must know now: the active and next keys, and the retired
    keys whose tokens may still be valid."""
    keys = KeySet()
    for row in _published_rows(conn, token_ttl, at):
        keys.add(str(row.kid), _b64d(str(row.public_key)))
    return keys


def policy_keys(conn: Connection, *, token_ttl: int = DEFAULT_TOKEN_TTL) -> list[dict[str, str]]:
    """The published keys as JWKS entries, for the nodes' policy snapshot
    (``PolicySources.keys``; bind ``token_ttl`` to the configured token lifetime)."""
    return list(published(conn, token_ttl=token_ttl).to_jwks()["keys"])


def keys_json(conn: Connection, *, token_ttl: int) -> list[dict[str, Any]]:
    """Every stored key for the API (no private part): kid, creation, activation and
    retirement time, whether it signs (``active``), is the ``next`` one, is ``published``."""
    active = active_kid(conn)
    live = {str(row.kid) for row in _published_rows(conn, token_ttl, None)}
    rows = conn.execute(
        select(signing_keys).order_by(signing_keys.c.created_at, signing_keys.c.kid)
    ).all()
    return [
        {
            "kid": row.kid,
            "created_at": iso(row.created_at),
            "activated_at": iso(row.activated_at) if row.activated_at is not None else None,
            "retired_at": iso(row.retired_at) if row.retired_at is not None else None,
            "active": row.kid == active,
            "next": row.activated_at is None and row.retired_at is None,
            "published": row.kid in live,
        }
        for row in rows
    ]


def load_signing_key(conn: Connection, kid: str, sealer: SecretKeys) -> SigningKey:
    """The private key ``kid``; NotFound when it is gone, SecretError when it does not
    open with the coordinator's secret keys."""
    row = conn.execute(select(signing_keys).where(signing_keys.c.kid == kid)).first()
    if row is None:
        raise NotFound(f"signing key {kid} not found")
    seed = _b64d(sealer.open(str(row.private_key)))
    key = SigningKey.from_seed(seed, kid)
    if _b64e(bytes(key.key.verify_key)) != row.public_key:
        raise SecretError(f"signing key {kid}: the private key does not match the public key")
    return key


@dataclass
class _Cached:
    kid: str
    key: SigningKey


class KeyRing:
    """The signing side of the token service over ``db``.

    :meth:`signer` costs one indexed query per call (so a rotation made by another
    replica takes effect at once) and unseals a key only when the active ``kid`` changed.
    """

    def __init__(
        self,
        db: Database,
        sealer: SecretKeys,
        *,
        token_ttl: int = DEFAULT_TOKEN_TTL,
        clock: Callable[[], datetime] = now,
    ) -> None:
        self._db = db
        self._sealer = sealer
        self.token_ttl = token_ttl
        self._clock = clock
        self._cached: _Cached | None = None

    async def signer(self) -> SigningKey:
        """The active key, created on first use."""
        kid = await self._db.run(active_kid)
        if kid is None:
            kid = await self._db.run(ensure_active, self._sealer)
        cached = self._cached
        if cached is not None and cached.kid == kid:
            return cached.key
        key = await self._db.run(load_signing_key, kid, self._sealer)
        self._cached = _Cached(kid, key)
        return key

    async def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The published keys as a JWKS document."""
        keyset = await self._db.run(published, token_ttl=self.token_ttl, at=self._clock())
        return keyset.to_jwks()

    async def rotate(self) -> str:
        """Retire the active key and sign with the next one from now on; its ``kid``."""
        return await self._db.run(rotate, self._sealer, token_ttl=self.token_ttl, at=self._clock())

    async def describe(self) -> list[dict[str, Any]]:
        return await self._db.run(keys_json, token_ttl=self.token_ttl)
