"""Random well-formed filters never make a database raise: each either runs and agrees with the
reference evaluator, or is refused up front with a QueryError (a 400, never a 500)."""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tablesync._exceptions import QueryError
from tablesync.odata import to_odata
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
    UnaryOp,
    balanced,
)

from ._reference import matches
from ._strategies import expressions
from .conftest import BACKENDS, Runner

COLUMNS = ["title", "duration", "rating", "releaseDate", "bestPictureWinner", "year", "score"]
LITERALS = st.one_of(
    st.just(Literal(None, LiteralKind.NULL)),
    st.booleans().map(Literal.of),
    st.integers(min_value=-300, max_value=3000).map(Literal.of),
    st.sampled_from(["0.5", "-2.5", "60.0", "1.25"]).map(lambda t: Literal.of(decimal.Decimal(t))),
    st.sampled_from([0.0, 2.5, -1.5]).map(Literal.of),
    st.sampled_from(["", "The", "the", "R", "PG-13", "%", "_", "a'b", " "]).map(Literal.of),
    st.sampled_from(
        [dt.datetime(1994, 10, 14, tzinfo=dt.UTC), dt.datetime(2000, 1, 1, tzinfo=dt.UTC)]
    ).map(Literal.of),
)
LEAVES = st.one_of(LITERALS, st.sampled_from(COLUMNS).map(Member))


UNTYPED = expressions(LEAVES, functions=set(FUNCTIONS) - {"time", "date"}, max_leaves=8)


def _typed() -> st.SearchStrategy[Expr]:
    """Well-typed filters over the movie columns: most of them run."""

    def lit(values: list[Any]) -> st.SearchStrategy[Expr]:
        return st.sampled_from(values).map(Literal.of)

    def fn(name: str, *args: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
        return st.tuples(*args).map(lambda parts: Call(name, tuple(parts)))

    def binary(ops: list[BinaryOp], a: Any, b: Any) -> st.SearchStrategy[Expr]:
        return st.builds(Binary, st.sampled_from(ops), a, b)

    num = st.deferred(lambda: st.one_of(num_leaf, num_leaf, num_leaf, num_node))
    text = st.deferred(lambda: st.one_of(text_leaf, text_leaf, text_leaf, text_node))
    when = st.one_of(st.just(Member("releaseDate")), lit(_DATES))
    num_leaf = st.one_of(
        st.sampled_from(["duration", "year", "score"]).map(Member),
        lit([0, 2, 7, -3, 60, 1994, None, decimal.Decimal("2.5"), 1.5]),
    )
    text_leaf = st.one_of(
        st.sampled_from(["title", "rating"]).map(Member), lit(["", "The", "the", "R", "%", None])
    )
    arithmetic = [BinaryOp.ADD, BinaryOp.SUB, BinaryOp.MUL, BinaryOp.DIV, BinaryOp.MOD]
    num_node = st.one_of(
        binary(arithmetic, num, num),
        st.builds(Unary, st.just(UnaryOp.NEG), num),
        fn("length", text),
        fn("indexof", text, text),
        st.sampled_from(["year", "month", "day", "hour"]).flatmap(lambda n: fn(n, when)),
        st.sampled_from(["round", "floor", "ceiling"]).flatmap(lambda n: fn(n, num)),
    )
    text_node = st.one_of(
        st.sampled_from(["tolower", "toupper", "trim"]).flatmap(lambda n: fn(n, text)),
        fn("substring", text, num),
        fn("substring", text, num, num),
        fn("concat", text, text),
        fn("replace", text, text, text),
    )
    compare = [op for op in BinaryOp if op.is_comparison]
    condition = st.deferred(
        lambda: st.one_of(
            binary(compare, num, num),
            binary(compare, text, text),
            binary(compare, when, when),
            st.sampled_from(["contains", "startswith", "endswith"]).flatmap(
                lambda n: fn(n, text, text)
            ),
            st.builds(In, num, st.lists(num, min_size=1, max_size=3).map(tuple)),
            st.builds(In, text, st.lists(text, min_size=1, max_size=3).map(tuple)),
            st.just(Member("bestPictureWinner")),
            st.builds(Unary, st.just(UnaryOp.NOT), condition),
            st.builds(
                lambda op, a, b: balanced(op, [a, b]),
                st.sampled_from([BinaryOp.AND, BinaryOp.OR]),
                condition,
                condition,
            ),
        )
    )
    return condition


_DATES = [dt.datetime(1994, 10, 14, tzinfo=dt.UTC), dt.datetime(2000, 1, 1, tzinfo=dt.UTC)]
TYPED = _typed()


def _run_checked(run: Runner, rows: list[dict[str, Any]], expr: Expr) -> bool:
    """Run ``expr``; False when refused with a QueryError. Checks the answer when exact."""
    try:
        ids = run(expr)
    except QueryError:
        return False
    if _reference_defined(expr, rows):
        assert ids == [row["id"] for row in rows if matches(expr, row)], to_odata(expr)
    return True


_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.mark.parametrize("name", BACKENDS)
def test_random_filters_run_or_are_refused(
    name: str, request: pytest.FixtureRequest, typed_rows: list[dict[str, Any]]
) -> None:
    run: Runner = request.getfixturevalue(f"{name}_backend")[0]

    @_SETTINGS
    @given(UNTYPED)
    def check(expr: Expr) -> None:
        _run_checked(run, typed_rows, expr)

    check()


@pytest.mark.parametrize("name", BACKENDS)
def test_random_well_typed_filters_agree_with_the_reference(
    name: str, request: pytest.FixtureRequest, typed_rows: list[dict[str, Any]]
) -> None:
    run: Runner = request.getfixturevalue(f"{name}_backend")[0]
    outcomes = {"ran": 0, "refused": 0}

    # The same examples on every run: the count below is a proportion of what was drawn
    # (depth limits and float positions refused), which some random draws fall short of.
    @settings(_SETTINGS, derandomize=True)
    @given(TYPED)
    def check(expr: Expr) -> None:
        outcomes["ran" if _run_checked(run, typed_rows, expr) else "refused"] += 1

    check()
    # Refused among typed filters: substring() with a float or negative literal position,
    # and trees nested past the database's limits.
    assert outcomes["ran"] > 3 * outcomes["refused"], outcomes


def _reference_defined(expr: Expr, rows: list[dict[str, Any]]) -> bool:
    """Skip the comparison where float rounding, not semantics, could decide a row."""
    try:
        for row in rows[:5]:
            matches(expr, row)
    except (TypeError, ValueError, AttributeError, ArithmeticError, OverflowError):
        return False  # no meaning in the reference (endswith(3), say): nothing to compare
    return not _has_fraction_equality(expr)


def _has_fraction_equality(expr: Expr) -> bool:
    stack: list[Expr] = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, Binary):
            if node.op in (BinaryOp.DIV, BinaryOp.MOD, BinaryOp.MUL):
                return True
            stack += [node.left, node.right]
        elif isinstance(node, Unary):
            stack.append(node.operand)
        elif isinstance(node, Call):
            stack += list(node.args)
        elif isinstance(node, In):
            stack += [node.operand, *node.values]
        elif isinstance(node, Literal) and node.kind in (LiteralKind.DECIMAL, LiteralKind.FLOAT):
            return True
    return False
