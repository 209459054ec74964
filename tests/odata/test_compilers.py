"""Every filter gives the reference evaluator's answer on server SQLite, server PostgreSQL and
the client's JSON rows (the ``backend`` fixture runs each test on all three)."""

from __future__ import annotations

from typing import Any

import pytest

from tablesync._exceptions import QueryError, UnknownColumnError, UnsupportedQueryError
from tablesync.odata import F, parse_filter, parse_orderby

from ._reference import matches, sort_key
from .conftest import OrderRunner, Runner

FILTERS = [
    # The Datasync suites' filters.
    pytest.param("year(releaseDate) eq 1994", id="year-fn"),
    pytest.param("bestPictureWinner eq true", id="bool-eq-true"),
    pytest.param("bestPictureWinner eq false", id="bool-eq-false"),
    pytest.param("bestPictureWinner", id="bool-member"),
    pytest.param("not(bestPictureWinner)", id="not-bool-member"),
    pytest.param("rating ne 'PG-13'", id="ne-includes-null"),
    pytest.param("rating eq 'PG-13'", id="eq-string"),
    pytest.param("rating eq null", id="eq-null"),
    pytest.param("rating ne null", id="ne-null"),
    pytest.param("null eq rating", id="null-on-left"),
    pytest.param("null eq null", id="null-eq-null"),
    pytest.param("null ne null", id="null-ne-null"),
    pytest.param("rating gt null", id="gt-null-is-false"),
    pytest.param("not(rating gt null)", id="not-gt-null"),
    pytest.param("rating gt 'PG'", id="gt-string-skips-null"),
    pytest.param("not(rating eq 'R')", id="not-eq-includes-null"),
    pytest.param("not(rating gt 'PG')", id="not-gt-includes-null"),
    pytest.param("contains(tolower(title), 'the')", id="contains-tolower"),
    pytest.param("contains(title, 'the')", id="contains-case-sensitive"),
    pytest.param("substringof('Lord', title)", id="substringof"),
    pytest.param("contains(title, '%')", id="contains-percent-literal"),
    pytest.param("contains(title, '_')", id="contains-underscore-literal"),
    pytest.param("contains(title, '')", id="contains-empty"),
    pytest.param("startswith(title, 'The ')", id="startswith"),
    pytest.param("startswith(title, 'the ')", id="startswith-case"),
    pytest.param("endswith(title, 'Man')", id="endswith"),
    pytest.param("endswith(title, 'This title is far longer than any title')", id="endswith-long"),
    pytest.param("startswith(rating, 'PG')", id="startswith-null-column"),
    pytest.param("not(startswith(rating, 'PG'))", id="not-startswith-null-column"),
    pytest.param("duration div 60 ge 2", id="int-div"),
    pytest.param("duration div 60 eq 2", id="int-div-eq"),
    pytest.param("duration div 60.0 gt 2.5", id="decimal-div"),
    pytest.param("duration div 0 eq null", id="div-by-zero-is-null"),
    pytest.param("duration mod 0 eq null", id="mod-by-zero-is-null"),
    pytest.param("duration mod 7 eq 3", id="mod"),
    pytest.param("score mod 2 eq 1.5", id="mod-fraction"),
    pytest.param("score mod 2 eq -0.5", id="mod-negative-fraction"),
    pytest.param("(0 sub duration) mod 7 eq -3", id="mod-negative-int"),
    pytest.param("(0 sub duration) div 60 eq -2", id="div-truncates-toward-zero"),
    pytest.param(
        "releaseDate lt cast(2000-01-01T00:00:00.000Z, Edm.DateTimeOffset)", id="cast-datetime"
    ),
    pytest.param("round(duration div 60.0) eq 2", id="round"),
    pytest.param("round(score) eq 3", id="round-half-away-positive"),
    pytest.param("round(score) eq -3", id="round-half-away-negative"),
    pytest.param("floor(score) eq -1", id="floor-negative"),
    pytest.param("ceiling(score) eq -1", id="ceiling-negative"),
    pytest.param("floor(duration div 60.0) eq 2", id="floor"),
    pytest.param("ceiling(duration div 60.0) eq 2", id="ceiling"),
    pytest.param("round(duration) eq 142", id="round-int"),
    pytest.param("substring(title, 1, 3) eq 'he '", id="substring-3"),
    pytest.param("substring(title, 4) eq 'Godfather'", id="substring-2"),
    pytest.param("substring(title, 100) eq ''", id="substring-past-end"),
    pytest.param("substring(title, duration sub 200, 2) eq 'Th'", id="substring-negative-expr"),
    pytest.param("substring(title, 0, duration sub 200) eq ''", id="substring-negative-len-expr"),
    pytest.param("indexof(title, 'The') eq 0", id="indexof-0-based"),
    pytest.param("indexof(title, 'zzz') eq -1", id="indexof-missing"),
    pytest.param("indexof(title, 'the') gt 5", id="indexof-gt"),
    pytest.param("concat(title, 'x') eq 'Jawsx'", id="concat"),
    pytest.param("concat(concat(title, ' '), rating) eq 'Jaws PG'", id="concat-nested"),
    pytest.param("concat(rating, 'x') eq null", id="concat-null-propagates"),
    pytest.param("length(title) gt 20", id="length"),
    pytest.param("length(rating) eq null", id="length-of-null"),
    pytest.param("rating in ('R', 'PG')", id="in"),
    pytest.param("rating in ('R', null)", id="in-with-null"),
    pytest.param("not(rating in ('R', 'PG'))", id="not-in-includes-null"),
    pytest.param("year in (1994, 2001, 2010)", id="in-ints"),
    pytest.param("year(releaseDate) in (year, 1994)", id="in-expressions"),
    pytest.param(
        "updatedAt ge datetimeoffset'2001-02-03T00:00:00.0000000+00:00'".replace(
            "updatedAt", "releaseDate"
        ),
        id="datetimeoffset-7-digits",
    ),
    pytest.param(
        "releaseDate ge datetimeoffset'1999-12-31T00:00:00.0000000%2B00:00'", id="offset-%2B"
    ),
    pytest.param(
        "releaseDate lt datetimeoffset'1950-01-01T05:30:00.0000000+05:30'", id="offset-positive"
    ),
    pytest.param("releaseDate gt datetimeoffset'1994-10-13T20:00:00-04:00'", id="offset-negative"),
    pytest.param("releaseDate eq datetime'1994-10-14T00:00:00Z'", id="datetime-literal-eq"),
    pytest.param("releaseDate eq '1994-10-14T00:00:00.000Z'", id="iso-string-vs-datetime"),
    pytest.param("releaseDate gt 2000-01-01T00:00:00Z", id="bare-v4-datetime"),
    pytest.param("releaseDate lt cast(1950-01-01,Edm.Date)", id="date-literal-vs-datetime"),
    pytest.param("releaseDate eq 1994-10-14", id="date-literal-eq-datetime"),
    pytest.param("releaseDate in (1994-10-14, 1972-03-24)", id="date-literals-in"),
    pytest.param("date(releaseDate) eq cast(1994-10-14,Edm.Date)", id="date-fn"),
    pytest.param("time(releaseDate) eq 00:00:00", id="time-fn"),
    pytest.param("month(releaseDate) eq 12 and day(releaseDate) ge 20", id="month-day"),
    pytest.param("hour(releaseDate) eq 0 and minute(releaseDate) eq 0", id="hour-minute"),
    pytest.param("second(releaseDate) eq 0 and year lt 1950", id="second"),
    pytest.param("year(releaseDate) ne year", id="fn-vs-member"),
    pytest.param("title eq 'Schindler''s List'", id="quote-escape"),
    pytest.param("tolower(title) eq 'jaws'", id="tolower"),
    pytest.param("toupper(title) eq 'ALIEN'", id="toupper"),
    pytest.param("trim(concat('  ', title)) eq 'Jaws'", id="trim"),
    pytest.param("replace(title, ' ', '') eq 'TheMatrix'", id="replace"),
    pytest.param("replace(title, '', 'x') eq title", id="replace-empty"),
    pytest.param("duration add 10 gt 190", id="add"),
    pytest.param("year sub duration gt 1900", id="member-arith"),
    pytest.param("duration mul 2 ge 360", id="mul"),
    pytest.param("-duration lt -200", id="neg"),
    pytest.param("-(duration) lt -200", id="neg-paren"),
    pytest.param("score add 1 gt 3", id="float-add"),
    pytest.param("score gt 2.5", id="float-gt"),
    pytest.param("score eq null", id="float-null"),
    pytest.param("score mul 2 eq 5", id="float-mul"),
    pytest.param("duration mul 9223372036854775807 gt 0", id="overflow-no-error"),
    pytest.param("(year gt 2000) eq true", id="condition-eq-true"),
    pytest.param("(rating eq 'R') eq false", id="condition-eq-false-null-row"),
    pytest.param("(rating gt 'PG') ne true", id="condition-ne"),
    pytest.param("(rating gt 'PG') eq null", id="condition-eq-null"),
    # A condition compared as a value, in parentheses whatever each database's precedence:
    # SQLite read ``0 = 1 > 1`` as ``0 = (1 > 1)``, PostgreSQL read
    # ``NOT x IS NULL`` as ``NOT (x IS NULL)``.
    pytest.param("(id eq 'id-042') gt false", id="condition-gt-false"),
    pytest.param("((null and null) gt true) or year eq 1994", id="constant-condition-gt-true"),
    pytest.param("((not (rating eq 'R')) in (null)) or year eq 1994", id="not-condition-in-null"),
    # A function's argument keeps its grouping where the function is an operator: SQLite
    # read the negation of indexof(...) = instr(...) - 1 as 0 - instr(...) - 1.
    pytest.param("0 in (-indexof(title, title)) and year eq 1994", id="negated-indexof"),
    pytest.param("-indexof(title, 'e') eq -1 and year ge 2000", id="negated-indexof-compared"),
    # A function of null is null, also where its result is a condition (the local store
    # once read contains(null, x) as false).
    pytest.param("contains(null, title) eq null and year eq 1994", id="function-of-null-is-null"),
    pytest.param(
        "year gt 2005 or rating eq 'G' and duration lt 100", id="and-binds-tighter-than-or"
    ),
    pytest.param("(year gt 2005 or rating eq 'G') and duration lt 100", id="parentheses"),
    pytest.param("not (year gt 1990 and rating eq 'R')", id="not-and"),
    pytest.param("not not bestPictureWinner", id="double-not"),
    pytest.param("true", id="literal-true"),
    pytest.param("false or year eq 1994", id="literal-false-or"),
    pytest.param(" or ".join(f"year eq {y}" for y in range(1950, 2000)), id="long-or-chain"),
    pytest.param("id eq 'id-042'", id="id"),
    pytest.param("id gt 'id-240'", id="id-gt"),
    pytest.param("title eq ''", id="empty-string"),
]


