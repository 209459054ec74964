"""The canonical functions (``contains``, ``substring``, ``year`` ...) for the server compiler.

Each compiler takes the compiled arguments (already type-checked by ``odata._typing``) and
returns the compiled call. OData counts string positions from 0 and SQL from 1: the
conversion happens here, and negative positions or lengths are clamped to 0 so that no input
can make the database raise an error.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from .._exceptions import QueryError
from ..odata.ast import Call, EdmType, LiteralKind
from . import _query_functions as fn
from ._query_values import Sql, bind_as, boolean
from ._types import UtcDateTime

__all__ = ["compile_call"]

_INT32_MAX = 2**31 - 1
_TEXT = sa.String()
CallCompiler = Callable[[list[Sql], EdmType], Sql]


def compile_call(node: Call, args: list[Sql], result: EdmType) -> Sql:
    """Compile a call whose arguments are compiled and type-checked."""
    return _CALLS[node.name](args, result)


def _text(sql: Sql) -> ColumnElement[str]:
    if sql.literal is not None:
        return bind_as(sql.literal, EdmType.STRING, None)
    return sql.element


def _contains(args: list[Sql], result: EdmType) -> Sql:
    return boolean(fn.strpos(_text(args[0]), _text(args[1])) > 0)


def _startswith(args: list[Sql], result: EdmType) -> Sql:
    return boolean(fn.strpos(_text(args[0]), _text(args[1])) == 1)


def _endswith(args: list[Sql], result: EdmType) -> Sql:
    text, suffix = _text(args[0]), _text(args[1])
    text_length, suffix_length = fn.char_length(text), fn.char_length(suffix)
    # The length test keeps substr()'s start at 1 or more: SQLite reads a start below 1
    # from the end of the string.
    tail = sa.func.substr(text, text_length - suffix_length + 1, type_=_TEXT)
    return boolean(sa.and_(text_length >= suffix_length, tail == suffix))


def _string_function(name: str) -> CallCompiler:
    def compile_(args: list[Sql], result: EdmType) -> Sql:
        return Sql(getattr(sa.func, name)(_text(args[0]), type_=_TEXT), EdmType.STRING)

    return compile_


def _length(args: list[Sql], result: EdmType) -> Sql:
    return Sql(fn.char_length(_text(args[0])), EdmType.INT)


def _indexof(args: list[Sql], result: EdmType) -> Sql:
    return Sql(fn.strpos(_text(args[0]), _text(args[1])) - 1, EdmType.INT)


def _position(sql: Sql, name: str, offset: int) -> ColumnElement[Any]:
    """A 0-based OData position or length as an SQL integer, plus ``offset``, never negative."""
    if sql.literal is not None:
        value = sql.literal.value
        if value is None:
            return sa.null()
        if not 0 <= value <= _INT32_MAX - offset:
            raise QueryError(f"the {name} of substring() must be between 0 and {_INT32_MAX - 1}")
        return sa.literal(value + offset, sa.Integer())
    clamped = fn.clamp(sql.element)
    return clamped + offset if offset else clamped


def _substring(args: list[Sql], result: EdmType) -> Sql:
    text = _text(args[0])
    start = _position(args[1], "start", 1)
    if len(args) == 2:
        return Sql(sa.func.substr(text, start, type_=_TEXT), EdmType.STRING)
    length = _position(args[2], "length", 0)
    return Sql(sa.func.substr(text, start, length, type_=_TEXT), EdmType.STRING)


def _concat(args: list[Sql], result: EdmType) -> Sql:
    left = sa.type_coerce(_text(args[0]), _TEXT)
    return Sql(left.concat(_text(args[1])), EdmType.STRING)


def _replace(args: list[Sql], result: EdmType) -> Sql:
    text, find, replacement = (_text(arg) for arg in args)
    return Sql(fn.replace(text, find, replacement), EdmType.STRING)


def _is_utc_timestamp(sql: Sql) -> bool:
    """Whether PostgreSQL must shift the value to UTC before reading its parts."""
    if sql.type is not EdmType.DATETIME:
        return False
    if sql.column is None:
        return True  # literals bind as UtcDateTime, function results keep their time zone
    sql_type = sql.column.type
    return isinstance(sql_type, UtcDateTime) or bool(getattr(sql_type, "timezone", False))


def _timestamp(sql: Sql) -> ColumnElement[dt.datetime]:
    if sql.literal is not None:
        return bind_as(sql.literal, EdmType.DATETIME, None)
    return sql.element


def _date_part(field: str) -> CallCompiler:
    def compile_(args: list[Sql], result: EdmType) -> Sql:
        part = fn.date_part(field, _timestamp(args[0]), utc=_is_utc_timestamp(args[0]))
        return Sql(part, EdmType.INT)

    return compile_


def _date(args: list[Sql], result: EdmType) -> Sql:
    return Sql(fn.utc_date(_timestamp(args[0]), utc=_is_utc_timestamp(args[0])), EdmType.DATE)


def _time(args: list[Sql], result: EdmType) -> Sql:
    return Sql(fn.utc_time(_timestamp(args[0]), utc=_is_utc_timestamp(args[0])), EdmType.TIME)


def _rounding(construct: Callable[[ColumnElement[object]], ColumnElement[object]]) -> CallCompiler:
    def compile_(args: list[Sql], result: EdmType) -> Sql:
        arg = args[0]
        if arg.type is EdmType.INT:
            return arg  # an integer is already whole
        if arg.literal is not None and arg.literal.kind is LiteralKind.NULL:
            return Sql(sa.null(), result)
        return Sql(construct(arg.element), result)

    return compile_


_CALLS: dict[str, CallCompiler] = {
    "contains": _contains,
    "startswith": _startswith,
    "endswith": _endswith,
    "tolower": _string_function("lower"),
    "toupper": _string_function("upper"),
    "trim": _string_function("trim"),
    "length": _length,
    "indexof": _indexof,
    "substring": _substring,
    "concat": _concat,
    "replace": _replace,
    **{part: _date_part(part) for part in ("year", "month", "day", "hour", "minute", "second")},
    "date": _date,
    "time": _time,
    "round": _rounding(fn.round_half_away),
    "floor": _rounding(fn.floor),
    "ceiling": _rounding(fn.ceiling),
}
