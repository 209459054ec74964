"""parse_filter / parse_orderby / parse_select: both dialects, precedence, literals, errors."""

from __future__ import annotations

import datetime as dt
import decimal
import re
import uuid
from typing import Any

import pytest

from tablesync._exceptions import ODataSyntaxError
from tablesync.odata import parse_filter
from tablesync.odata.ast import (
    Binary,
    BinaryOp,
    Call,
    Expr,
    In,
    Literal,
    LiteralKind,
    Member,
    Unary,
    UnaryOp,
    balanced,
)

UTC = dt.UTC


def m(name: str) -> Member:
    return Member(name)


def lit(value: object) -> Literal:
    return Literal.of(value)


def b(op: str, left: Expr, right: Expr) -> Binary:
    return Binary(BinaryOp(op), left, right)


def call(name: str, *args: Expr) -> Call:
    return Call(name, args)


def when(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0, ms: int = 0) -> Literal:
    return Literal(dt.datetime(y, mo, d, h, mi, s, ms * 1000, tzinfo=UTC), LiteralKind.DATETIME)


D2001 = when(2001, 2, 3)

# The instant 2001-02-03T00:00:00Z as v2 (OData v3) clients may write it: (id, literal).
D2001_V2 = [
    ("datetime", "datetime'2001-02-03T00:00:00.000Z'"),
    ("datetime-no-ms", "datetime'2001-02-03T00:00:00Z'"),
    ("datetime-no-zone", "datetime'2001-02-03T00:00:00'"),
    ("datetime-no-seconds", "datetime'2001-02-03T00:00'"),
    ("datetime-date-only", "datetime'2001-02-03'"),
    ("datetimeoffset-7-digits", "datetimeoffset'2001-02-03T00:00:00.0000000+00:00'"),
    ("datetimeoffset-%2B", "datetimeoffset'2001-02-03T00:00:00.0000000%2B00:00'"),
    ("datetimeoffset-%2b-lower", "datetimeoffset'2001-02-03T00:00:00.0000000%2b00:00'"),
    ("datetimeoffset-plus-decoded-as-space", "datetimeoffset'2001-02-03T00:00:00.0000000 00:00'"),
    ("datetimeoffset-positive", "datetimeoffset'2001-02-03T05:30:00+05:30'"),
    ("datetimeoffset-negative", "datetimeoffset'2001-02-02T19:00:00-05:00'"),
    ("prefix-case", "DateTimeOffset'2001-02-03T00:00:00Z'"),
]

# The same instant as v3 (OData v4) clients may write it.
D2001_V3 = [
    ("cast-datetimeoffset", "cast(2001-02-03T00:00:00.000Z,Edm.DateTimeOffset)"),
    ("cast-spaces", "cast( 2001-02-03T00:00:00.000Z , Edm.DateTimeOffset )"),
    ("cast-type-case", "cast(2001-02-03T00:00:00.000Z,edm.datetimeoffset)"),
    ("cast-offset", "cast(2001-02-03T01:00:00+01:00,Edm.DateTimeOffset)"),
    ("cast-offset-%2B", "cast(2001-02-03T01:00:00%2B01:00,Edm.DateTimeOffset)"),
    ("cast-string", "cast('2001-02-03T00:00:00Z',Edm.DateTimeOffset)"),
    ("cast-date-to-dto", "cast(2001-02-03,Edm.DateTimeOffset)"),
    ("bare-datetime", "2001-02-03T00:00:00Z"),
    ("bare-datetime-offset", "2001-02-03T00:00:00.000+00:00"),
]

# datetimeoffset fractions: (id, digits, milliseconds kept); past 3 digits they are truncated.
FRACTIONS = [
    ("fraction-1-digit", "1", 100),
    ("fraction-2-digits", "12", 120),
    ("fraction-3-digits", "123", 123),
    ("fraction-7-digits-truncated", "1239999", 123),
]


def d_eq(literal: str, value: Literal, ident: str) -> Any:
    """A ``d eq <literal>`` case that must parse to ``value``."""
    return pytest.param(f"d eq {literal}", b("eq", m("d"), value), id=ident)