@pytest.mark.parametrize("text", FILTERS)
def test_filter_matches_reference(
    text: str, run_filter: Runner, typed_rows: list[dict[str, Any]]
) -> None:
    expr = parse_filter(text)
    expected = [row["id"] for row in typed_rows if matches(expr, row)]
    assert run_filter(expr) == expected


@pytest.mark.parametrize("text", FILTERS)
def test_filters_are_selective(text: str, typed_rows: list[dict[str, Any]]) -> None:
    """Guard the table: most cases must split the rows, or they prove little."""
    expr = parse_filter(text)
    matched = sum(matches(expr, row) for row in typed_rows)
    if text not in ALL_OR_NOTHING:
        assert 0 < matched < len(typed_rows), matched


# Cases whose answer is everything or nothing on purpose.
ALL_OR_NOTHING = {
    "rating gt null",
    "not(rating gt null)",
    "null eq null",
    "null ne null",
    "contains(title, '%')",
    "contains(title, '_')",
    "contains(title, '')",
    "startswith(title, 'the ')",
    "endswith(title, 'This title is far longer than any title')",
    "duration div 0 eq null",
    "duration mod 0 eq null",
    "substring(title, 100) eq ''",
    "replace(title, '', 'x') eq title",
    "true",
    "title eq ''",
    "duration mul 9223372036854775807 gt 0",
    "round(duration) eq 142",
    "time(releaseDate) eq 00:00:00",
    "indexof(title, 'zzz') eq -1",
    "hour(releaseDate) eq 0 and minute(releaseDate) eq 0",
    "(rating gt 'PG') eq null",
}


