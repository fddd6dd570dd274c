"""robots and signing keys

Revision ID: 745aa62d4681
Revises: 5b7085e17c7e
Create Date: 2026-11-28 15:10:29.929475
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "745aa62d4681"
down_revision = "5b7085e17c7e"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "robot_tombstones",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_robot_tombstones")),
    )
    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("public_key", sa.String(length=64), nullable=False),
        sa.Column("private_key", sa.String(length=512), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("kid", name=op.f("pk_signing_keys")),
    )
    op.create_table(
        "robots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.String(length=1024), server_default="", nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=True),
        sa.Column("secret_hash", sa.String(length=255), nullable=False),
        sa.Column("disabled", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("duration", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("permissions", sa.String(length=16384), server_default="[]", nullable=False),
        sa.Column("creator_type", sa.String(length=16), server_default="local", nullable=False),
        sa.Column("creator_ref", sa.Integer(), server_default="0", nullable=False),
        sa.Column("creation_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.project_id"],
            name=op.f("fk_robots_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_robots")),
        sa.UniqueConstraint("name", name=op.f("uq_robots_name")),
    )
    with op.batch_alter_table("robots", schema=None) as batch_op:
        batch_op.create_index("ix_robots_project_id", ["project_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("robots", schema=None) as batch_op:
        batch_op.drop_index("ix_robots_project_id")

    op.drop_table("robots")
    op.drop_table("signing_keys")
    op.drop_table("robot_tombstones")