VALID = [
    # comparisons and literals
    pytest.param("rating eq 'PG'", b("eq", m("rating"), lit("PG")), id="eq-string"),
    pytest.param("rating ne 'PG-13'", b("ne", m("rating"), lit("PG-13")), id="ne"),
    pytest.param("year gt 2000", b("gt", m("year"), lit(2000)), id="gt"),
    pytest.param("year ge 2000", b("ge", m("year"), lit(2000)), id="ge"),
    pytest.param("year lt 2000", b("lt", m("year"), lit(2000)), id="lt"),
    pytest.param("year le 2000", b("le", m("year"), lit(2000)), id="le"),
    pytest.param("rating eq null", b("eq", m("rating"), lit(None)), id="null"),
    pytest.param("done eq true", b("eq", m("done"), lit(True)), id="true"),
    pytest.param("done eq false", b("eq", m("done"), lit(False)), id="false"),
    pytest.param("done eq TRUE", b("eq", m("done"), lit(True)), id="true-upper"),
    pytest.param("rating EQ 'PG'", b("eq", m("rating"), lit("PG")), id="operator-case"),
    pytest.param("x eq 'it''s'", b("eq", m("x"), lit("it's")), id="doubled-quote"),
    pytest.param("x eq ''''", b("eq", m("x"), lit("'")), id="only-quote"),
    pytest.param("x eq ''", b("eq", m("x"), lit("")), id="empty-string"),
    pytest.param("x eq 'a b  c'", b("eq", m("x"), lit("a b  c")), id="spaces-kept"),
    pytest.param("x eq 'ünïcödé ✓'", b("eq", m("x"), lit("ünïcödé ✓")), id="unicode"),
    pytest.param("x eq 'eq and or'", b("eq", m("x"), lit("eq and or")), id="keywords-in-string"),
    pytest.param("x eq '%2B'", b("eq", m("x"), lit("%2B")), id="percent-in-string"),
    pytest.param("x eq -5", b("eq", m("x"), lit(-5)), id="negative-int"),
    pytest.param("x eq 5L", b("eq", m("x"), lit(5)), id="long-suffix"),
    pytest.param("x eq 1.5", b("eq", m("x"), lit(decimal.Decimal("1.5"))), id="decimal"),
    pytest.param(
        "x eq 60.0", b("eq", m("x"), lit(decimal.Decimal("60.0"))), id="decimal-zero-fraction"
    ),
    pytest.param("x eq 1.5m", b("eq", m("x"), lit(decimal.Decimal("1.5"))), id="decimal-suffix"),
    pytest.param("x eq 1.5M", b("eq", m("x"), lit(decimal.Decimal("1.5"))), id="decimal-suffix-M"),
    pytest.param("x eq 1.5d", b("eq", m("x"), lit(1.5)), id="double-suffix"),
    pytest.param("x eq 2f", b("eq", m("x"), lit(2.0)), id="float-suffix"),
    pytest.param("x eq 1e3", b("eq", m("x"), lit(1000.0)), id="exponent"),
    pytest.param("x eq 1.5E-2", b("eq", m("x"), lit(0.015)), id="exponent-negative"),
    pytest.param("x eq -2.5", b("eq", m("x"), lit(decimal.Decimal("-2.5"))), id="negative-decimal"),
    pytest.param("x eq 9223372036854775807", b("eq", m("x"), lit(2**63 - 1)), id="int64-max"),
    pytest.param("x eq -9223372036854775808", b("eq", m("x"), lit(-(2**63))), id="int64-min"),
    # precedence
    pytest.param(
        "a eq 1 or b eq 2 and c eq 3",
        b(
            "or",
            b("eq", m("a"), lit(1)),
            b("and", b("eq", m("b"), lit(2)), b("eq", m("c"), lit(3))),
        ),
        id="and-over-or",
    ),
    pytest.param(
        "(a eq 1 or b eq 2) and c eq 3",
        b(
            "and",
            b("or", b("eq", m("a"), lit(1)), b("eq", m("b"), lit(2))),
            b("eq", m("c"), lit(3)),
        ),
        id="parens",
    ),
    pytest.param(
        "a add 1 mul 2 eq 7",
        b("eq", b("add", m("a"), b("mul", lit(1), lit(2))), lit(7)),
        id="mul-over-add",
    ),
    pytest.param(
        "a sub 1 sub 2 eq 0",
        b("eq", b("sub", b("sub", m("a"), lit(1)), lit(2)), lit(0)),
        id="sub-left-assoc",
    ),
    pytest.param(
        "a div 2 mod 3 eq 1",
        b("eq", b("mod", b("div", m("a"), lit(2)), lit(3)), lit(1)),
        id="div-mod-left-assoc",
    ),
    pytest.param(
        "a sub (1 sub 2) eq 0",
        b("eq", b("sub", m("a"), b("sub", lit(1), lit(2))), lit(0)),
        id="right-parens-kept",
    ),
    pytest.param(
        "a eq b eq c", b("eq", b("eq", m("a"), m("b")), m("c")), id="comparison-left-assoc"
    ),
    pytest.param("a gt 1 eq true", b("eq", b("gt", m("a"), lit(1)), lit(True)), id="gt-then-eq"),
    pytest.param(
        "a add 1 gt b mul 2",
        b("gt", b("add", m("a"), lit(1)), b("mul", m("b"), lit(2))),
        id="arith-over-compare",
    ),
    pytest.param("not done", Unary(UnaryOp.NOT, m("done")), id="not"),
    pytest.param("not(done)", Unary(UnaryOp.NOT, m("done")), id="not-call-style"),
    pytest.param("NOT done", Unary(UnaryOp.NOT, m("done")), id="not-upper"),
    pytest.param("not (a eq 1)", Unary(UnaryOp.NOT, b("eq", m("a"), lit(1))), id="not-parens"),
    pytest.param(
        "not a eq true", b("eq", Unary(UnaryOp.NOT, m("a")), lit(True)), id="not-binds-tight"
    ),
    pytest.param("not not a", Unary(UnaryOp.NOT, Unary(UnaryOp.NOT, m("a"))), id="not-not"),
    pytest.param("-a lt -200", b("lt", Unary(UnaryOp.NEG, m("a")), lit(-200)), id="neg-member"),
    pytest.param("-(5) eq x", b("eq", Unary(UnaryOp.NEG, lit(5)), m("x")), id="neg-literal-paren"),
    pytest.param("- 5 eq x", b("eq", Unary(UnaryOp.NEG, lit(5)), m("x")), id="neg-space"),
    pytest.param(
        "-a mul 2 eq 4",
        b("eq", b("mul", Unary(UnaryOp.NEG, m("a")), lit(2)), lit(4)),
        id="neg-over-mul",
    ),
    pytest.param("x sub -5 eq 0", b("eq", b("sub", m("x"), lit(-5)), lit(0)), id="sub-negative"),
    pytest.param("((((a eq 1))))", b("eq", m("a"), lit(1)), id="redundant-parens"),
    pytest.param("  a   eq\t1\n", b("eq", m("a"), lit(1)), id="whitespace"),
    pytest.param("true", lit(True), id="bare-true"),
    pytest.param("done", m("done"), id="bare-member"),
    pytest.param("_x1 eq 1", b("eq", m("_x1"), lit(1)), id="underscore-name"),
    # and/or chains are balanced
    pytest.param(
        "a or b or c or d",
        balanced(BinaryOp.OR, [m("a"), m("b"), m("c"), m("d")]),
        id="or-chain-balanced",
    ),
    pytest.param(
        "a and (b and c)",
        balanced(BinaryOp.AND, [m("a"), m("b"), m("c")]),
        id="and-chain-flattened",
    ),
    # functions
    pytest.param(
        "substringof('needle', title)",
        call("contains", m("title"), lit("needle")),
        id="substringof-normalised",
    ),
    pytest.param("SubstringOf('x', t)", call("contains", m("t"), lit("x")), id="substringof-case"),
    pytest.param("contains(title, 'x')", call("contains", m("title"), lit("x")), id="contains"),
    pytest.param("startswith(t, 'x')", call("startswith", m("t"), lit("x")), id="startswith"),
    pytest.param("endswith(t, 'x')", call("endswith", m("t"), lit("x")), id="endswith"),
    pytest.param("tolower(t) eq 'x'", b("eq", call("tolower", m("t")), lit("x")), id="tolower"),
    pytest.param("toupper(t) eq 'X'", b("eq", call("toupper", m("t")), lit("X")), id="toupper"),
    pytest.param("trim(t) eq 'x'", b("eq", call("trim", m("t")), lit("x")), id="trim"),
    pytest.param("length(t) gt 3", b("gt", call("length", m("t")), lit(3)), id="length"),
    pytest.param(
        "indexof(t, 'x') eq 0", b("eq", call("indexof", m("t"), lit("x")), lit(0)), id="indexof"
    ),
    pytest.param(
        "substring(t, 1) eq 'x'",
        b("eq", call("substring", m("t"), lit(1)), lit("x")),
        id="substring-2",
    ),
    pytest.param(
        "substring(t, 1, 2) eq 'x'",
        b("eq", call("substring", m("t"), lit(1), lit(2)), lit("x")),
        id="substring-3",
    ),
    pytest.param(
        "concat(a, 'x') eq 'y'",
        b("eq", call("concat", m("a"), lit("x")), lit("y")),
        id="concat",
    ),
    pytest.param(
        "replace(a, 'x', 'y') eq 'z'",
        b("eq", call("replace", m("a"), lit("x"), lit("y")), lit("z")),
        id="replace",
    ),
    pytest.param(
        "contains(tolower(title), 'the')",
        call("contains", call("tolower", m("title")), lit("the")),
        id="nested-call",
    ),
    pytest.param(
        "TOLOWER(t) eq 'x'", b("eq", call("tolower", m("t")), lit("x")), id="function-case"
    ),
    pytest.param("length( t ) eq 1", b("eq", call("length", m("t")), lit(1)), id="call-spaces"),
    *(
        pytest.param(f"{part}(d) eq 1", b("eq", call(part, m("d")), lit(1)), id=f"date-part-{part}")
        for part in ("year", "month", "day", "hour", "minute", "second")
    ),
    pytest.param("date(d) eq 1", b("eq", call("date", m("d")), lit(1)), id="date-fn"),
    pytest.param("time(d) eq 1", b("eq", call("time", m("d")), lit(1)), id="time-fn"),
    pytest.param("round(x) eq 1", b("eq", call("round", m("x")), lit(1)), id="round"),
    pytest.param("floor(x) eq 1", b("eq", call("floor", m("x")), lit(1)), id="floor"),
    pytest.param("ceiling(x) eq 1", b("eq", call("ceiling", m("x")), lit(1)), id="ceiling"),
    # in
    pytest.param("rating in ('R', 'PG')", In(m("rating"), (lit("R"), lit("PG"))), id="in"),
    pytest.param("x in (1)", In(m("x"), (lit(1),)), id="in-one"),
    pytest.param("x IN (1, null)", In(m("x"), (lit(1), lit(None))), id="in-null-upper"),
    pytest.param("not x in (1)", Unary(UnaryOp.NOT, In(m("x"), (lit(1),))), id="not-in"),
    pytest.param(
        "x in (1) and y eq 2",
        b("and", In(m("x"), (lit(1),)), b("eq", m("y"), lit(2))),
        id="in-then-and",
    ),
    pytest.param(
        "year(d) in (year, 1994)",
        In(call("year", m("d")), (m("year"), lit(1994))),
        id="in-expressions",
    ),
    # dates, v2
    *(d_eq(literal, D2001, ident) for ident, literal in D2001_V2),
    *(
        d_eq(f"datetimeoffset'2001-02-03T00:00:00.{digits}Z'", when(2001, 2, 3, ms=ms), ident)
        for ident, digits, ms in FRACTIONS
    ),
    pytest.param(
        "id eq guid'0f8fad5b-d9cb-469f-a165-70867728950e'",
        b("eq", m("id"), lit(uuid.UUID("0f8fad5b-d9cb-469f-a165-70867728950e"))),
        id="guid-v2",
    ),
    # dates, v3
    *(d_eq(literal, D2001, ident) for ident, literal in D2001_V3),
    pytest.param(
        "d eq cast(2022-02-14,Edm.Date)",
        b("eq", m("d"), lit(dt.date(2022, 2, 14))),
        id="cast-date",
    ),
    pytest.param("d eq 2022-02-14", b("eq", m("d"), lit(dt.date(2022, 2, 14))), id="bare-date"),
    pytest.param(
        "t eq cast(02:14:00,Edm.TimeOfDay)",
        b("eq", m("t"), lit(dt.time(2, 14))),
        id="cast-time",
    ),
    pytest.param(
        "t eq 02:14:05.5", b("eq", m("t"), lit(dt.time(2, 14, 5, 500000))), id="bare-time"
    ),
    pytest.param(
        "id eq cast(0f8fad5b-d9cb-469f-a165-70867728950e,Edm.Guid)",
        b("eq", m("id"), lit(uuid.UUID("0f8fad5b-d9cb-469f-a165-70867728950e"))),
        id="cast-guid",
    ),
    pytest.param(
        "id eq 0f8fad5b-d9cb-469f-a165-70867728950e",
        b("eq", m("id"), lit(uuid.UUID("0f8fad5b-d9cb-469f-a165-70867728950e"))),
        id="bare-guid-digit-start",
    ),
    pytest.param(
        "id eq deadbeef-d9cb-469f-a165-70867728950e",
        b("eq", m("id"), lit(uuid.UUID("deadbeef-d9cb-469f-a165-70867728950e"))),
        id="bare-guid-letter-start",
    ),
    pytest.param("x eq cast(5,Edm.String)", b("eq", m("x"), lit("5")), id="cast-int-string"),
    pytest.param("x eq cast('5',Edm.Int32)", b("eq", m("x"), lit(5)), id="cast-string-int"),
    pytest.param("x eq cast(5,Edm.Double)", b("eq", m("x"), lit(5.0)), id="cast-double"),
    pytest.param(
        "x eq cast(5,Edm.Decimal)", b("eq", m("x"), lit(decimal.Decimal(5))), id="cast-decimal"
    ),
    pytest.param("x eq cast(true,Edm.Boolean)", b("eq", m("x"), lit(True)), id="cast-bool"),
    pytest.param("x eq cast(null,Edm.DateTimeOffset)", b("eq", m("x"), lit(None)), id="cast-null"),
    # whole pull queries as clients send them
    pytest.param(
        "(updatedAt ge datetimeoffset'1970-01-01T00:00:00.0000000%2B00:00')",
        b("ge", m("updatedAt"), when(1970, 1, 1)),
        id="nc-pull",
    ),
    pytest.param(
        "((String eq 'world') and "
        "(updatedAt ge datetimeoffset'2001-02-01T00:00:00.0000000%2B00:00'))",
        b("and", b("eq", m("String"), lit("world")), b("ge", m("updatedAt"), when(2001, 2, 1))),
        id="nc-pull-user-filter",
    ),
    pytest.param(
        "((tag eq 'T') and (updatedAt ge datetimeoffset'1969-12-31T00:00:00.000Z'))",
        b("and", b("eq", m("tag"), lit("T")), b("ge", m("updatedAt"), when(1969, 12, 31))),
        id="js-pull",
    ),
    pytest.param(
        "(updatedAt gt cast(2021-03-24T12:50:44.000Z,Edm.DateTimeOffset))",
        b("gt", m("updatedAt"), when(2021, 3, 24, 12, 50, 44)),
        id="ama-pull",
    ),
    pytest.param("(complete eq false)", b("eq", m("complete"), lit(False)), id="js-query"),
]