def test_builder_filter_runs(run_filter: Runner, typed_rows: list[dict[str, Any]]) -> None:
    term = (F.rating == "PG") & (F.year > 2000) | F.title.tolower().contains("lord")
    expected = [row["id"] for row in typed_rows if matches(term.expr, row)]
    assert run_filter(term.expr) == expected
    assert expected


ORDERS = [
    pytest.param("title", id="title"),
    pytest.param("title desc", id="title-desc"),
    pytest.param("rating", id="nulls-first"),
    pytest.param("rating desc", id="nulls-last-desc"),
    pytest.param("score desc, year", id="float-then-int"),
    pytest.param("year(releaseDate) desc, duration div 60", id="expressions"),
    pytest.param("releaseDate", id="datetime"),
    pytest.param("bestPictureWinner desc, title", id="bool"),
]


@pytest.mark.parametrize("text", ORDERS)
def test_order_by_matches_reference(
    text: str, run_order: OrderRunner, typed_rows: list[dict[str, Any]]
) -> None:
    from ._reference import evaluate

    terms = parse_orderby(text)
    expected = sorted(typed_rows, key=lambda row: row["id"])
    for term in reversed(terms):
        expected.sort(
            key=lambda row, t=term: sort_key(evaluate(t.expr, row)), reverse=term.descending
        )
    assert run_order(terms) == [row["id"] for row in expected]


