"""A small pure-Python evaluator of the OData AST: the oracle the compilers are checked against.

Semantics (docs/odata.md): ``eq``/``ne`` compare null as a value; ``gt``/``ge``/``lt``/``le``
with null are false; a condition that is null counts as false, so ``not`` of it is true;
arithmetic and functions of null are null; ``div`` of two integers truncates toward zero;
division and remainder by zero are null; remainders take the sign of the dividend; ``round``
sends halves away from zero; string positions are 0-based; string tests are case-sensitive.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import uuid
from collections.abc import Callable
from typing import Any

from tablesync.odata.ast import (
    Binary,
    BinaryOp,
    Call,
    Expr,
    In,
    Literal,
    Member,
    Unary,
    UnaryOp,
)
from tablesync.protocol.dates import format_datetime, parse_datetime

Item = dict[str, Any]


def matches(expr: Expr, item: Item) -> bool:
    """Whether ``item`` passes the filter ``expr``."""
    return evaluate(expr, item) is True


def evaluate(expr: Expr, item: Item) -> Any:
    """The value of ``expr`` for ``item``."""
    if isinstance(expr, Literal):
        return expr.value
    if isinstance(expr, Member):
        return item[expr.name]
    if isinstance(expr, Unary):
        value = evaluate(expr.operand, item)
        if expr.op is UnaryOp.NOT:
            return value is not True
        return None if value is None else -value
    if isinstance(expr, Binary):
        return _binary(expr, item)
    if isinstance(expr, Call):
        return _call(expr, item)
    assert isinstance(expr, In)
    value = evaluate(expr.operand, item)
    return any(equal(value, evaluate(candidate, item)) for candidate in expr.values)


def _binary(expr: Binary, item: Item) -> Any:
    if expr.op is BinaryOp.AND:
        return evaluate(expr.left, item) is True and evaluate(expr.right, item) is True
    if expr.op is BinaryOp.OR:
        return evaluate(expr.left, item) is True or evaluate(expr.right, item) is True
    left, right = evaluate(expr.left, item), evaluate(expr.right, item)
    if expr.op is BinaryOp.EQ:
        return equal(left, right)
    if expr.op is BinaryOp.NE:
        return not equal(left, right)
    if expr.op in _ORDER:
        if left is None or right is None:
            return False
        left, right = _align(left, right)
        return _ORDER[expr.op](left, right)
    if left is None or right is None:
        return None
    return _ARITHMETIC[expr.op](left, right)


def equal(left: Any, right: Any) -> bool:
    """OData ``eq``: null equals only null."""
    if left is None or right is None:
        return left is None and right is None
    left, right = _align(left, right)
    return bool(left == right)


def _align(left: Any, right: Any) -> tuple[Any, Any]:
    """Bring a string and a date/GUID to one type, as the compilers do with literals."""
    if isinstance(left, str) and not isinstance(right, str):
        right, left = _align(right, left)
        return left, right
    if isinstance(right, str):
        if isinstance(left, dt.datetime):
            return format_datetime(left), right
        if isinstance(left, dt.date):
            return left.isoformat(), right
        if isinstance(left, uuid.UUID):
            return str(left), right
    if isinstance(left, dt.datetime) and type(right) is dt.date:
        return left, dt.datetime(right.year, right.month, right.day, tzinfo=dt.UTC)
    if type(left) is dt.date and isinstance(right, dt.datetime):
        return dt.datetime(left.year, left.month, left.day, tzinfo=dt.UTC), right
    return left, right


_ORDER: dict[BinaryOp, Callable[[Any, Any], bool]] = {
    BinaryOp.GT: lambda a, b: a > b,
    BinaryOp.GE: lambda a, b: a >= b,
    BinaryOp.LT: lambda a, b: a < b,
    BinaryOp.LE: lambda a, b: a <= b,
}


def _numbers(left: Any, right: Any) -> tuple[Any, Any]:
    if isinstance(left, float) or isinstance(right, float):
        return float(left), float(right)
    if isinstance(left, decimal.Decimal) or isinstance(right, decimal.Decimal):
        return decimal.Decimal(left), decimal.Decimal(right)
    return left, right


def _divide(left: Any, right: Any) -> Any:
    if right == 0:
        return None
    if isinstance(left, int) and isinstance(right, int):
        quotient = abs(left) // abs(right)
        return quotient if (left >= 0) == (right >= 0) else -quotient
    left, right = _numbers(left, right)
    return left / right


def _remainder(left: Any, right: Any) -> Any:
    if right == 0:
        return None
    if isinstance(left, int) and isinstance(right, int):
        rest = abs(left) % abs(right)
        return rest if left >= 0 else -rest
    left, right = _numbers(left, right)
    if isinstance(left, float):
        return math.fmod(left, right)
    return left % right  # Decimal's % keeps the dividend's sign


_ARITHMETIC: dict[BinaryOp, Callable[[Any, Any], Any]] = {
    BinaryOp.ADD: lambda a, b: _apply(a, b, lambda x, y: x + y),
    BinaryOp.SUB: lambda a, b: _apply(a, b, lambda x, y: x - y),
    BinaryOp.MUL: lambda a, b: _apply(a, b, lambda x, y: x * y),
    BinaryOp.DIV: _divide,
    BinaryOp.MOD: _remainder,
}


def _apply(left: Any, right: Any, op: Callable[[Any, Any], Any]) -> Any:
    left, right = _numbers(left, right)
    return op(left, right)


def _round(value: Any) -> Any:
    if isinstance(value, int):
        return value
    exact = decimal.Decimal(value) if isinstance(value, float) else value
    return int(exact.quantize(decimal.Decimal(1), rounding=decimal.ROUND_HALF_UP))


def _substring(text: str, start: int, length: int | None = None) -> str:
    start = max(start, 0)
    if length is None:
        return text[start:]
    return text[start : start + max(length, 0)]


def _replace(text: str, find: str, replacement: str) -> str:
    return text if find == "" else text.replace(find, replacement)


def _timestamp(value: Any) -> dt.datetime:
    if isinstance(value, str):
        return parse_datetime(value)
    if type(value) is dt.date:
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    if not isinstance(value, dt.datetime):
        # year(142) and the like: no meaning in the reference, so no answer to compare with.
        raise TypeError(f"not a date or time: {value!r}")
    return value


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "contains": lambda text, part: part in text,
    "startswith": lambda text, part: text.startswith(part),
    "endswith": lambda text, part: text.endswith(part),
    "tolower": str.lower,
    "toupper": str.upper,
    "trim": lambda text: text.strip(" "),
    "length": len,
    "indexof": lambda text, part: text.find(part),
    "substring": _substring,
    "concat": lambda left, right: left + right,
    "replace": _replace,
    "year": lambda value: _timestamp(value).year,
    "month": lambda value: _timestamp(value).month,
    "day": lambda value: _timestamp(value).day,
    "hour": lambda value: _timestamp(value).hour,
    "minute": lambda value: _timestamp(value).minute,
    "second": lambda value: _timestamp(value).second,
    "date": lambda value: _timestamp(value).date(),
    "time": lambda value: _timestamp(value).time(),
    "round": _round,
    "floor": math.floor,
    "ceiling": math.ceil,
}


def _call(expr: Call, item: Item) -> Any:
    args = [evaluate(arg, item) for arg in expr.args]
    if any(arg is None for arg in args):
        return None
    return _FUNCTIONS[expr.name](*args)


def sort_key(value: Any) -> tuple[int, Any]:
    """OData order: null first, then the values in their natural order."""
    return (0, 0) if value is None else (1, value)
