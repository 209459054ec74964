"""Hypothesis strategies for random OData expression trees, shared by the fuzz and printer tests."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from hypothesis import strategies as st

from tablesync.odata.ast import (
    FUNCTIONS,
    Binary,
    BinaryOp,
    Call,
    Expr,
    In,
    Unary,
    UnaryOp,
    balanced,
)

Extend = Callable[[st.SearchStrategy[Expr]], st.SearchStrategy[Expr]]


def expressions(
    leaves: st.SearchStrategy[Expr], *, functions: Iterable[str], max_leaves: int
) -> st.SearchStrategy[Expr]:
    """Trees over ``leaves`` using every operator, ``in`` and the named functions.

    ``and``/``or`` chains are built balanced, as the parser and the builder make them, so a tree
    can be compared with the parse of its printed text.
    """
    return st.recursive(leaves, _extender(sorted(functions)), max_leaves=max_leaves)


def _extender(function_names: list[str]) -> Extend:
    plain_ops = [op for op in BinaryOp if not op.is_logical]

    def extend(children: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
        return st.one_of(
            st.builds(Unary, st.sampled_from(UnaryOp), children),
            st.builds(Binary, st.sampled_from(plain_ops), children, children),
            st.builds(
                lambda op, a, b: balanced(op, [a, b]),
                st.sampled_from([BinaryOp.AND, BinaryOp.OR]),
                children,
                children,
            ),
            st.sampled_from(function_names).flatmap(lambda name: _call(name, children)),
            st.builds(In, children, st.lists(children, min_size=1, max_size=3).map(tuple)),
        )

    return extend


def _call(name: str, children: st.SearchStrategy[Expr]) -> st.SearchStrategy[Expr]:
    arity = FUNCTIONS[name]
    return st.lists(children, min_size=arity.min_args, max_size=arity.max_args).map(
        lambda args: Call(name, tuple(args))
    )
