"""Unit tests of Harbor's ``q=``/``sort=``/paging syntax and its SQL translation (SQLite
in memory)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Column, Connection, Integer, MetaData, String, Table, create_engine, select

from coordinator.db.filters import fetch_page
from coordinator.errors import Invalid
from coordinator.query import Condition, ListQuery, SortKey, parse_page, parse_q, parse_sort


def test_parse_each_kind() -> None:
    conditions = parse_q(
        "name=library,name=~lib,id=[1~10],creation_time=[2024-01-02 03:04:05~],"
        "tags={a 'b c' 3},labels=(x y)"
    )
    assert conditions == (
        Condition("name", "exact", "library"),
        Condition("name", "fuzzy", "lib"),
        Condition("id", "range", (1, 10)),
        Condition("creation_time", "range", (datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), None)),
        Condition("tags", "any", ("a", "b c", 3)),
        Condition("labels", "all", ("x", "y")),
    )


def test_quoted_values_keep_commas_and_stay_strings() -> None:
    assert parse_q('name="a,b",id="42"') == (
        Condition("name", "exact", "a,b"),
        Condition("id", "exact", "42"),
    )
    assert parse_q("") == () and parse_q(None) == ()


@pytest.mark.parametrize(
    "bad", ["name", "=x", "name={}", "id=[~]", "id=[1 2]", "name={a b", 'name="x', "1x=2"]
)
def test_malformed_q_is_invalid(bad: str) -> None:
    with pytest.raises(Invalid):
        parse_q(bad)


def test_sort_and_page() -> None:
    assert parse_sort("name,-creation_time") == (
        SortKey("name"),
        SortKey("creation_time", descending=True),
    )
    assert parse_page(None, None) == (1, 10)
    assert parse_page("3", "100") == (3, 100)
    for page, size in (("0", "10"), ("1", "0"), ("1", "101"), ("x", "10")):
        with pytest.raises(Invalid):
            parse_page(page, size)
    with pytest.raises(Invalid):
        parse_sort("na me")


things = Table(
    "things",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("name", String(50)),
)


@pytest.fixture
def conn() -> Iterator[Connection]:
    engine = create_engine("sqlite://")
    with engine.begin() as connection:
        things.create(connection)
        connection.execute(
            things.insert(),
            [
                {"id": i, "name": name}
                for i, name in enumerate(
                    ["alpha", "beta", "gamma", "delta", "al_pha", "100%"], start=1
                )
            ],
        )
        yield connection
    engine.dispose()


def _names(conn: Connection, q: str, sort: str = "", page: int = 1, size: int = 10) -> list[str]:
    query = ListQuery(parse_q(q), parse_sort(sort), page, size)
    columns = {"id": things.c.id, "name": things.c.name}
    _, rows = fetch_page(conn, select(things), query, columns, things.c.id)
    return [row.name for row in rows]


def test_filters_in_sql(conn: Connection) -> None:
    assert _names(conn, "name=beta") == ["beta"]
    assert _names(conn, "name=~ph") == ["alpha", "al_pha"]
    assert _names(conn, "name=~l_p") == ["al_pha"]  # LIKE wildcards are escaped
    assert _names(conn, "name=~%") == ["100%"]
    assert _names(conn, "id=[2~4]") == ["beta", "gamma", "delta"]
    assert _names(conn, "id=[5~]") == ["al_pha", "100%"]
    assert _names(conn, "name={gamma alpha}") == ["alpha", "gamma"]
    assert _names(conn, "", sort="-name", size=2) == ["gamma", "delta"]
    assert _names(conn, "", sort="name", page=2, size=2) == ["alpha", "beta"]


def test_total_counts_all_matches(conn: Connection) -> None:
    query = ListQuery(parse_q("id=[1~5]"), (), page=2, page_size=2)
    total, rows = fetch_page(conn, select(things), query, {"id": things.c.id}, things.c.id)
    assert total == 5 and [r.id for r in rows] == [3, 4]


@pytest.mark.parametrize("q", ["owner=x", "id=abc", "id=(1 2)"])
def test_unsupported_or_mistyped_is_invalid(conn: Connection, q: str) -> None:
    with pytest.raises(Invalid):
        _names(conn, q)
