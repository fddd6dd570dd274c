"""Tables of the coordinator (SQLAlchemy Core).

Implemented here: ``users``, ``projects``, ``project_metadata``, ``members``,
``audit_log`` and ``sessions``. The tables for robots, registries, nodes and events are
added by their own Alembic revisions next to the code that uses them;
``projects.registry_id`` is a plain nullable integer whose reference to ``registries``
is checked in code (``coordinator.registries``).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)

__all__ = [
    "ID_MAX",
    "artifacts",
    "audit_log",
    "event_cursors",
    "iso",
    "members",
    "metadata",
    "node_join_tokens",
    "nodes",
    "now",
    "policy_state",
    "project_metadata",
    "projects",
    "registries",
    "repositories",
    "robot_tombstones",
    "robots",
    "sessions",
    "signing_keys",
    "tags",
    "users",
    "utc",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

#: the largest value an ``Integer`` id column holds (32 bits on PostgreSQL)
ID_MAX = 2**31 - 1


def now() -> datetime:
    """The current time, aware UTC (what every timestamp column stores)."""
    return datetime.now(UTC)


def utc(value: datetime) -> datetime:
    """``value`` as aware UTC (SQLite returns naive datetimes)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def iso(value: datetime) -> str:
    """``value`` in Harbor's JSON time format, ``2024-05-01T12:00:00.000Z``."""
    return utc(value).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _timestamps() -> list[Column[datetime]]:
    return [
        Column("creation_time", DateTime(timezone=True), nullable=False),
        Column("update_time", DateTime(timezone=True), nullable=False),
    ]


users = Table(
    "users",
    metadata,
    Column("user_id", Integer, primary_key=True),
    Column("username", String(255), nullable=False, unique=True),
    Column("email", String(255), nullable=True, unique=True),
    Column("realname", String(255), nullable=False, server_default=""),
    Column("comment", String(1024), nullable=False, server_default=""),
    Column("password_hash", String(255), nullable=False),
    Column("sysadmin_flag", Boolean, nullable=False, server_default="0"),
    *_timestamps(),
)

