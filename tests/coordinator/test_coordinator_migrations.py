"""The Alembic migrations produce exactly ``coordinator.db.schema`` (autogenerate finds
no difference), on SQLite and on PostgreSQL, and ``upgrade`` is idempotent."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from coordinator.db.engine import Database
from coordinator.db.migrate import upgrade
from coordinator.db.schema import metadata


def test_migrated_schema_equals_schema_py(tmp_path: Path, database_url: str | None) -> None:
    db = Database(database_url or f"sqlite:///{tmp_path / 'm.db'}")
    try:
        upgrade(db)
        upgrade(db)  # a second start changes nothing
        with db.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
            tables = set(inspect(conn).get_table_names())
        assert set(metadata.tables) | {"alembic_version"} <= tables
    finally:
        db.close()
