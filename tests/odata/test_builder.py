"""The F builder: Python operators and methods build the same trees the parser does."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from typing import Any

import pytest

from tablesync._exceptions import QueryError
from tablesync.odata import F, Term, parse_filter, to_odata
from tablesync.protocol import ApiVersion

CASES = [
    pytest.param(F.rating == "PG", "rating eq 'PG'", id="eq"),
    pytest.param(F("year") > 2000, "year gt 2000", id="call-form"),
    pytest.param(F.year >= 2000, "year ge 2000", id="ge"),
    pytest.param(F.year < 2000, "year lt 2000", id="lt"),
    pytest.param(F.year <= 2000, "year le 2000", id="le"),
    pytest.param(F.rating != "PG-13", "rating ne 'PG-13'", id="ne"),
    pytest.param(F.rating == None, "rating eq null", id="eq-none"),  # noqa: E711
    pytest.param(F.rating != None, "rating ne null", id="ne-none"),  # noqa: E711
    pytest.param(2000 < F.year, "year gt 2000", id="reflected-comparison"),  # noqa: SIM300
    pytest.param((F.a == 1) & (F.b == 2), "a eq 1 and b eq 2", id="and"),
    pytest.param((F.a == 1) | (F.b == 2), "a eq 1 or b eq 2", id="or"),
    pytest.param(~(F.a == 1), "not (a eq 1)", id="not"),
    pytest.param(~F.done, "not done", id="not-member"),
    pytest.param(
        (F.a == 1) | (F.b == 2) | (F.c == 3) | (F.d == 4),
        "a eq 1 or b eq 2 or c eq 3 or d eq 4",
        id="or-chain-balanced",
    ),
    pytest.param(
        ((F.a == 1) | (F.b == 2)) & (F.c == 3), "(a eq 1 or b eq 2) and c eq 3", id="mixed"
    ),
    pytest.param(F.duration / 60 >= 2, "duration div 60 ge 2", id="div"),
    pytest.param(F.duration % 7 == 3, "duration mod 7 eq 3", id="mod"),
    pytest.param(F.duration + 10 > 190, "duration add 10 gt 190", id="add"),
    pytest.param(F.year - F.duration > 1900, "year sub duration gt 1900", id="sub-members"),
    pytest.param(F.duration * 2 >= 360, "duration mul 2 ge 360", id="mul"),
    pytest.param(1 + F.x == 2, "1 add x eq 2", id="radd"),
    pytest.param(10 - F.x == 2, "10 sub x eq 2", id="rsub"),
    pytest.param(2 * F.x == 2, "2 mul x eq 2", id="rmul"),
    pytest.param(60 / F.x == 2, "60 div x eq 2", id="rdiv"),
    pytest.param(7 % F.x == 1, "7 mod x eq 1", id="rmod"),
    pytest.param(-F.duration < -200, "-duration lt -200", id="neg"),
    pytest.param(F.title.contains("the"), "contains(title, 'the')", id="contains"),
    pytest.param(F.title.startswith("The"), "startswith(title, 'The')", id="startswith"),
    pytest.param(F.title.endswith("Man"), "endswith(title, 'Man')", id="endswith"),
    pytest.param(F.title.tolower() == "jaws", "tolower(title) eq 'jaws'", id="tolower"),
    pytest.param(F.title.toupper() == "JAWS", "toupper(title) eq 'JAWS'", id="toupper"),
    pytest.param(F.title.trim() == "x", "trim(title) eq 'x'", id="trim"),
    pytest.param(F.title.length() > 20, "length(title) gt 20", id="length"),
    pytest.param(F.title.indexof("The") == 0, "indexof(title, 'The') eq 0", id="indexof"),
    pytest.param(
        F.title.substring(1, 3) == "he ", "substring(title, 1, 3) eq 'he '", id="substring-3"
    ),
    pytest.param(F.title.substring(4) == "x", "substring(title, 4) eq 'x'", id="substring-2"),
    pytest.param(F.title.concat("x") == "Jawsx", "concat(title, 'x') eq 'Jawsx'", id="concat"),
    pytest.param(F.title.replace(" ", "") == "x", "replace(title, ' ', '') eq 'x'", id="replace"),
    pytest.param(F.releaseDate.year() == 1994, "year(releaseDate) eq 1994", id="year"),
    pytest.param(F.d.month() == 1, "month(d) eq 1", id="month"),
    pytest.param(F.d.day() == 1, "day(d) eq 1", id="day"),
    pytest.param(F.d.hour() == 1, "hour(d) eq 1", id="hour"),
    pytest.param(F.d.minute() == 1, "minute(d) eq 1", id="minute"),
    pytest.param(F.d.second() == 1, "second(d) eq 1", id="second"),
    pytest.param(F.d.date() == dt.date(2001, 2, 3), "date(d) eq 2001-02-03", id="date"),
    pytest.param(F.d.time() == dt.time(12, 30), "time(d) eq 12:30:00", id="time"),
    pytest.param((F.duration / 60.0).round() == 2, "round(duration div 60.0d) eq 2", id="round"),
    pytest.param(F.x.floor() == 2, "floor(x) eq 2", id="floor"),
    pytest.param(F.x.ceiling() == 2, "ceiling(x) eq 2", id="ceiling"),
    pytest.param(F.rating.in_(["R", "PG"]), "rating in ('R', 'PG')", id="in"),
    pytest.param(F.rating.in_(("R",)), "rating in ('R')", id="in-tuple"),
    pytest.param(
        F.updatedAt >= dt.datetime(2001, 2, 3, tzinfo=dt.UTC),
        "updatedAt ge 2001-02-03T00:00:00Z",
        id="datetime",
    ),
    pytest.param(F.x == decimal.Decimal("1.5"), "x eq 1.5", id="decimal"),
    pytest.param(F.x == 1.5, "x eq 1.5d", id="float"),
    pytest.param(F.x == True, "x eq true", id="bool"),  # noqa: E712
    pytest.param(
        F.id == uuid.UUID("0f8fad5b-d9cb-469f-a165-70867728950e"),
        "id eq 0f8fad5b-d9cb-469f-a165-70867728950e",
        id="guid",
    ),
    pytest.param(F.a == F.b, "a eq b", id="member-member"),
    pytest.param(F._hidden == 1, "_hidden eq 1", id="underscore-name"),
]


@pytest.mark.parametrize(("term", "text"), CASES)
def test_builder_matches_the_parser(term: Term, text: str) -> None:
    assert term.expr == parse_filter(text)


def test_terms_refuse_python_boolean_logic() -> None:
    with pytest.raises(TypeError, match=r"use & \| ~"):
        bool(F.a == 1)
    with pytest.raises(TypeError):
        _ = (F.a == 1) and (F.b == 2)


def test_terms_are_not_hashable() -> None:
    with pytest.raises(TypeError):
        hash(F.a)


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda: F.a == object(), id="unsupported-value"),
        pytest.param(lambda: F.a == dt.datetime(2001, 2, 3), id="naive-datetime"),
        pytest.param(lambda: F.a == float("nan"), id="nan"),
        pytest.param(lambda: F.a.in_("abc"), id="in-string"),
        pytest.param(lambda: F.a.in_([]), id="in-empty"),
        pytest.param(lambda: F("not a name"), id="bad-name"),
        pytest.param(lambda: F('a"; drop table x; --'), id="injection-name"),
    ],
)
def test_bad_values_are_query_errors(build: Any) -> None:
    with pytest.raises(QueryError):
        build()


def test_f_does_not_swallow_dunder_lookups() -> None:
    with pytest.raises(AttributeError):
        F.__wrapped__  # noqa: B018
    assert repr(F) == "F"


def test_datetimes_are_truncated_to_milliseconds_in_utc() -> None:
    local = dt.timezone(dt.timedelta(hours=2))
    term = F.d == dt.datetime(2001, 2, 3, 2, 0, 0, 123456, tzinfo=local)
    assert to_odata(term.expr, ApiVersion.V3) == (
        "d eq cast(2001-02-03T00:00:00.123Z,Edm.DateTimeOffset)"
    )
