"""Token signing keys: storage (sealed private part), the active key, rotation, and the
publication window of retired keys - on the domain functions with explicit times, and
through the running coordinator (``/service/jwks``, ``/system/token-keys/rotate``).
Each test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from coordinator_fixtures import Coordinator
from robot_world import PASSWORD, new_user
from sqlalchemy import delete, select

from coordinator.db.engine import Database
from coordinator.db.migrate import upgrade
from coordinator.db.schema import signing_keys
from coordinator.keys import (
    KEY_GRACE,
    KeyRing,
    active_kid,
    ensure_active,
    load_signing_key,
    next_kid,
    policy_keys,
    published,
    rotate,
)
from portmesh.secrets import SecretError, SecretKeys
from portmesh.tokens import KeySet, TokenError, new_claims, sign, verify

TTL = 600
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def db(tmp_path: Path, database_url: str | None) -> Iterator[Database]:
    database = Database(database_url or f"sqlite:///{tmp_path / 'k.db'}")
    upgrade(database)
    database.run_sync(lambda conn: conn.execute(delete(signing_keys)))
    try:
        yield database
    finally:
        database.close()


@pytest.fixture
def sealer(module_secrets: Path) -> SecretKeys:
    """The module's key file, which the PostgreSQL coordinators of this module use too."""
    return SecretKeys.load(module_secrets)


def _token(db: Database, sealer: SecretKeys, kid: str, at: datetime) -> str:
    key = db.run_sync(load_signing_key, kid, sealer)
    claims = new_claims(
        issuer="coord", subject="u", audience="node", access=(), ttl=TTL, now=at.timestamp()
    )
    return sign(claims, key)


def _kid_of(token: str) -> str:
    head = token.split(".")[0]
    kid: str = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))["kid"]
    return kid


def test_private_keys_are_sealed_and_one_key_is_active(
    db: Database, sealer: SecretKeys, tmp_path: Path
) -> None:
    first = db.run_sync(ensure_active, sealer)
    assert db.run_sync(ensure_active, sealer) == first  # idempotent
    upcoming = db.run_sync(next_kid)
    rows = db.run_sync(lambda conn: conn.execute(select(signing_keys)).all())
    assert {r.kid for r in rows} == {first, upcoming}  # the active and the next key
    row = next(r for r in rows if r.kid == first)
    key = db.run_sync(load_signing_key, first, sealer)
    assert str(row.private_key).startswith("pm1:")
    assert key.kid == first and str(row.private_key).find(key.seed.hex()) == -1
    with pytest.raises(SecretError):
        db.run_sync(load_signing_key, first, SecretKeys.load(tmp_path / "other.key"))


def test_rotation_keeps_old_tokens_verifiable_until_they_expire(
    db: Database, sealer: SecretKeys
) -> None:
    old = db.run_sync(ensure_active, sealer)
    upcoming = db.run_sync(next_kid)
    assert set(db.run_sync(published, token_ttl=TTL, at=T0).kids) == {old, upcoming}
    token = _token(db, sealer, old, T0)
    rotated_at = T0 + timedelta(seconds=60)
    new = db.run_sync(rotate, sealer, token_ttl=TTL, at=rotated_at)
    # the rotation switches to the key published before it, and stages a new next key
    assert new == upcoming and db.run_sync(active_kid) == new
    staged = db.run_sync(next_kid)
    assert staged not in (None, old, new)

    # right after the rotation, and until the old token expires, the old key is published
    for later in (rotated_at, rotated_at + timedelta(seconds=TTL + KEY_GRACE - 1)):
        keys = db.run_sync(published, token_ttl=TTL, at=later)
        assert set(keys.kids) == {old, new, staged}
    claims = verify(
        token,
        db.run_sync(published, token_ttl=TTL, at=rotated_at),
        audience="node",
        now=T0.timestamp() + 1,
    )
    assert claims.sub == "u"
    # tokens signed now use the new key
    assert verify(
        _token(db, sealer, new, rotated_at),
        db.run_sync(published, token_ttl=TTL, at=rotated_at),
        audience="node",
        now=rotated_at.timestamp(),
    )

    # after the retirement period the old key is gone: its tokens no longer verify
    after = rotated_at + timedelta(seconds=TTL + KEY_GRACE + 1)
    keys = db.run_sync(published, token_ttl=TTL, at=after)
    assert set(keys.kids) == {new, staged}
    with pytest.raises(TokenError, match="unknown kid"):
        verify(token, keys, audience="node", now=T0.timestamp() + 1)
    # the next rotation deletes it
    newest = db.run_sync(rotate, sealer, token_ttl=TTL, at=after)
    assert newest == staged
    kids = db.run_sync(lambda conn: set(conn.execute(select(signing_keys.c.kid)).scalars()))
    assert kids == {new, newest, db.run_sync(next_kid)}


