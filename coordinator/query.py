"""Listing parameters in Harbor's syntax: ``q=``, ``sort=``, ``page``/``page_size``.

``q`` is a comma-separated list of conditions::

    k=v            exact match               name=library
    k=~v           fuzzy (substring) match   name=~lib
    k=[a~b]        range, either end open    creation_time=[2024-01-01 00:00:00~]
    k={a b c}      any of                    name={library team}
    k=(a b c)      all of (multi-valued keys only)

A value is a quoted string (``"a b"`` or ``'a b'``, keeps spaces), an integer, a time
``YYYY-MM-DD HH:MM:SS`` (UTC), or else a bare string. ``sort`` is ``k1,-k2`` (``-`` for
descending). Parsing is pure; ``coordinator.db.filters`` turns the result into SQL and
rejects keys a resource does not offer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from coordinator.errors import Invalid

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "Condition",
    "ListQuery",
    "SortKey",
    "Value",
    "parse_page",
    "parse_q",
    "parse_sort",
]

DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 100
MAX_OFFSET = 2**63 - 1  # what SQL's OFFSET takes

Value = str | int | datetime
Kind = Literal["exact", "fuzzy", "range", "any", "all"]

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*\Z")
_INT = re.compile(r"^-?\d+\Z")
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}\Z")
_LIST_ITEM = re.compile(r"\"[^\"]*\"|'[^']*'|\S+")


@dataclass(frozen=True)
class Condition:
    """One ``q`` condition. ``value`` is a Value (exact, fuzzy), a (low, high) pair with
    None for an open end (range), or a tuple of Values (any, all)."""

    key: str
    kind: Kind
    value: object


@dataclass(frozen=True)
class SortKey:
    key: str
    descending: bool = False


@dataclass(frozen=True)
class ListQuery:
    """What a listing endpoint was asked for."""

    conditions: tuple[Condition, ...] = ()
    sort: tuple[SortKey, ...] = ()
    page: int = 1
    page_size: int = DEFAULT_PAGE_SIZE
    extra: dict[str, Value] = field(default_factory=dict)

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.page_size


def _value(text: str) -> Value:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    if _INT.match(text):
        return int(text)
    if _TIME.match(text):
        return datetime.fromisoformat(text.replace(" ", "T")).replace(tzinfo=UTC)
    return text


def _split(q: str) -> list[str]:
    """Split on commas that are outside quotes and brackets."""
    parts, depth, quote, start = [], 0, "", 0
    for i, char in enumerate(q):
        if quote:
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(q[start:i])
            start = i + 1
    if quote or depth:
        raise Invalid(f"invalid query {q!r}: unbalanced quotes or brackets")
    parts.append(q[start:])
    return [part for part in (p.strip() for p in parts) if part]


def _condition(text: str) -> Condition:
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not _KEY.match(key):
        raise Invalid(f"invalid query condition {text!r}: expected k=v")
    raw = raw.strip()
    if raw.startswith("~"):
        return Condition(key, "fuzzy", _value(raw[1:]))
    if raw.startswith("[") and raw.endswith("]"):
        low, tilde, high = raw[1:-1].partition("~")
        if not tilde:
            raise Invalid(f"invalid range in {text!r}: expected [min~max]")
        lo = _value(low) if low.strip() else None
        hi = _value(high) if high.strip() else None
        if lo is None and hi is None:
            raise Invalid(f"invalid range in {text!r}: both ends are empty")
        return Condition(key, "range", (lo, hi))
    for opening, closing, kind in (("{", "}", "any"), ("(", ")", "all")):
        if raw.startswith(opening) and raw.endswith(closing):
            items = tuple(_value(item) for item in _LIST_ITEM.findall(raw[1:-1]))
            if not items:
                raise Invalid(f"invalid list in {text!r}: it is empty")
            return Condition(key, kind, items)  # type: ignore[arg-type]
    return Condition(key, "exact", _value(raw))


def parse_q(q: str | None) -> tuple[Condition, ...]:
    """The conditions of a ``q`` parameter; Invalid for malformed input."""
    if not q:
        return ()
    return tuple(_condition(part) for part in _split(q))


def parse_sort(sort: str | None) -> tuple[SortKey, ...]:
    """``k1,-k2`` -> sort keys; Invalid for malformed keys."""
    keys = []
    for part in (sort or "").split(","):
        part = part.strip()
        if not part:
            continue
        descending = part.startswith("-")
        key = part.lstrip("-")
        if not _KEY.match(key):
            raise Invalid(f"invalid sort key {part!r}")
        keys.append(SortKey(key, descending))
    return tuple(keys)


def parse_page(page: str | None, page_size: str | None) -> tuple[int, int]:
    """1-based ``page`` and ``page_size`` (default 10, at most 100); Invalid otherwise."""
    try:
        number = int(page) if page else 1
        size = int(page_size) if page_size else DEFAULT_PAGE_SIZE
    except ValueError as exc:
        raise Invalid("page and page_size must be integers") from exc
    if number < 1:
        raise Invalid("page must be 1 or more")
    if size < 1 or size > MAX_PAGE_SIZE:
        raise Invalid(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
    if (number - 1) * size > MAX_OFFSET:
        raise Invalid(f"page must be at most {MAX_OFFSET // size + 1} for this page_size")
    return number, size
