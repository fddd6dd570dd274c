"""``ListQuery`` -> SQL: WHERE clauses, ORDER BY, LIMIT/OFFSET, and the total count.

Each listing declares which keys it offers and the column behind each one; a condition
or sort key outside that map is a 400 (``Invalid``), never silently ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Connection, Select, and_, func, or_, select

from coordinator.errors import Invalid
from coordinator.query import Condition, ListQuery

__all__ = ["Columns", "fetch_page", "where"]

Columns = Mapping[str, ColumnElement[Any]]


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _coerce(value: object, column: ColumnElement[Any]) -> object:
    python_type: type | None
    try:
        python_type = column.type.python_type
    except NotImplementedError:
        python_type = None
    if python_type is bool and isinstance(value, str):
        if value.lower() not in ("true", "false", "1", "0"):
            raise Invalid(f"{value!r} is not a boolean")
        return value.lower() in ("true", "1")
    if python_type is int and isinstance(value, str):
        raise Invalid(f"{value!r} is not an integer")
    if python_type is datetime and not isinstance(value, datetime):
        raise Invalid(f"{value!r} is not a time (YYYY-MM-DD HH:MM:SS)")
    if python_type is str and not isinstance(value, str):
        return str(value)
    return value


def _clause(cond: Condition, column: ColumnElement[Any]) -> ColumnElement[bool]:
    if cond.kind == "exact":
        return column == _coerce(cond.value, column)
    if cond.kind == "fuzzy":
        pattern = f"%{_like_escape(str(cond.value))}%"
        return column.ilike(pattern, escape="\\")
    if cond.kind == "range":
        low, high = cast(tuple[object, object], cond.value)
        parts = []
        if low is not None:
            parts.append(column >= _coerce(low, column))
        if high is not None:
            parts.append(column <= _coerce(high, column))
        return and_(*parts)
    if cond.kind == "any":
        return or_(*(column == _coerce(v, column) for v in cond.value))  # type: ignore[attr-defined]
    raise Invalid(f"query key {cond.key!r} takes one value, not an (a b) list")


def where(query: ListQuery, columns: Columns) -> list[ColumnElement[bool]]:
    """The WHERE clauses of ``query``'s conditions; Invalid for a key not in ``columns``."""
    clauses = []
    for cond in query.conditions:
        column = columns.get(cond.key)
        if column is None:
            offered = ", ".join(sorted(columns))
            raise Invalid(f"query key {cond.key!r} is not supported here (supported: {offered})")
        clauses.append(_clause(cond, column))
    return clauses


def fetch_page(
    conn: Connection,
    stmt: Select[Any],
    query: ListQuery,
    columns: Columns,
    default_order: ColumnElement[Any],
) -> tuple[int, list[Any]]:
    """(total matching rows, the rows of the requested page) of ``stmt`` filtered by
    ``query``; sorted by ``query.sort`` keys from ``columns``, then ``default_order``."""
    stmt = stmt.where(*where(query, columns))
    total = conn.execute(select(func.count()).select_from(stmt.subquery())).scalar_one()
    order: list[ColumnElement[Any]] = []
    for key in query.sort:
        column = columns.get(key.key)
        if column is None:
            raise Invalid(f"sort key {key.key!r} is not supported here")
        order.append(column.desc() if key.descending else column.asc())
    order.append(default_order)
    rows = conn.execute(stmt.order_by(*order).limit(query.page_size).offset(query.offset)).all()
    return int(total), list(rows)
