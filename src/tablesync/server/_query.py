"""Compile the OData AST to SQLAlchemy Core expressions over a table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from ..odata.ast import Expr, OrderBy


def compile_filter(expr: Expr, table: sa.Table) -> ColumnElement[bool]:
    """Compile a filter into a condition on ``table`` (bound parameters only)."""
    raise NotImplementedError


def compile_order_by(terms: Sequence[OrderBy], table: sa.Table) -> list[ColumnElement[Any]]:
    """Compile ``$orderby`` terms into ORDER BY clauses on ``table``."""
    raise NotImplementedError