@pytest.mark.parametrize(("text", "expected"), VALID)
def test_parse_valid(text: str, expected: Expr) -> None:
    assert parse_filter(text) == expected


INVALID = [
    pytest.param("", 0, "empty", id="empty"),
    pytest.param("   ", 3, "empty", id="blank"),
    pytest.param("title eq", 8, "expected a value", id="missing-right"),
    pytest.param("eq 'x'", 0, "found the operator 'eq'", id="missing-left"),
    pytest.param("title eq 'abc", 9, "unterminated string", id="unterminated"),
    pytest.param("title eq 'it''s", 9, "unterminated string", id="unterminated-after-escape"),
    pytest.param("title foo 1", 6, "expected an operator", id="unknown-operator"),
    pytest.param("year gtt 2000", 5, "expected an operator", id="misspelt-operator"),
    pytest.param("(a eq 1", 7, "expected ')'", id="unclosed-paren"),
    pytest.param("a eq 1)", 6, "expected an operator", id="extra-paren"),
    pytest.param("()", 1, "expected a value", id="empty-parens"),
    pytest.param("a eq 1 and", 10, "expected a value", id="trailing-and"),
    pytest.param("a eq 1 or", 9, "expected a value", id="trailing-or"),
    pytest.param("and a eq 1", 0, "found the operator 'and'", id="leading-and"),
    pytest.param("a eq 1,", 6, "expected an operator", id="stray-comma"),
    pytest.param("a eq 1 eq", 9, "expected a value", id="chained-garbage"),
    pytest.param("foo(a) eq 1", 0, "unknown function 'foo'", id="unknown-function"),
    pytest.param("isof(a, 'x')", 0, "unknown function", id="isof"),
    pytest.param("year(a, b) eq 1", 0, "year() takes 1 argument, got 2", id="arity-too-many"),
    pytest.param("substring(t) eq 'x'", 0, "takes 2 or 3 arguments, got 1", id="arity-too-few"),
    pytest.param("substringof('x')", 0, "substringof() takes 2 arguments", id="substringof-arity"),
    pytest.param("length() eq 1", 0, "takes 1 argument, got 0", id="no-args"),
    pytest.param("year(a eq 1", 11, "expected ',' or ')'", id="unclosed-call"),
    pytest.param("contains(a 'x')", 11, "expected ',' or ')'", id="missing-comma"),
    pytest.param("contains(a,)", 11, "expected a value", id="trailing-comma-arg"),
    pytest.param("a in ()", 5, "at least one value", id="in-empty"),
    pytest.param("a in 1", 5, "expected '('", id="in-no-paren"),
    pytest.param("a in (1", 7, "expected ',' or ')'", id="in-unclosed"),
    pytest.param("a/b eq 1", 1, "property paths are not supported", id="path"),
    pytest.param("a eq $x", 5, "unexpected character '$'", id="dollar"),
    pytest.param("a eq 1 & b", 7, "unexpected character '&'", id="ampersand"),
    pytest.param("a == 1", 2, "unexpected character '='", id="double-equals"),
    pytest.param('a eq "x"', 5, "unexpected character '\"'", id="double-quotes"),
    pytest.param("\x00", 0, "unexpected character", id="nul"),
    pytest.param("a eq 12abc", 5, "malformed number", id="number-letters"),
    pytest.param("a eq 99999999999999999999", 5, "out of range", id="int-overflow"),
    pytest.param("a eq 1e999", 5, "out of range", id="float-overflow"),
    pytest.param("a eq Edm.String", 5, "qualified names", id="qualified-name"),
    pytest.param("cast(a, Edm.String) eq 'x'", 5, "only for literal values", id="cast-member"),
    pytest.param("cast(1) eq 1", 6, "expected ','", id="cast-one-arg"),
    pytest.param("cast(1, Edm.Foo) eq 1", 5, "unsupported cast type", id="cast-unknown-type"),
    pytest.param("cast('x', Edm.DateTimeOffset) eq d", 5, "cannot cast", id="cast-bad-date"),
    pytest.param("cast('x', Edm.Guid) eq d", 5, "cannot cast", id="cast-bad-guid"),
    pytest.param("cast(1.5, Edm.Int32) eq d", 5, "cannot cast", id="cast-decimal-to-int"),
    pytest.param("cast(1, 2) eq d", 8, "expected name", id="cast-type-not-name"),
    pytest.param("d eq datetime'2001-13-01'", 14, "invalid datetime literal", id="bad-month"),
    pytest.param("d eq datetime'not-a-date'", 14, "invalid datetime", id="bad-datetime"),
    pytest.param("d eq datetime'2001-02-30T00:00:00Z'", 14, "invalid datetime", id="feb-30"),
    pytest.param(
        "d eq datetimeoffset'2001-02-03T00:00:00.12345678Z'",
        20,
        "invalid datetimeoffset",
        id="fraction-8-digits",
    ),
    pytest.param("d eq guid'xyz'", 10, "invalid guid literal", id="bad-guid"),
    pytest.param("d eq duration'P1D'", 5, "unsupported typed literal", id="duration"),
    pytest.param("d eq X'0A'", 5, "unsupported typed literal", id="binary"),
    pytest.param("d eq datetime'2001-02-03", 13, "unterminated", id="typed-unterminated"),
    pytest.param("d eq 2001-13-03", 5, "invalid literal", id="bare-bad-date"),
    pytest.param("d eq 25:00:00", 5, "invalid literal", id="bare-bad-time"),
    pytest.param("x -5 eq 1", 2, "expected an operator", id="minus-as-operator"),
    pytest.param("not", 3, "expected a value", id="not-alone"),
    pytest.param("-", 1, "expected a value", id="minus-alone"),
    pytest.param("a eq not", 8, "expected a value", id="not-at-end"),
    pytest.param("a eq 'x' desc", 9, "expected an operator", id="direction-in-filter"),
    pytest.param("a eq 1 b eq 2", 7, "expected an operator", id="missing-and"),
]


