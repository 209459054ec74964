"""to_odata: the two dialects, and parse(print(x)) == x for any tree (hypothesis)."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tablesync.odata import F, parse_filter, to_odata
from tablesync.odata._lexer import OPERATOR_WORDS
from tablesync.odata.ast import (
    FUNCTIONS,
    Binary,
    BinaryOp,
    Call,
    Expr,
    In,
    Literal,
    LiteralKind,
    Member,
    Unary,
    balanced,
)
from tablesync.protocol import ApiVersion

from ._strategies import expressions

V2, V3 = ApiVersion.V2, ApiVersion.V3

DIALECTS = [
    pytest.param(
        "contains(title, 'x')", "substringof('x', title)", "contains(title, 'x')", id="contains"
    ),
    pytest.param(
        "d ge cast(2001-02-03T04:05:06.789Z,Edm.DateTimeOffset)",
        "d ge datetimeoffset'2001-02-03T04:05:06.789Z'",
        "d ge cast(2001-02-03T04:05:06.789Z,Edm.DateTimeOffset)",
        id="datetime",
    ),
    pytest.param(
        "d ge datetimeoffset'2001-02-03T00:00:00.0000000%2B00:00'",
        "d ge datetimeoffset'2001-02-03T00:00:00.000Z'",
        "d ge cast(2001-02-03T00:00:00.000Z,Edm.DateTimeOffset)",
        id="datetime-from-v2",
    ),
    pytest.param(
        "id eq guid'0f8fad5b-d9cb-469f-a165-70867728950e'",
        "id eq guid'0f8fad5b-d9cb-469f-a165-70867728950e'",
        "id eq cast(0f8fad5b-d9cb-469f-a165-70867728950e,Edm.Guid)",
        id="guid",
    ),
    pytest.param(
        "rating in ('R', 'PG')",
        "rating eq 'R' or rating eq 'PG'",
        "rating in ('R', 'PG')",
        id="in",
    ),
    pytest.param(
        "d eq 2022-02-14",
        "d eq cast(2022-02-14,Edm.Date)",
        "d eq cast(2022-02-14,Edm.Date)",
        id="date",
    ),
    pytest.param(
        "t lt 12:30:00",
        "t lt cast(12:30:00,Edm.TimeOfDay)",
        "t lt cast(12:30:00,Edm.TimeOfDay)",
        id="time",
    ),
    pytest.param("x eq 1.50", "x eq 1.50", "x eq 1.50", id="decimal-keeps-digits"),
    pytest.param("x eq 1e3", "x eq 1000.0e0", "x eq 1000.0e0", id="float"),
    pytest.param("x eq 'it''s'", "x eq 'it''s'", "x eq 'it''s'", id="quote"),
    pytest.param(
        "(a eq 1 or b eq 2) and c",
        "(a eq 1 or b eq 2) and c",
        "(a eq 1 or b eq 2) and c",
        id="parens",
    ),
    pytest.param(
        "a sub (b sub c) eq 0",
        "a sub (b sub c) eq 0",
        "a sub (b sub c) eq 0",
        id="right-assoc-parens",
    ),
    pytest.param("not (a eq 1)", "not (a eq 1)", "not (a eq 1)", id="not-binary"),
    pytest.param("-(5) eq x", "-(5) eq x", "-(5) eq x", id="negated-literal"),
    pytest.param("x eq -5", "x eq -5", "x eq -5", id="negative-literal"),
]


@pytest.mark.parametrize(("text", "v2", "v3"), DIALECTS)
def test_dialects(text: str, v2: str, v3: str) -> None:
    expr = parse_filter(text)
    assert to_odata(expr, V2) == v2
    assert to_odata(expr, V3) == v3


def test_default_dialect_is_v3() -> None:
    assert to_odata(F.title.contains("x").expr) == "contains(title, 'x')"


# -- round trip ---------------------------------------------------------------------------------

NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True).filter(
    lambda name: name.lower() not in OPERATOR_WORDS | {"null", "true", "false"}
)
DATETIMES = st.datetimes(
    min_value=dt.datetime(1000, 1, 1),
    max_value=dt.datetime(9999, 12, 31),
    timezones=st.just(dt.UTC),
)
LITERALS = st.one_of(
    st.just(Literal(None, LiteralKind.NULL)),
    st.booleans().map(Literal.of),
    st.integers(min_value=-(2**63), max_value=2**63 - 1).map(Literal.of),
    st.decimals(allow_nan=False, allow_infinity=False).map(Literal.of),
    st.floats(allow_nan=False, allow_infinity=False).map(Literal.of),
    st.text(max_size=12).map(Literal.of),
    DATETIMES.map(Literal.of),
    st.dates(min_value=dt.date(1000, 1, 1)).map(Literal.of),
    st.uuids().map(Literal.of),
    st.times().map(Literal.of),
)
LEAVES = st.one_of(LITERALS, NAMES.map(Member))


EXPRESSIONS = expressions(LEAVES, functions=FUNCTIONS, max_leaves=25)


def _without_in(expr: Expr) -> Expr:
    """What a v2 print means: ``x in (a, b)`` becomes ``x eq a or x eq b``."""
    if isinstance(expr, In):
        operand = _without_in(expr.operand)
        terms = [Binary(BinaryOp.EQ, operand, _without_in(v)) for v in expr.values]
        return balanced(BinaryOp.OR, terms)
    if isinstance(expr, Unary):
        return Unary(expr.op, _without_in(expr.operand))
    if isinstance(expr, Binary):
        left, right = _without_in(expr.left), _without_in(expr.right)
        if expr.op.is_logical:
            return balanced(expr.op, [left, right])
        return Binary(expr.op, left, right)
    if isinstance(expr, Call):
        return Call(expr.name, tuple(_without_in(arg) for arg in expr.args))
    return expr


def _parse(text: str) -> Expr:
    return parse_filter(text, max_length=1_000_000, max_depth=1000)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(EXPRESSIONS)
def test_round_trip_v3(expr: Expr) -> None:
    assert _parse(to_odata(expr, V3)) == expr


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(EXPRESSIONS)
def test_round_trip_v2(expr: Expr) -> None:
    assert _parse(to_odata(expr, V2)) == _without_in(expr)


@settings(max_examples=80, deadline=None)
@given(EXPRESSIONS)
def test_printing_is_stable(expr: Expr) -> None:
    """Printing what was parsed from a print gives the same text again."""
    text = to_odata(expr, V3)
    assert to_odata(_parse(text), V3) == text


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_arbitrary_text_parses_or_raises_syntax_error(text: str) -> None:
    from tablesync._exceptions import ODataSyntaxError

    try:
        expr = parse_filter(text)
    except ODataSyntaxError as exc:
        assert 0 <= exc.position <= len(text)
    else:
        assert _parse(to_odata(expr, V3)) == expr


def test_literal_values_survive_the_round_trip() -> None:
    values = [
        decimal.Decimal("0.000001"),
        decimal.Decimal("1E+30"),
        1e-300,
        -0.0,
        "''",
        "\n\t",
        uuid.UUID(int=0),
        dt.time(23, 59, 59, 999999),
    ]
    for value in values:
        expr = Binary(BinaryOp.EQ, Member("x"), Literal.of(value))
        assert _parse(to_odata(expr, V3)) == expr
