"""Compile the OData AST to SQLAlchemy Core expressions over a table.

Values only ever reach SQL as bound parameters. The compiled SQL gives OData's answers on
SQLite and PostgreSQL alike (and compiles for MySQL):

* **Null semantics.** ``x eq null`` is ``IS NULL``; ``x ne 'PG-13'`` includes rows where ``x``
  is null (``IS DISTINCT FROM``); ``gt``/``lt``... with null are false; ``not`` of a condition
  on a null value is true (``NOT coalesce(cond, false)``), as in .NET, not SQL's unknown.
* **0-based strings.** ``indexof`` and ``substring`` count from 0; SQL counts from 1.
* **Exact string tests.** ``contains``/``startswith``/``endswith`` use ``instr``/``strpos``,
  never ``LIKE``, so ``%`` and ``_`` are plain characters and case matters.
* **Arithmetic.** ``div`` of two integers truncates; division by zero gives null, not an
  error; ``round`` sends halves away from zero; ``year()``... read timestamps in UTC.
* **Types.** Operands are checked before any SQL runs (``title gt 5`` is a
  :class:`QueryError`); datetime literals compare with ``UtcDateTime`` columns, ISO strings
  are accepted where a datetime is expected.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement, False_, Grouping, True_

from .._exceptions import UnknownColumnError, UnsupportedQueryError
from ..odata import _typing as rules
from ..odata.ast import (
    Binary,
    BinaryOp,
    Call,
    EdmType,
    Expr,
    In,
    Literal,
    LiteralKind,
    Member,
    OrderBy,
    Unary,
    UnaryOp,
    chain_operands,
)
from . import _query_functions as fn
from ._query_calls import compile_call
from ._query_values import LITERAL_TYPES, Sql, bind, bind_as, boolean, column_type

__all__ = ["column_type", "compile_filter", "compile_order_by"]

_ARITH_SYMBOLS = {
    BinaryOp.ADD: "+",
    BinaryOp.SUB: "-",
    BinaryOp.MUL: "*",
    BinaryOp.DIV: "/",
    BinaryOp.MOD: "%",
}
_RELATIONAL = {
    BinaryOp.GT: "__gt__",
    BinaryOp.GE: "__ge__",
    BinaryOp.LT: "__lt__",
    BinaryOp.LE: "__le__",
}


def compile_filter(expr: Expr, table: sa.Table) -> ColumnElement[bool]:
    """Compile a filter into a condition on ``table`` (bound parameters only).

    Raises:
        UnknownColumnError: when a property is not a column of ``table``.
        QueryError: when the operands have the wrong types (``title gt 5``).
        UnsupportedQueryError: for what the server cannot evaluate (comparing JSON columns).
    """
    rules.check_complexity(expr)
    compiler = _Compiler(table)
    result = compiler.visit(expr)
    rules.condition_type(result.type)
    return compiler.condition(result)


def compile_order_by(terms: Sequence[OrderBy], table: sa.Table) -> list[ColumnElement[Any]]:
    """Compile ``$orderby`` terms into ORDER BY clauses on ``table``; nulls sort lowest.

    Raises:
        UnknownColumnError: when a property is not a column of ``table``.
        QueryError: when a term is badly typed.
    """
    compiler = _Compiler(table)
    clauses: list[ColumnElement[Any]] = []
    for term in terms:
        if isinstance(term.expr, Literal):
            continue  # a constant does not change the order
        rules.check_complexity(term.expr)
        clauses.append(compiler.ordering(term))
    return clauses


class _Compiler:
    """The visitor: one ``visit_*`` per AST node type."""

    def __init__(self, table: sa.Table) -> None:
        self.table = table

    def visit(self, expr: Expr) -> Sql:
        if isinstance(expr, Literal):
            return self.visit_literal(expr)
        if isinstance(expr, Member):
            return self.visit_member(expr)
        if isinstance(expr, Binary):
            return self.visit_binary(expr)
        if isinstance(expr, Unary):
            return self.visit_unary(expr)
        if isinstance(expr, Call):
            return self.visit_call(expr)
        return self.visit_in(expr)

    # -- leaves ------------------------------------------------------------------------------

    def visit_literal(self, node: Literal) -> Sql:
        edm = LITERAL_TYPES[node.kind]
        return Sql(bind(node, edm), edm, literal=node)

    def visit_member(self, node: Member) -> Sql:
        column = self.column(node.name)
        return Sql(column, column_type(column), column=column)

    def column(self, name: str) -> sa.Column[Any]:
        if name in self.table.c:
            return self.table.c[name]
        lowered = name.lower()
        matches = [column for column in self.table.c if column.name.lower() == lowered]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise UnknownColumnError(
                f"the property {name!r} is ambiguous: it matches several columns"
            )
        raise UnknownColumnError(f"the table {self.table.name!r} has no property {name!r}")

    # -- conditions --------------------------------------------------------------------------

    def condition(self, sql: Sql) -> ColumnElement[bool]:
        """``sql`` as a WHERE condition (NULL counts as false there)."""
        _reject_json(sql, "be used as a condition")
        if sql.condition:
            return sql.element
        if sql.literal is not None:
            return sa.true() if sql.literal.value is True else sa.false()
        # A boolean value (a column): IS TRUE is never NULL.
        return sql.element.is_(sa.true())

    def two_valued(self, sql: Sql) -> ColumnElement[bool]:
        """``sql`` as a condition that is never NULL: OData has no "unknown"."""
        element = self.condition(sql)
        if sql.never_null or not sql.condition:
            return element
        return sa.func.coalesce(element, sa.false(), type_=sa.Boolean())

    def visit_unary(self, node: Unary) -> Sql:
        operand = self.visit(node.operand)
        result = rules.unary_type(node.op, operand.type)
        if node.op is UnaryOp.NOT:
            return boolean(sa.not_(self.two_valued(operand)), never_null=True)
        _reject_json(operand, "be negated")
        if operand.is_null:
            return _null(result)
        zero = Sql(sa.literal(0, sa.BigInteger()), EdmType.INT)
        return Sql(_arith("-", zero, operand, integer=False), result)

    def visit_binary(self, node: Binary) -> Sql:
        if node.op.is_logical:
            return self.logical(node)
        left, right = self.visit(node.left), self.visit(node.right)
        result = rules.binary_type(node.op, left.type, right.type)
        if node.op.is_comparison:
            return self.compare(node.op, left, right)
        for side in (left, right):
            _reject_json(side, "take part in arithmetic")
        if left.is_null or right.is_null:
            return _null(result)
        integer = left.type is EdmType.INT and right.type is EdmType.INT
        symbol = _ARITH_SYMBOLS[node.op]
        return Sql(_arith(symbol, left, right, integer=integer), result)

    def logical(self, node: Binary) -> Sql:
        operands = [self.visit(item) for item in chain_operands(node, node.op)]
        for operand in operands:
            rules.binary_type(node.op, operand.type, EdmType.BOOL)
        conditions = [self.condition(operand) for operand in operands]
        joined = sa.and_(*conditions) if node.op is BinaryOp.AND else sa.or_(*conditions)
        return boolean(joined, never_null=all(o.never_null or not o.condition for o in operands))

    def compare(self, op: BinaryOp, left: Sql, right: Sql) -> Sql:
        if left.is_null or right.is_null:
            return self.compare_null(op, left, right)
        for side in (left, right):
            _reject_json(side, "be compared")
        _check_mixed(left, right)
        lhs, rhs = self.operand(left, right), self.operand(right, left)
        if op is BinaryOp.EQ:
            if left.literal is not None or right.literal is not None:
                return boolean(lhs == rhs)
            return boolean(lhs.is_not_distinct_from(rhs), never_null=True)
        if op is BinaryOp.NE:
            return boolean(lhs.is_distinct_from(rhs), never_null=True)
        return boolean(getattr(lhs, _RELATIONAL[op])(rhs))

    def compare_null(self, op: BinaryOp, left: Sql, right: Sql) -> Sql:
        other = right if left.is_null else left
        if op not in (BinaryOp.EQ, BinaryOp.NE):
            return boolean(sa.false(), never_null=True)  # ordering against null is false
        if other.is_null:
            return boolean(sa.true() if op is BinaryOp.EQ else sa.false(), never_null=True)
        value = self.value(other)
        is_null: ColumnElement[bool] = value.is_(None)
        if other.is_json:
            # A JSON column holds SQL NULL, or the JSON text null when None was stored.
            is_null = sa.or_(is_null, sa.cast(value, sa.Text()) == "null")
        test = is_null if op is BinaryOp.EQ else sa.not_(is_null)
        return boolean(test, never_null=True)

    def operand(self, sql: Sql, other: Sql) -> ColumnElement[Any]:
        """``sql`` ready to compare with ``other``: literals bound to ``other``'s type."""
        if sql.literal is not None and other.literal is None:
            return bind_as(sql.literal, other.type, other.column)
        if sql.literal is not None and sql.literal.kind is LiteralKind.STRING:
            # Two literals: the text one is read as the other's type ('2001-02-03' vs a date).
            return bind_as(sql.literal, other.type, None)
        return self.value(sql)

    def value(self, sql: Sql) -> ColumnElement[Any]:
        """``sql`` as a value: a condition becomes a true/false value, never NULL."""
        if not sql.condition:
            return sql.element
        element = self.two_valued(sql)
        if isinstance(element, True_ | False_):
            # SQLAlchemy refuses constants on either side of <, >...: bind them instead.
            return sa.literal(isinstance(element, True_), sa.Boolean())
        # In parentheses, always: SQLAlchemy leaves some out where the database's own
        # precedence differs from its table (``NOT x IS NULL`` is ``NOT (x IS NULL)`` on
        # PostgreSQL; ``0 = 1 > 1`` is ``0 = (1 > 1)`` on SQLite), which inverted filters
        # such as ``(not (a in (null))) in (null)`` or ``(a and b) gt true``.
        return Grouping(element)

    def visit_in(self, node: In) -> Sql:
        operand = self.visit(node.operand)
        values = [self.visit(value) for value in node.values]
        rules.in_type(operand.type, [value.type for value in values])
        if operand.is_null or operand.literal is not None or any(v.literal is None for v in values):
            # Not a column among constants: "in" means "eq" to any of them, null rules, type
            # conversions (a text constant read as a date) and all.
            tests = [self.compare(BinaryOp.EQ, operand, value).element for value in values]
            return boolean(sa.or_(*tests))
        _reject_json(operand, "be compared")
        present = [value for value in values if not value.is_null]
        lhs = self.value(operand)
        checks: list[ColumnElement[bool]] = []
        if present:
            checks.append(lhs.in_([self.operand(value, operand) for value in present]))
        if len(present) < len(values):
            checks.append(lhs.is_(None))
        return boolean(sa.or_(*checks) if len(checks) > 1 else checks[0])

    # -- functions ---------------------------------------------------------------------------

    def visit_call(self, node: Call) -> Sql:
        args = [self.visit(arg) for arg in node.args]
        for arg in args:
            _reject_json(arg, f"be passed to {node.name}()")
        result = rules.call_type(node.name, [arg.type for arg in args])
        if any(arg.is_null for arg in args):
            return _null(result)  # every canonical function of null is null
        return compile_call(node, args, result)

    # -- ordering ----------------------------------------------------------------------------

    def ordering(self, term: OrderBy) -> ColumnElement[Any]:
        sql = self.visit(term.expr)
        _reject_json(sql, "be used in $orderby")
        value = self.value(sql)
        if sql.column is not None and not sql.column.nullable:
            # Plain ASC/DESC keeps an index on the column usable (updatedAt, id).
            return sql.column.desc() if term.descending else sql.column.asc()
        return fn.ordering(value, descending=term.descending)


