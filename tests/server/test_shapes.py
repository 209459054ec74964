"""Filter shapes (``_shapes``): one per SQL, never one for two SQLs."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from tablesync.odata import parse_filter
from tablesync.server._query import compile_filter
from tablesync.server._shapes import named, shape_of
from tests.odata.conftest import movies_table

TABLE = movies_table()


def _shape(text: str) -> Any:
    shaped = shape_of(compile_filter(parse_filter(text), TABLE))
    assert shaped is not None, text
    return shaped


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("year ge 1990 and rating eq 'R'", "year ge 2011 and rating eq 'PG-13'"),
        ("year in (1990, 1991)", "year in (2000, 2001)"),
        ("substring(title, 2) eq 'he'", "substring(title, 7) eq 'x'"),
        ("releaseDate gt cast(2001-02-03T00:00:00Z,Edm.DateTimeOffset)",
         "releaseDate gt datetimeoffset'1999-01-01T00:00:00Z'"),
        ("duration add 10 gt 100", "duration add 3 gt 7"),
    ],
)  # fmt: skip
def test_filters_differing_in_values_share_a_shape_and_bind_their_own(
    first: str, second: str
) -> None:
    (shape_1, values_1), (shape_2, values_2) = _shape(first), _shape(second)
    assert shape_1 == shape_2 and hash(shape_1) == hash(shape_2)
    assert values_1.keys() == values_2.keys() and values_1 != values_2
    sql = named(shape_1)
    assert sql is not None
    for dialect in (sqlite.dialect(), postgresql.dialect()):
        compiled = sql.compile(dialect=dialect)
        assert set(compiled.params) == set(values_1)
        assert all(value is None for value in compiled.params.values())  # no value kept


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("rating eq 'R'", "rating eq null"),
        ("rating eq 'R'", "rating ne 'R'"),
        ("year in (1, 2)", "year in (1, 2, 3)"),
        ("duration add 1 gt 100", "duration sub 1 gt 100"),
        ("year ge 1990", "year ge 1990.5"),
        ("year(releaseDate) eq 1994", "month(releaseDate) eq 1994"),
        ("startswith(title, 'a')", "endswith(title, 'a')"),
    ],
)
def test_filters_differing_in_sql_have_different_shapes(first: str, second: str) -> None:
    assert _shape(first)[0] != _shape(second)[0]


def test_a_parameter_used_twice_stays_one_parameter() -> None:
    (shape, values) = _shape("endswith(title, 'ab')")  # the suffix is used three times
    sql = named(shape)
    assert sql is not None
    assert values == {"ts_v0": "ab", "ts_v1": 1}
    assert str(sql.compile(dialect=postgresql.dialect())).count("%(ts_v0)s") == 3


def test_a_filter_sqlalchemy_cannot_key_has_no_shape() -> None:
    class Unkeyed(sa.sql.expression.ColumnElement[bool]):  # no inherit_cache: no cache key
        pass

    with pytest.warns(sa.exc.SAWarning, match="cache"):
        assert shape_of(Unkeyed()) is None
