"""Compiled nodes and literal binding for the server's OData compiler (``_query.py``)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from .._exceptions import QueryError
from ..odata.ast import EdmType, Literal, LiteralKind
from ..protocol.dates import format_datetime, parse_datetime
from ._types import UtcDateTime

__all__ = ["LITERAL_TYPES", "Sql", "bind", "bind_as", "boolean", "column_type"]

LITERAL_TYPES: dict[LiteralKind, EdmType] = {
    LiteralKind.NULL: EdmType.NULL,
    LiteralKind.BOOL: EdmType.BOOL,
    LiteralKind.INT: EdmType.INT,
    LiteralKind.DECIMAL: EdmType.DECIMAL,
    LiteralKind.FLOAT: EdmType.FLOAT,
    LiteralKind.STRING: EdmType.STRING,
    LiteralKind.DATETIME: EdmType.DATETIME,
    LiteralKind.DATE: EdmType.DATE,
    LiteralKind.GUID: EdmType.GUID,
    LiteralKind.TIME: EdmType.TIME,
}


def column_type(column: sa.ColumnElement[Any]) -> EdmType:
    """The OData type a column's values have (``ANY`` when tablesync cannot tell)."""
    sql_type = column.type
    if isinstance(sql_type, UtcDateTime):
        return EdmType.DATETIME
    if isinstance(sql_type, sa.types.TypeDecorator):
        sql_type = sql_type.impl_instance
    for python_type, edm in _SQL_TYPES:
        if isinstance(sql_type, python_type):
            return edm
    return EdmType.ANY


_SQL_TYPES: tuple[tuple[type[Any], EdmType], ...] = (
    (sa.JSON, EdmType.ANY),
    (sa.Boolean, EdmType.BOOL),
    (sa.Integer, EdmType.INT),
    (sa.Float, EdmType.FLOAT),
    (sa.Numeric, EdmType.DECIMAL),
    (sa.DateTime, EdmType.DATETIME),
    (sa.Date, EdmType.DATE),
    (sa.Time, EdmType.TIME),
    (sa.Uuid, EdmType.GUID),
    (sa.String, EdmType.STRING),
)


@dataclass(frozen=True, slots=True)
class Sql:
    """A compiled node: its SQL, its OData type, and what the compiler may need to know."""

    element: ColumnElement[Any]
    type: EdmType
    column: sa.Column[Any] | None = None
    """Set when the node is a plain column."""
    literal: Literal | None = None
    """Set when the node is a literal (bound later, with the type the other side needs)."""
    condition: bool = False
    """Set when the node is a condition built by an operator; it may be NULL (unknown)."""
    never_null: bool = False
    """Set for conditions that are never NULL (``IS NULL``, ``IS DISTINCT FROM``...)."""

    @property
    def is_null(self) -> bool:
        return self.literal is not None and self.literal.kind is LiteralKind.NULL

    @property
    def is_json(self) -> bool:
        return self.column is not None and isinstance(self.column.type, sa.JSON)


def boolean(element: ColumnElement[Any], *, never_null: bool = False) -> Sql:
    """A compiled condition."""
    return Sql(element, EdmType.BOOL, condition=True, never_null=never_null)


# -- binding literals -------------------------------------------------------------------------

_BIND_TYPES: dict[EdmType, sa.types.TypeEngine[Any]] = {
    EdmType.BOOL: sa.Boolean(),
    EdmType.INT: sa.BigInteger(),
    EdmType.DECIMAL: sa.Numeric(),
    EdmType.FLOAT: sa.Double(),
    EdmType.STRING: sa.String(),
    EdmType.DATETIME: UtcDateTime(),
    EdmType.DATE: sa.Date(),
    EdmType.GUID: sa.Uuid(),
    EdmType.TIME: sa.Time(),
}


def bind(literal: Literal, edm: EdmType) -> ColumnElement[Any]:
    """A bound parameter holding ``literal`` with the SQL type of ``edm``."""
    if literal.kind is LiteralKind.NULL:
        return sa.null()
    return sa.literal(literal.value, _BIND_TYPES[edm])


def bind_as(literal: Literal, target: EdmType, column: sa.Column[Any] | None) -> ColumnElement[Any]:
    """Bind ``literal`` to compare with a value of type ``target`` (converting if needed).

    Raises:
        QueryError: when the literal cannot be read as the target type.
    """
    kind = literal.kind
    if target is EdmType.DATETIME and kind in (
        LiteralKind.STRING,
        LiteralKind.DATE,
        LiteralKind.DATETIME,
    ):
        value = _as_datetime(literal)
        sql_type = (
            column.type
            if column is not None and isinstance(column.type, sa.DateTime)
            else UtcDateTime()
        )
        return sa.literal(value, sql_type)
    if target is EdmType.DATE and kind in (LiteralKind.STRING, LiteralKind.DATETIME):
        return sa.literal(_as_date(literal), sa.Date())
    if target is EdmType.GUID and kind is LiteralKind.STRING:
        return sa.literal(_as_guid(literal), sa.Uuid())
    if target is EdmType.STRING and kind in _AS_TEXT:
        return sa.literal(_AS_TEXT[kind](literal.value), sa.String())
    return bind(literal, LITERAL_TYPES[kind])


_AS_TEXT: dict[LiteralKind, Callable[[Any], str]] = {
    LiteralKind.DATETIME: format_datetime,
    LiteralKind.DATE: dt.date.isoformat,
    LiteralKind.GUID: str,
}


def _as_datetime(literal: Literal) -> dt.datetime:
    value = literal.value
    if literal.kind is LiteralKind.DATE:
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    if literal.kind is LiteralKind.STRING:
        try:
            return parse_datetime(value)
        except ValueError:
            raise QueryError(f"{value!r} is not a date/time (expected ISO 8601)") from None
    result: dt.datetime = value
    return result


def _as_date(literal: Literal) -> dt.date:
    if literal.kind is LiteralKind.DATETIME:
        result: dt.date = literal.value.date()
        return result
    try:
        return dt.date.fromisoformat(literal.value)
    except ValueError:
        raise QueryError(f"{literal.value!r} is not a date (expected YYYY-MM-DD)") from None


def _as_guid(literal: Literal) -> uuid.UUID:
    try:
        return uuid.UUID(literal.value)
    except ValueError:
        raise QueryError(f"{literal.value!r} is not a GUID") from None
