"""The shape of one operation's written documentation (``Op``) and helpers the
catalogues (``catalog_core``, ``catalog_more``) share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["BOOL", "CONFLICT", "STR", "Op", "QueryParam", "query_param"]

Schema = dict[str, Any]


@dataclass(frozen=True)
class QueryParam:
    name: str
    schema: Schema
    description: str = ""
    required: bool = False


@dataclass(frozen=True)
class Op:
    """One operation's documentation.

    ``status`` is the success status and ``out`` its JSON body (None: no body);
    ``body`` names the request body's component schema; ``listing`` adds ``q``, ``sort``,
    ``page``, ``page_size`` and the pagination headers; ``also`` lists further statuses
    (beyond the errors every operation documents) with their descriptions.
    """

    summary: str
    operation_id: str
    tag: str
    status: int = 200
    out: Schema | None = None
    body: str | None = None
    listing: bool = False
    query: tuple[QueryParam, ...] = ()
    also: dict[int, str] = field(default_factory=dict)
    media_type: str = "application/json"


BOOL: Schema = {"type": "boolean"}
STR: Schema = {"type": "string"}
CONFLICT = {409: "Conflict"}


def query_param(
    name: str, schema: Schema, description: str = "", required: bool = False
) -> QueryParam:
    return QueryParam(name, schema, description, required)