projects = Table(
    "projects",
    metadata,
    Column("project_id", Integer, primary_key=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("owner_id", Integer, ForeignKey("users.user_id", ondelete="SET NULL"), nullable=True),
    # The upstream registry of a proxy-cache project (``registries.id``; checked by
    # ``coordinator.registries``, not a foreign key: adding one would rebuild the table).
    Column("registry_id", Integer, nullable=True),
    # Bytes; -1 is unlimited, as Harbor's storage_limit.
    Column("storage_limit", BigInteger, nullable=False, server_default="-1"),
    *_timestamps(),
)

project_metadata = Table(
    "project_metadata",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "project_id",
        Integer,
        ForeignKey("projects.project_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("name", String(255), nullable=False),
    Column("value", String(255), nullable=False),
    *_timestamps(),
    UniqueConstraint("project_id", "name", name="uq_project_metadata_project_id_name"),
)

members = Table(
    "members",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "project_id",
        Integer,
        ForeignKey("projects.project_id", ondelete="CASCADE"),
        nullable=False,
    ),
    # 'u' a user (entity_id is users.user_id), 'g' a user group (groups come later).
    Column("entity_type", String(1), nullable=False),
    Column("entity_id", Integer, nullable=False),
    Column("role_id", Integer, nullable=False),
    *_timestamps(),
    UniqueConstraint("project_id", "entity_type", "entity_id", name="uq_members_project_id_entity"),
    CheckConstraint("entity_type IN ('u', 'g')", name="entity_type"),
    Index("ix_members_entity", "entity_type", "entity_id"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("project_id", Integer, nullable=True),
    Column("op_time", DateTime(timezone=True), nullable=False),
    Column("username", String(255), nullable=False),
    Column("operation", String(32), nullable=False),
    Column("resource_type", String(64), nullable=False),
    Column("resource", String(1024), nullable=False),
    Column("result", Boolean, nullable=False),
    Index("ix_audit_log_op_time", "op_time"),
)

sessions = Table(
    "sessions",
    metadata,
    # sha256 hex of the cookie value: a database leak does not leak live sessions.
    Column("sid_hash", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.user_id", ondelete="CASCADE"), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("creation_time", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

# --------------------------------------------------------------------------- nodes

node_join_tokens = Table(
    "node_join_tokens",
    metadata,
    Column("id", Integer, primary_key=True),
    # sha256 hex of the token: the token itself is shown once and never stored.
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("description", String(1024), nullable=False, server_default=""),
    Column("creator", String(255), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    # the node that joined with it (a join token works once)
    Column("node_id", Integer, nullable=True),
    Column("creation_time", DateTime(timezone=True), nullable=False),
)

nodes = Table(
    "nodes",
    metadata,
    Column("node_id", Integer, primary_key=True),
    Column("name", String(255), nullable=False, unique=True),
    # the audience (``service``) of the tokens issued for this node
    Column("service", String(255), nullable=False, unique=True),
    Column("url", String(1024), nullable=False, server_default=""),
    # the node's Ed25519 public key (base64url) and its kid
    Column("public_key", String(64), nullable=False),
    Column("kid", String(64), nullable=False),
    Column("last_seen", DateTime(timezone=True), nullable=True),
    Column("last_sync", DateTime(timezone=True), nullable=True),
    Column("poll_wait", Integer, nullable=False, server_default="30"),
    Column("policy_version", BigInteger, nullable=False, server_default="0"),
    Column("cache_bytes", BigInteger, nullable=False, server_default="0"),
    Column("cache_hits", BigInteger, nullable=False, server_default="0"),
    Column("cache_misses", BigInteger, nullable=False, server_default="0"),
    Column("node_version", String(64), nullable=False, server_default=""),
    Column("creation_time", DateTime(timezone=True), nullable=False),
)

# One row (id 1): the version of the policy snapshot nodes receive, and the sha256 of
# the snapshot's content at that version (a changed content bumps the version).
policy_state = Table(
    "policy_state",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("version", BigInteger, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("update_time", DateTime(timezone=True), nullable=False),
)

# ------------------------------------------------- registries, artifact index, events

registries = Table(
    "registries",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("url", String(1024), nullable=False),
    # Harbor's type name (docker-hub, docker-registry, aws-ecr ...)
    Column("type", String(64), nullable=False),
    # basic, oauth, secret, or "" for anonymous access
    Column("credential_type", String(16), nullable=False, server_default=""),
    Column("access_key", String(1024), nullable=False, server_default=""),
    # sealed with portmesh.secrets (never the plain secret); "" when there is none
    Column("access_secret", String(8192), nullable=False, server_default=""),
    Column("insecure", Boolean, nullable=False, server_default="0"),
    Column("description", String(1024), nullable=False, server_default=""),
    # healthy, unhealthy or unknown: the outcome of the last ping by id
    Column("status", String(16), nullable=False, server_default="unknown"),
    *_timestamps(),
)

repositories = Table(
    "repositories",
    metadata,
    Column("repository_id", Integer, primary_key=True),
    Column(
        "project_id",
        Integer,
        ForeignKey("projects.project_id", ondelete="CASCADE"),
        nullable=False,
    ),
    # the full name, ``<project>/<path>``
    Column("name", String(255), nullable=False, unique=True),
    Column("description", String(1024), nullable=False, server_default=""),
    Column("pull_count", BigInteger, nullable=False, server_default="0"),
    *_timestamps(),
    Index("ix_repositories_project_id", "project_id"),
)

artifacts = Table(
    "artifacts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "repository_id",
        Integer,
        ForeignKey("repositories.repository_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("digest", String(255), nullable=False),
    Column("media_type", String(255), nullable=False, server_default=""),
    Column("size", BigInteger, nullable=False, server_default="0"),
    Column("push_time", DateTime(timezone=True), nullable=False),
    Column("pull_time", DateTime(timezone=True), nullable=True),
    UniqueConstraint("repository_id", "digest", name="uq_artifacts_repository_id_digest"),
)

tags = Table(
    "tags",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "repository_id",
        Integer,
        ForeignKey("repositories.repository_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column(
        "artifact_id",
        Integer,
        ForeignKey("artifacts.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("name", String(255), nullable=False),
    Column("push_time", DateTime(timezone=True), nullable=False),
    Column("pull_time", DateTime(timezone=True), nullable=True),
    UniqueConstraint("repository_id", "name", name="uq_tags_repository_id_name"),
    Index("ix_tags_artifact_id", "artifact_id"),
)

# Per node, the highest event ``seq`` applied: events at or below it are duplicates.
event_cursors = Table(
    "event_cursors",
    metadata,
    Column(
        "node_id",
        Integer,
        ForeignKey("nodes.node_id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("last_seq", BigInteger, nullable=False),
    Column("update_time", DateTime(timezone=True), nullable=False),
)

# ---------------------------------------------------- robot accounts, token signing keys

robots = Table(
    "robots",
    metadata,
    Column("id", Integer, primary_key=True),
    # the full name: ``robot$<name>`` (system level) or ``robot$<project>+<name>``
    Column("name", String(255), nullable=False, unique=True),
    Column("description", String(1024), nullable=False, server_default=""),
    # system or project
    Column("level", String(16), nullable=False),
    Column(
        "project_id",
        Integer,
        ForeignKey("projects.project_id", ondelete="CASCADE"),
        nullable=True,
    ),
    # argon2id hash of the secret (the secret is shown once and never stored)
    Column("secret_hash", String(255), nullable=False),
    Column("disabled", Boolean, nullable=False, server_default="0"),
    # days; -1 never expires
    Column("duration", Integer, nullable=False),
    # Unix seconds; -1 never
    Column("expires_at", BigInteger, nullable=False),
    # JSON list of Harbor's RobotPermission objects
    Column("permissions", String(16384), nullable=False, server_default="[]"),
    Column("creator_type", String(16), nullable=False, server_default="local"),
    Column("creator_ref", Integer, nullable=False, server_default="0"),
    *_timestamps(),
    Index("ix_robots_project_id", "project_id"),
)

# Names of deleted robot accounts, published as revoked until their tokens have expired.
robot_tombstones = Table(
    "robot_tombstones",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("deleted_at", DateTime(timezone=True), nullable=False),
)

# Ed25519 keys of the token service: next (published), active (signing), retired.
signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    # base64url of the 32-byte public key
    Column("public_key", String(64), nullable=False),
    # the 32-byte seed, sealed with portmesh.secrets
    Column("private_key", String(512), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # None while the key is the next one (published, not yet signing)
    Column("activated_at", DateTime(timezone=True), nullable=True),
    Column("retired_at", DateTime(timezone=True), nullable=True),
)
