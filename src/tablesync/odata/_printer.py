"""Print an AST back to ``$filter`` text in the v2 or v3 dialect.

The output parses back to the same tree (``parse_filter(to_odata(e)) == e`` for trees whose
``and``/``or`` chains are balanced, as the parser and the builder make them). Parentheses are
added only where precedence needs them.

v2 (OData v3, Azure Mobile Apps): ``substringof('x', f)``, ``datetimeoffset'…Z'``,
``guid'…'``, and ``in`` written as an ``or`` of ``eq`` (v2 servers have no ``in``).
v3 (OData v4, Datasync): ``contains(f, 'x')``, ``cast(…,Edm.DateTimeOffset)``, ``in``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from ..protocol.dates import format_datetime
from ..protocol.headers import ApiVersion
from .ast import (
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
    chain_operands,
)

__all__ = ["format_literal", "to_odata"]

_UNARY_LEVEL = 6
_POSTFIX_LEVEL = 7
_PRIMARY_LEVEL = 8


def to_odata(expr: Expr, version: ApiVersion = ApiVersion.V3) -> str:
    """Print ``expr`` as ``$filter`` text in the dialect of ``version``."""
    return _Printer(ApiVersion(version)).print(expr, 0)


def format_literal(literal: Literal, version: ApiVersion = ApiVersion.V3) -> str:
    """Print one literal in the dialect of ``version``."""
    return _LITERAL_PRINTERS[literal.kind](literal.value, ApiVersion(version))


def _level(expr: Expr) -> int:
    """How tightly an already-printed node binds, on the parser's precedence scale."""
    if isinstance(expr, Binary):
        return expr.op.precedence
    if isinstance(expr, Unary):
        return _UNARY_LEVEL
    if isinstance(expr, In):
        return _POSTFIX_LEVEL
    return _PRIMARY_LEVEL


class _Printer:
    def __init__(self, version: ApiVersion) -> None:
        self.version = version

    def print(self, expr: Expr, min_level: int) -> str:
        if isinstance(expr, In) and self.version is ApiVersion.V2:
            expr = _in_as_or(expr)
        text = self.node(expr)
        return f"({text})" if _level(expr) < min_level else text

    def node(self, expr: Expr) -> str:
        if isinstance(expr, Literal):
            return format_literal(expr, self.version)
        if isinstance(expr, Member):
            return expr.name
        if isinstance(expr, Binary):
            return self.binary(expr)
        if isinstance(expr, Unary):
            return self.unary(expr)
        if isinstance(expr, Call):
            return self.call(expr)
        return self.membership(expr)

    def binary(self, expr: Binary) -> str:
        level = expr.op.precedence
        if expr.op.is_logical:
            parts = [self.print(item, level + 1) for item in chain_operands(expr, expr.op)]
            return f" {expr.op.value} ".join(parts)
        # Left-associative: the left operand may share the level, the right may not.
        left = self.print(expr.left, level)
        right = self.print(expr.right, level + 1)
        return f"{left} {expr.op.value} {right}"

    def unary(self, expr: Unary) -> str:
        operand = expr.operand
        if expr.op is UnaryOp.NOT:
            return "not " + self.print(operand, _UNARY_LEVEL)
        text = self.print(operand, _UNARY_LEVEL)
        # "-" before a digit would read back as the sign of a number, not as negation.
        return f"-({text})" if text[:1].isdigit() else "-" + text

    def call(self, expr: Call) -> str:
        args = list(expr.args)
        name = expr.name
        if name == "contains" and self.version is ApiVersion.V2:
            name, args = "substringof", [args[1], args[0]]
        return f"{name}({', '.join(self.print(arg, 0) for arg in args)})"

    def membership(self, expr: In) -> str:
        operand = self.print(expr.operand, _PRIMARY_LEVEL)
        values = ", ".join(self.print(value, 0) for value in expr.values)
        return f"{operand} in ({values})"


def _in_as_or(expr: In) -> Expr:
    return balanced(BinaryOp.OR, [Binary(BinaryOp.EQ, expr.operand, v) for v in expr.values])


def _print_string(value: str, version: ApiVersion) -> str:
    return "'" + value.replace("'", "''") + "'"


def _print_decimal(value: object, version: ApiVersion) -> str:
    text = format(value, "f")
    # Without a point the text would read back as an integer.
    return text if "." in text else text + ".0"


def _print_float(value: float, version: ApiVersion) -> str:
    text = repr(value)
    # Without an exponent the text would read back as a decimal.
    return text if "e" in text else text + "e0"


def _print_datetime(value: dt.datetime, version: ApiVersion) -> str:
    text = format_datetime(value)
    if version is ApiVersion.V2:
        return f"datetimeoffset'{text}'"
    return f"cast({text},Edm.DateTimeOffset)"


def _print_guid(value: object, version: ApiVersion) -> str:
    if version is ApiVersion.V2:
        return f"guid'{value}'"
    return f"cast({value},Edm.Guid)"


def _print_time(value: dt.time, version: ApiVersion) -> str:
    return f"cast({value.isoformat()},Edm.TimeOfDay)"


def _print_date(value: dt.date, version: ApiVersion) -> str:
    return f"cast({value.isoformat()},Edm.Date)"


_LITERAL_PRINTERS: dict[LiteralKind, Callable[[object, ApiVersion], str]] = {
    LiteralKind.NULL: lambda value, version: "null",
    LiteralKind.BOOL: lambda value, version: "true" if value else "false",
    LiteralKind.INT: lambda value, version: str(value),
    LiteralKind.DECIMAL: _print_decimal,
    LiteralKind.FLOAT: _print_float,  # type: ignore[dict-item]
    LiteralKind.STRING: _print_string,  # type: ignore[dict-item]
    LiteralKind.DATETIME: _print_datetime,  # type: ignore[dict-item]
    LiteralKind.DATE: _print_date,  # type: ignore[dict-item]
    LiteralKind.GUID: _print_guid,
    LiteralKind.TIME: _print_time,  # type: ignore[dict-item]
}
