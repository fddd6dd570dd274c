"""Domain logic of the coordinator: plain functions over a SQLAlchemy ``Connection``.

Conventions: every function takes ``conn`` first and runs inside the caller's
transaction (``await db.run(users.get, user_id)``); it raises ``coordinator.errors``
types, never HTTP ones; it returns Harbor-shaped dicts (``to_json``) or plain rows.
Nothing here blocks for long: password hashing happens before ``db.run``.
"""
