"""nodes and policy state

Revision ID: 206fd55ca157
Revises: 0001
Create Date: 2026-11-28 14:47:44.926160
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "206fd55ca157"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "node_join_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("description", sa.String(length=1024), server_default="", nullable=False),
        sa.Column("creator", sa.String(length=255), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("node_id", sa.Integer(), nullable=True),
        sa.Column("creation_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_node_join_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_node_join_tokens_token_hash")),
    )
    op.create_table(
        "nodes",
        sa.Column("node_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("service", sa.String(length=255), nullable=False),
        sa.Column("url", sa.String(length=1024), server_default="", nullable=False),
        sa.Column("public_key", sa.String(length=64), nullable=False),
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_sync", sa.DateTime(timezone=True), nullable=True),
        sa.Column("poll_wait", sa.Integer(), server_default="30", nullable=False),
        sa.Column("policy_version", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("cache_bytes", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("cache_hits", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("cache_misses", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("node_version", sa.String(length=64), server_default="", nullable=False),
        sa.Column("creation_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("node_id", name=op.f("pk_nodes")),
        sa.UniqueConstraint("name", name=op.f("uq_nodes_name")),
        sa.UniqueConstraint("service", name=op.f("uq_nodes_service")),
    )
    op.create_table(
        "policy_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_state")),
    )


def downgrade() -> None:
    op.drop_table("policy_state")
    op.drop_table("nodes")
    op.drop_table("node_join_tokens")