TYPE_ERRORS = [
    pytest.param("title gt 5", "cannot compare a string with an int", id="string-gt-int"),
    pytest.param("year(title) eq 1", "must be a datetime", id="year-of-string"),
    pytest.param("title add 1 eq 2", "needs numbers", id="add-string"),
    pytest.param("title", "must be a condition", id="string-as-condition"),
    pytest.param("year", "must be a condition", id="int-as-condition"),
    pytest.param("year and true", "needs conditions", id="and-int"),
    pytest.param("not title", "needs conditions", id="not-string"),
    pytest.param("-title eq 1", "needs a number", id="neg-string"),
    pytest.param("contains(year, 'x')", "must be a string", id="contains-int"),
    pytest.param("substring(title, 'a') eq 'b'", "must be an int", id="substring-string-start"),
    pytest.param("substring(title, -1) eq 'b'", "between 0", id="substring-negative-literal"),
    pytest.param("bestPictureWinner eq 1", "cannot compare a bool", id="bool-eq-int"),
    pytest.param("rating in ('R', 5)", "'in' cannot compare", id="in-mixed"),
    pytest.param("releaseDate gt 'yesterday'", "not a date/time", id="bad-iso-string"),
    pytest.param("round(title) eq 1", "must be a float", id="round-string"),
]


@pytest.mark.parametrize(("text", "message"), TYPE_ERRORS)
def test_type_errors_are_query_errors_on_the_server(text: str, message: str) -> None:
    from tablesync.server._query import compile_filter

    from .conftest import movies_table

    with pytest.raises(QueryError, match=message):
        compile_filter(parse_filter(text), movies_table())


def test_unknown_column_names_the_column() -> None:
    from tablesync.server._query import compile_filter, compile_order_by

    from .conftest import movies_table

    with pytest.raises(UnknownColumnError, match="'nosuch'"):
        compile_filter(parse_filter("nosuch eq 1"), movies_table())
    with pytest.raises(UnknownColumnError, match="'nosuch'"):
        compile_order_by(parse_orderby("nosuch"), movies_table())


