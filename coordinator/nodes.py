"""Nodes of the mesh: join tokens, registration, node authentication, heartbeats.

A system administrator creates a join token (shown once, stored as its sha256, valid
until ``expires_at``, usable by one node). A node registers with it, giving its name,
its Ed25519 public key and its URL; it gets a node id and its ``service`` (the audience
of tokens issued for it, equal to its name). From then on the node signs a short-lived
EdDSA JWT for each request (:data:`COORDINATOR_AUDIENCE`, ``iss`` = :func:`node_issuer`,
``sub`` = the node id), checked by :func:`authenticate` against the registered key.
Deleting a node forgets its key, so its requests fail from then on, and its service is
no longer in the snapshot, so the tokens issued for it stop being minted.

A node is healthy when it was last seen within two poll periods (its ``wait``) plus
:data:`HEALTH_SLACK` seconds. All functions take ``conn`` and run inside ``db.run``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, Row, delete, insert, select, update

from coordinator.db.filters import fetch_page
from coordinator.db.schema import iso, node_join_tokens, nodes, now, utc
from coordinator.errors import Invalid, NotFound, Unauthorized
from coordinator.query import ListQuery
from portmesh.tokens import KeySet, TokenError, verify

__all__ = [
    "COORDINATOR_AUDIENCE",
    "HEALTH_SLACK",
    "JOIN_TOKEN_PREFIX",
    "JoinToken",
    "NodeStats",
    "authenticate",
    "create_join_token",
    "delete_node",
    "get_node",
    "heartbeat",
    "list_nodes",
    "mark_synced",
    "node_issuer",
    "register",
    "services",
    "to_json",
]

#: ``aud`` of the JWTs nodes sign for the coordinator
COORDINATOR_AUDIENCE = "portmesh-coordinator"
JOIN_TOKEN_PREFIX = "pmjoin_"
HEALTH_SLACK = 10.0
MAX_JOIN_TTL = 30 * 24 * 3600
_NAME = re.compile(r"^[a-z0-9]+(?:[.-][a-z0-9]+)*\Z")
_COLUMNS: Mapping[str, ColumnElement[Any]] = {
    "node_id": nodes.c.node_id,
    "name": nodes.c.name,
    "url": nodes.c.url,
    "last_seen": nodes.c.last_seen,
    "creation_time": nodes.c.creation_time,
}


def node_issuer(node_id: int) -> str:
    """The ``iss`` of the JWTs node ``node_id`` signs."""
    return f"portmesh-node:{node_id}"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class JoinToken:
    id: int
    token: str
    expires_at: datetime

    def __repr__(self) -> str:
        return f"JoinToken(id={self.id}, expires_at={self.expires_at.isoformat()})"


@dataclass(frozen=True)
class NodeStats:
    """What a node reports with each poll."""

    cache_bytes: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    node_version: str = ""


def create_join_token(
    conn: Connection, creator: str, *, ttl: int = 24 * 3600, description: str = ""
) -> JoinToken:
    """A new join token valid for ``ttl`` seconds (1 s .. 30 days)."""
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 0 < ttl <= MAX_JOIN_TTL:
        raise Invalid(f"duration must be 1..{MAX_JOIN_TTL} seconds")
    if not isinstance(description, str) or len(description) > 1024:
        raise Invalid("description must be a string of at most 1024 characters")
    token = JOIN_TOKEN_PREFIX + secrets.token_urlsafe(32)
    created = now()
    expires = created + timedelta(seconds=ttl)
    token_id = conn.execute(
        insert(node_join_tokens).values(
            token_hash=_hash(token),
            description=description,
            creator=creator,
            expires_at=expires,
            creation_time=created,
        )
    ).inserted_primary_key
    assert token_id is not None
    return JoinToken(int(token_id[0]), token, expires)


def _check_key(public_key: object) -> tuple[str, str]:
    """(base64url key, kid) of an Ed25519 public key given as base64url or as a JWK
    (whose ``kid`` is kept; else the kid is derived from the key)."""
    kid: object = None
    if isinstance(public_key, dict):
        kid = public_key.get("kid")
        public_key = public_key.get("x")
    if not isinstance(public_key, str) or len(public_key) > 64:
        raise Invalid("public_key must be an Ed25519 public key (base64url or JWK)")
    try:
        raw = base64.urlsafe_b64decode(public_key + "=" * (-len(public_key) % 4))
    except (binascii.Error, ValueError) as exc:
        raise Invalid("public_key is not base64url") from exc
    if len(raw) != 32:
        raise Invalid("public_key must be 32 bytes (Ed25519)")
    if not isinstance(kid, str) or not 0 < len(kid) <= 64:
        kid = _b64(hashlib.sha256(raw).digest()[:12])
    return _b64(raw), kid


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def register(
    conn: Connection, join_token: object, name: object, public_key: object, url: object
) -> Row[Any]:
    """Register a node with a join token; the new node's row. Unauthorized for an
    unknown, used or expired token; Invalid for a bad name, key or URL; Conflict for a
    name in use."""
    if not isinstance(join_token, str) or not join_token:
        raise Unauthorized("a join token is required")
    if not isinstance(name, str) or len(name) > 63 or not _NAME.match(name):
        raise Invalid("name must be lower-case letters, digits, '.' and '-' (at most 63)")
    if not isinstance(url, str) or len(url) > 1024:
        raise Invalid("url must be a string")
    x, kid = _check_key(public_key)
    token = conn.execute(
        select(node_join_tokens).where(node_join_tokens.c.token_hash == _hash(join_token))
    ).first()
    if token is None or token.node_id is not None or utc(token.expires_at) <= now():
        raise Unauthorized("the join token is unknown, used or expired")
    node_id = conn.execute(
        insert(nodes).values(
            name=name, service=name, url=url, public_key=x, kid=kid, creation_time=now()
        )
    ).inserted_primary_key
    assert node_id is not None
    used = conn.execute(
        update(node_join_tokens)
        .where(node_join_tokens.c.id == token.id, node_join_tokens.c.node_id.is_(None))
        .values(node_id=node_id[0])
    )
    if used.rowcount != 1:  # another node joined with it at the same time
        raise Unauthorized("the join token is unknown, used or expired")
    return get_node(conn, int(node_id[0]))


def get_node(conn: Connection, node_id: int) -> Row[Any]:
    row = conn.execute(select(nodes).where(nodes.c.node_id == node_id)).first()
    if row is None:
        raise NotFound(f"node {node_id} not found")
    return row


def authenticate(row: Row[Any], token: str, when: float) -> None:
    """Unauthorized unless ``token`` is a valid JWT signed by node ``row``."""
    keys = KeySet.from_jwks([{"kty": "OKP", "crv": "Ed25519", "x": row.public_key, "kid": row.kid}])
    try:
        claims = verify(
            token,
            keys,
            audience=COORDINATOR_AUDIENCE,
            now=when,
            issuers=(node_issuer(row.node_id),),
        )
    except TokenError as exc:
        raise Unauthorized(f"node token refused: {exc.reason}") from exc
    if claims.sub != str(row.node_id):
        raise Unauthorized("node token refused: wrong subject")


def heartbeat(conn: Connection, node_id: int, stats: NodeStats, wait: int) -> None:
    """Record that the node polled now, with its stats and poll period."""
    conn.execute(
        update(nodes)
        .where(nodes.c.node_id == node_id)
        .values(
            last_seen=now(),
            poll_wait=wait,
            cache_bytes=stats.cache_bytes,
            cache_hits=stats.cache_hits,
            cache_misses=stats.cache_misses,
            node_version=stats.node_version[:64],
        )
    )


def mark_synced(conn: Connection, node_id: int, version: int) -> None:
    """The node was handed snapshot ``version`` now."""
    stamp = now()
    conn.execute(
        update(nodes)
        .where(nodes.c.node_id == node_id)
        .values(last_seen=stamp, last_sync=stamp, policy_version=version)
    )


def list_nodes(conn: Connection, query: ListQuery) -> tuple[int, list[Row[Any]]]:
    return fetch_page(conn, select(nodes), query, _COLUMNS, nodes.c.node_id)


def delete_node(conn: Connection, node_id: int) -> None:
    if conn.execute(delete(nodes).where(nodes.c.node_id == node_id)).rowcount != 1:
        raise NotFound(f"node {node_id} not found")


def services(conn: Connection) -> dict[int, str]:
    """Every registered node's id and service."""
    return {int(r.node_id): str(r.service) for r in conn.execute(select(nodes)).all()}


def to_json(row: Row[Any], at: datetime | None = None) -> dict[str, Any]:
    """A node as the API shows it; ``healthy`` relative to ``at`` (default now)."""
    at = at or now()
    seen = utc(row.last_seen) if row.last_seen is not None else None
    period = max(int(row.poll_wait), 1)
    healthy = seen is not None and (at - seen).total_seconds() <= 2 * period + HEALTH_SLACK
    requests = int(row.cache_hits) + int(row.cache_misses)
    return {
        "id": int(row.node_id),
        "name": row.name,
        "service": row.service,
        "url": row.url,
        "status": "healthy" if healthy else "unhealthy",
        "healthy": healthy,
        "last_seen": iso(seen) if seen else None,
        "last_sync": iso(row.last_sync) if row.last_sync is not None else None,
        "policy_version": int(row.policy_version),
        "cache_usage_bytes": int(row.cache_bytes),
        "cache_hits": int(row.cache_hits),
        "cache_misses": int(row.cache_misses),
        "hit_rate": round(int(row.cache_hits) / requests, 4) if requests else None,
        "version": row.node_version,
        "creation_time": iso(row.creation_time),
    }
