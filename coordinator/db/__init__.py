"""The coordinator's database: schema (SQLAlchemy Core), engine and migrations.

Conventions every table follows:

- Column names are Harbor's JSON field names (``project_id``, ``creation_time``,
  ``sysadmin_flag`` ...), so a row maps to an API object with few renames.
- Timestamps are ``DateTime(timezone=True)`` written as aware UTC; SQLite hands them back
  naive, so readers go through ``coordinator.db.schema.utc``.
- A table changes only through a new Alembic revision under ``migrations/versions``; the
  test ``tests/coordinator/test_migrations.py`` fails when ``schema.py`` and the migrated
  database disagree.
- Handlers never hold a connection: domain functions take ``conn`` and run inside one
  transaction via ``Database.run`` (see ``engine.py``).
"""

from coordinator.db.engine import Database
from coordinator.db.schema import metadata

__all__ = ["Database", "metadata"]
