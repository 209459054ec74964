"""Compile the AST to a parameterized SQLite WHERE clause over the client's JSON item rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .ast import Expr, OrderBy


def compile_where(expr: Expr) -> tuple[str, list[Any]]:
    """Compile a filter to SQL text with ``?`` placeholders and its parameter values."""
    raise NotImplementedError


def compile_order_by(terms: Sequence[OrderBy]) -> str:
    """Compile ``$orderby`` terms to the text of an SQLite ``ORDER BY`` list."""
    raise NotImplementedError