def test_policy_keys_are_the_published_jwks(db: Database, sealer: SecretKeys) -> None:
    first = db.run_sync(ensure_active, sealer)
    second = db.run_sync(rotate, sealer, token_ttl=TTL)
    third = db.run_sync(next_kid)
    assert third is not None
    entries = db.run_sync(policy_keys, token_ttl=TTL)
    assert {e["kid"] for e in entries} == {first, second, third}
    assert all(e["kty"] == "OKP" and e["crv"] == "Ed25519" and "d" not in e for e in entries)
    assert KeySet.from_jwks(entries).kids == sorted([first, second, third])


async def test_keyring_signs_with_the_active_key(db: Database, sealer: SecretKeys) -> None:
    ring = KeyRing(db, sealer, token_ttl=TTL)
    first = await ring.signer()
    assert (await ring.signer()) is first  # cached while the kid is unchanged
    new_kid = await ring.rotate()
    assert (await ring.signer()).kid == new_kid
    staged = await db.run(next_kid)
    assert {k["kid"] for k in (await ring.jwks())["keys"]} == {first.kid, new_kid, staged}
    described = {k["kid"]: k for k in await ring.describe()}
    assert described[new_kid]["active"] and described[new_kid]["retired_at"] is None
    assert not described[first.kid]["active"] and described[first.kid]["published"]
    assert described[staged]["next"] and not described[staged]["active"]


async def test_rotation_through_the_api(
    coordinator: Coordinator, admin_http: httpx.AsyncClient
) -> None:
    async with httpx.AsyncClient(base_url=coordinator.url) as anon:
        before = await anon.get("/service/token", params={"service": "node-a"})
        token = before.json()["token"]
        old_kids = [k["kid"] for k in (await anon.get("/service/jwks")).json()["keys"]]

        assert (await anon.post("/api/v2.0/system/token-keys/rotate")).status_code == 401
        rotated = await admin_http.post("/system/token-keys/rotate")
        assert rotated.status_code == 200, rotated.text
        new_kid = rotated.json()["kid"]
        # nodes knew the key before it signed anything: it was published as the next key
        assert new_kid in old_kids and new_kid != _kid_of(token)

        jwks = (await anon.get("/service/jwks")).json()
        kids = {k["kid"] for k in jwks["keys"]}
        assert set(old_kids) < kids and len(kids) == len(old_kids) + 1
        # a token signed before the rotation still verifies with the published keys
        assert verify(token, KeySet.from_jwks(jwks), audience="node-a", now=time.time())
        after = await anon.get("/service/token", params={"service": "node-a"})
        claims = verify(
            after.json()["token"], KeySet.from_jwks(jwks), audience="node-a", now=time.time()
        )
        assert claims.iss == coordinator.config.url
        assert _kid_of(after.json()["token"]) == new_kid

    listed = (await admin_http.get("/system/token-keys")).json()
    assert [k["kid"] for k in listed if k["active"]] == [new_kid]
    logs = (await admin_http.get("/audit-logs", params={"q": "resource_type=token-key"})).json()
    assert new_kid in [e["resource"] for e in logs]


async def test_only_sysadmins_rotate(
    coordinator: Coordinator, admin_http: httpx.AsyncClient, unique: Callable[[str], str]
) -> None:
    name = unique("plain")
    await new_user(admin_http, name)
    async with httpx.AsyncClient(base_url=coordinator.api, auth=(name, PASSWORD)) as user:
        assert (await user.post("/system/token-keys/rotate")).status_code == 403
        assert (await user.get("/system/token-keys")).status_code == 403