def test_members_match_columns_case_insensitively(typed_rows: list[dict[str, Any]]) -> None:
    from tablesync.server._query import compile_filter

    from .conftest import movies_table

    table = movies_table()
    exact = compile_filter(parse_filter("RELEASEDATE gt releasedate"), table)
    assert "releaseDate" in str(exact)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("extra eq 'x'", id="compare"),
        pytest.param("contains(extra, 'x')", id="function"),
        pytest.param("extra", id="condition"),
    ],
)
def test_json_columns_only_test_for_null(text: str) -> None:

    from tablesync.server._query import compile_filter

    from .conftest import movies_table

    with pytest.raises(UnsupportedQueryError, match="holds JSON"):
        compile_filter(parse_filter(text), movies_table())


@pytest.mark.parametrize(
    "name", [pytest.param("sqlite"), pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_json_column_null_test_runs(name: str, request: pytest.FixtureRequest) -> None:
    run, _ = request.getfixturevalue(f"{name}_backend")
    assert len(run(parse_filter("extra eq null"))) == 248
    assert run(parse_filter("extra ne null")) == []


HOSTILE = "x' OR '1'='1'; DROP TABLE movies; --"


def test_server_sql_carries_values_only_as_parameters() -> None:
    from sqlalchemy.dialects import postgresql, sqlite

    from tablesync.server._query import compile_filter

    from .conftest import movies_table

    term = (F.title == HOSTILE) | F.rating.contains(HOSTILE) | F.title.in_([HOSTILE])
    clause = compile_filter(term.expr, movies_table())
    for dialect in (sqlite.dialect(), postgresql.dialect()):
        compiled = clause.compile(dialect=dialect)
        assert "DROP" not in str(compiled)
        assert HOSTILE in compiled.params.values()


def test_local_sql_carries_values_only_as_parameters() -> None:
    from tablesync.odata._sqlite import compile_where

    sql, params = compile_where(((F.title == HOSTILE) | F.title.in_([HOSTILE, 5])).expr)
    assert "DROP" not in sql
    assert params.count(HOSTILE) == 2


# Pairs of filters (and orderings) of one shape that differ only where the SQL differs.
_SAME_SHAPE_OTHER_SQL = [
    ("duration add 1 gt 100", "duration sub 1 gt 100"),
    ("duration div 2 gt 100", "duration mod 2 gt 100"),
    ("year(releaseDate) eq 1994", "month(releaseDate) eq 1994"),
]


@pytest.mark.parametrize(("first", "second"), _SAME_SHAPE_OTHER_SQL)
def test_server_sql_is_cached_by_everything_it_depends_on(first: str, second: str) -> None:
    """SQLAlchemy reuses compiled SQL by cache key: equal keys must mean equal SQL.

    Its values aside, a filter's statement must have a cache key (else it is compiled at
    every request), and two filters whose SQL differs must have different ones.
    """
    import sqlalchemy as sa
    from sqlalchemy.dialects import postgresql

    from tablesync.server._query import compile_filter, compile_order_by

    from .conftest import movies_table

    table = movies_table()

    def key_and_sql(statement: sa.Select[Any]) -> tuple[Any, str]:
        key = statement._generate_cache_key()
        assert key is not None, "not cacheable"
        return key.key, str(statement.compile(dialect=postgresql.dialect()))

    def filtered(text: str) -> sa.Select[Any]:
        return sa.select(table.c.id).where(compile_filter(parse_filter(text), table))

    def ordered(text: str) -> sa.Select[Any]:
        return sa.select(table.c.id).order_by(*compile_order_by(parse_orderby(text), table))

    for build, texts in ((filtered, (first, second)), (ordered, ("rating", "rating desc"))):
        (key_1, sql_1), (key_2, sql_2) = (key_and_sql(build(text)) for text in texts)
        assert sql_1 != sql_2
        assert key_1 != key_2
    assert (
        key_and_sql(filtered("duration add 1 gt 100"))[0]
        == (key_and_sql(filtered("duration add 7 gt 200"))[0])
    )
