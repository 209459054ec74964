"""``cast(literal, Edm.Type)``: the v3 (OData v4) way to write typed literals.

Only literal values can be cast; the result is a plain :class:`Literal` of the target kind,
so ``cast(2001-02-03T00:00:00.000Z,Edm.DateTimeOffset)`` and
``datetimeoffset'2001-02-03T00:00:00.0000000+00:00'`` parse to the same node.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from collections.abc import Callable

from ..protocol.dates import parse_datetime
from .ast import Literal, LiteralKind

__all__ = ["CAST_TYPES", "cast_literal"]


def _to_datetime(literal: Literal) -> Literal:
    value = literal.value
    if literal.kind is LiteralKind.DATE:
        value = dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    elif literal.kind is LiteralKind.STRING:
        value = parse_datetime(value)
    elif literal.kind is not LiteralKind.DATETIME:
        raise ValueError
    return Literal(value, LiteralKind.DATETIME)


def _to_date(literal: Literal) -> Literal:
    if literal.kind is LiteralKind.DATE:
        return literal
    if literal.kind is LiteralKind.DATETIME:
        return Literal(literal.value.date(), LiteralKind.DATE)
    if literal.kind is LiteralKind.STRING:
        return Literal(dt.date.fromisoformat(literal.value), LiteralKind.DATE)
    raise ValueError


def _to_guid(literal: Literal) -> Literal:
    if literal.kind is LiteralKind.GUID:
        return literal
    if literal.kind is LiteralKind.STRING:
        return Literal(uuid.UUID(literal.value), LiteralKind.GUID)
    raise ValueError


def _to_time(literal: Literal) -> Literal:
    if literal.kind is LiteralKind.TIME:
        return literal
    if literal.kind is LiteralKind.STRING:
        return Literal(dt.time.fromisoformat(literal.value), LiteralKind.TIME)
    raise ValueError


def _to_string(literal: Literal) -> Literal:
    if literal.kind in (LiteralKind.STRING, LiteralKind.INT, LiteralKind.DECIMAL):
        return Literal(str(literal.value), LiteralKind.STRING)
    if literal.kind is LiteralKind.GUID:
        return Literal(str(literal.value), LiteralKind.STRING)
    raise ValueError


def _to_int(literal: Literal) -> Literal:
    if literal.kind is LiteralKind.INT:
        return literal
    if literal.kind is LiteralKind.STRING and literal.value.strip().lstrip("-").isdigit():
        return Literal(int(literal.value), LiteralKind.INT)
    raise ValueError


def _to_float(literal: Literal) -> Literal:
    if literal.kind in (LiteralKind.INT, LiteralKind.DECIMAL, LiteralKind.FLOAT):
        return Literal(float(literal.value), LiteralKind.FLOAT)
    raise ValueError


def _to_decimal(literal: Literal) -> Literal:
    if literal.kind in (LiteralKind.INT, LiteralKind.DECIMAL):
        return Literal(decimal.Decimal(literal.value), LiteralKind.DECIMAL)
    raise ValueError


def _to_bool(literal: Literal) -> Literal:
    if literal.kind is LiteralKind.BOOL:
        return literal
    raise ValueError


#: Supported target types, by lower-case name, with their converter.
CAST_TYPES: dict[str, Callable[[Literal], Literal]] = {
    "edm.datetimeoffset": _to_datetime,
    "edm.datetime": _to_datetime,
    "edm.date": _to_date,
    "edm.guid": _to_guid,
    "edm.timeofday": _to_time,
    "edm.string": _to_string,
    "edm.int16": _to_int,
    "edm.int32": _to_int,
    "edm.int64": _to_int,
    "edm.byte": _to_int,
    "edm.sbyte": _to_int,
    "edm.double": _to_float,
    "edm.single": _to_float,
    "edm.decimal": _to_decimal,
    "edm.boolean": _to_bool,
}


def cast_literal(literal: Literal, type_name: str) -> Literal:
    """Convert ``literal`` to the Edm type ``type_name`` (case-insensitive).

    ``null`` casts to ``null`` of any type.

    Raises:
        ValueError: with a message for the user, when the type is unknown or the value
            cannot be converted.
    """
    convert = CAST_TYPES.get(type_name.lower())
    if convert is None:
        raise ValueError(f"unsupported cast type {type_name!r}")
    if literal.kind is LiteralKind.NULL:
        return literal
    try:
        return convert(literal)
    except (ValueError, OverflowError, decimal.InvalidOperation):
        pass
    raise ValueError(f"cannot cast {literal.value!r} to {type_name}")