@pytest.mark.parametrize(("text", "position", "message"), INVALID)
def test_parse_invalid(text: str, position: int, message: str) -> None:
    with pytest.raises(ODataSyntaxError, match=re.escape(message)) as caught:
        parse_filter(text)
    assert caught.value.position == position
    assert caught.value.text == text
    assert isinstance(caught.value, ValueError)


def test_position_is_in_the_message() -> None:
    with pytest.raises(ODataSyntaxError, match=r"at position 9$"):
        parse_filter("title eq 'abc")


def test_length_limit() -> None:
    text = "a eq 1 or " * 50 + "a eq 1"
    assert parse_filter(text, max_length=len(text))
    with pytest.raises(ODataSyntaxError, match="longer than 100 characters") as caught:
        parse_filter(text, max_length=100)
    assert caught.value.position == 100


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        pytest.param("(" * 40 + "a" + ")" * 40, 40, id="parens"),
        pytest.param("not " * 40 + "a", 40, id="nots"),
        pytest.param("-" * 40 + "a eq 1", 40, id="negations"),
        pytest.param("tolower(" * 40 + "a" + ")" * 40 + " eq 'x'", 40, id="calls"),
        pytest.param("a" + " add 1" * 40 + " eq 2", 40, id="left-deep-arithmetic"),
    ],
)
def test_depth_limit(text: str, depth: int) -> None:
    with pytest.raises(ODataSyntaxError, match="nested too deeply"):
        parse_filter(text, max_depth=32)
    parse_filter(text, max_depth=depth + 5)


def test_deep_nesting_fails_cleanly_far_past_the_limit() -> None:
    text = "(" * 3000 + "a" + ")" * 3000
    with pytest.raises(ODataSyntaxError, match="nested too deeply"):
        parse_filter(text, max_length=10_000)


def test_long_or_chains_stay_shallow() -> None:
    text = " or ".join(f"id eq 'item-{n}'" for n in range(300))
    expr = parse_filter(text, max_length=len(text))
    depth, stack = 0, [(expr, 1)]
    while stack:
        node, level = stack.pop()
        depth = max(depth, level)
        if isinstance(node, Binary):
            stack += [(node.left, level + 1), (node.right, level + 1)]
    assert depth <= 12
    assert expr == parse_filter(text, max_length=len(text))  # == and hash stay shallow too
    assert hash(expr) == hash(parse_filter(text, max_length=len(text)))


def test_parse_rejects_non_text() -> None:
    with pytest.raises(ODataSyntaxError, match="expected text"):
        parse_filter(42)  # type: ignore[arg-type]
