"""Hypothesis strategies for random OData expression trees, shared by the fuzz and printer tests."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from hypothesis import strategies as st

from tablesync.odata import ast

Extend = Callable[[st.SearchStrategy[ast.Expr]], st.SearchStrategy[ast.Expr]]


def expressions(
    leaves: st.SearchStrategy[ast.Expr], *, functions: Iterable[str], max_leaves: int
) -> st.SearchStrategy[ast.Expr]:
    """Trees over ``leaves`` using every operator, ``in`` and the named functions.

    ``and``/``or`` chains are built balanced, as the parser and the builder make them, so a tree
    can be compared with the parse of its printed text.
    """
    return st.recursive(leaves, _extender(sorted(functions)), max_leaves=max_leaves)


def _extender(function_names: list[str]) -> Extend:
    plain_ops = [op for op in ast.BinaryOp if not op.is_logical]

    def extend(children: st.SearchStrategy[ast.Expr]) -> st.SearchStrategy[ast.Expr]:
        return st.one_of(
            st.builds(ast.Unary, st.sampled_from(ast.UnaryOp), children),
            st.builds(ast.Binary, st.sampled_from(plain_ops), children, children),
            st.builds(
                lambda op, a, b: ast.balanced(op, [a, b]),
                st.sampled_from([ast.BinaryOp.AND, ast.BinaryOp.OR]),
                children,
                children,
            ),
            st.sampled_from(function_names).flatmap(lambda name: _call(name, children)),
            st.builds(ast.In, children, st.lists(children, min_size=1, max_size=3).map(tuple)),
        )

    return extend


def _call(name: str, children: st.SearchStrategy[ast.Expr]) -> st.SearchStrategy[ast.Expr]:
    arity = ast.FUNCTIONS[name]
    return st.lists(children, min_size=arity.min_args, max_size=arity.max_args).map(
        lambda args: ast.Call(name, tuple(args))
    )