def _null(type_: EdmType) -> Sql:
    """A null of a known type: treated like the literal ``null`` from here on."""
    return Sql(sa.null(), type_, literal=Literal(None, LiteralKind.NULL))


def _reject_json(sql: Sql, action: str) -> None:
    if sql.is_json:
        assert sql.column is not None
        raise UnsupportedQueryError(
            f"the property {sql.column.name!r} holds JSON and cannot {action}; "
            "only 'eq null' and 'ne null' work on it"
        )


def _check_mixed(left: Sql, right: Sql) -> None:
    """Text and dates (or GUIDs) compare only when one side is a literal we can convert."""
    if left.literal is not None or right.literal is not None:
        return
    kinds = {left.type, right.type}
    if EdmType.STRING in kinds and kinds & {EdmType.DATETIME, EdmType.DATE, EdmType.GUID}:
        raise UnsupportedQueryError(
            f"cannot compare {rules.describe(left.type)} with {rules.describe(right.type)} "
            "unless one of them is a literal"
        )


def _arith(symbol: str, left: Sql, right: Sql, *, integer: bool) -> ColumnElement[Any]:
    return fn.arith(symbol, _numeric(left), _numeric(right), integer=integer)


def _numeric(sql: Sql) -> ColumnElement[Any]:
    if sql.literal is not None and sql.literal.kind is LiteralKind.NULL:
        return sa.null()
    return sql.element
