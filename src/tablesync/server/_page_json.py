"""The database writes a page's items as JSON itself: one JSON text per row.

Building each item in Python (a ``Row`` per row, a dict per row, ``orjson`` over the dicts) was
most of the server's CPU per row of a pull (docs/benchmarks.md, "Initial pull"); the databases'
JSON functions do the same in C. The text must be what :func:`_items.render_rows` sends, so only
columns whose JSON the database writes exactly as ``orjson`` would take this path:

- text and integers as they are stored; ``NULL`` as ``null``;
- booleans as ``true``/``false`` (SQLite stores 0/1; ``deleted`` is never ``null``);
- timestamps as their wire text: SQLite's stored text, when each row says all its timestamps
  are canonical (``GLOB``; a page with one that is not takes the Python path), and
  PostgreSQL's ``to_char``, the text the Python path reads too (``_repository.wire_text``).

SQLite builds an item with ``json_object``. PostgreSQL's ``json_build_object`` writes
``"key" : value`` with spaces, so it takes ``row_to_json`` of a ``LATERAL`` row of the same
fields instead, which writes compact JSON in the select list's order.

Tables with a ``number`` column (both databases print some doubles unlike ``orjson``: SQLite
with 15-17 digits, PostgreSQL ``1e+20``) or a ``json`` column (the stored text would be kept)
take the Python path, as do ``$select`` pages, other databases and SQLite builds before 3.38
(JSON functions optional).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import FromClause

from ..protocol import ApiVersion
from ._repository import wire_text
from ._types import UtcDateTime

# The columns of a JSON page row, by position (see ``page_columns``).
ITEM, CANONICAL = range(2)

# The canonical wire form of a timestamp (``_items._WIRE_TIME``) as a GLOB pattern.
_DIGIT = "[0-9]"
_WIRE_GLOB = f"{_DIGIT * 4}-{_DIGIT * 2}-{_DIGIT * 2}T{_DIGIT * 2}:{_DIGIT * 2}:{_DIGIT * 2}"
_WIRE_GLOB += f".{_DIGIT * 3}Z"
_TRUE: ColumnElement[Any] = sa.literal_column("json('true')")
_FALSE: ColumnElement[Any] = sa.literal_column("json('false')")
_JSON_SINCE = (3, 38, 0)  # JSON functions built in by default


class JsonSelect(NamedTuple):
    """What a JSON page selects, and the FROM clause it selects it from."""

    columns: tuple[ColumnElement[Any], ...]
    source: FromClause


def page_select(
    table: sa.Table, columns: tuple[str, ...], version: ApiVersion, dialect: Dialect
) -> JsonSelect | None:
    """The select list of a JSON page: the item's text, and whether its times are canonical.

    Nothing else per row: each further column cost the database and Python more than a field
    of the JSON (the keyset position of the last row is read from its text, :func:`last_item`).

    ``None`` when this table, version or database cannot take the JSON path.
    """
    if dialect.name == "postgresql":
        return _postgres_select(table, columns, version)
    if dialect.name != "sqlite" or not _has_json(dialect):
        return None
    return _sqlite_select(table, columns, version)


def _item_columns(
    table: sa.Table, columns: tuple[str, ...], version: ApiVersion
) -> list[sa.Column[Any]] | None:
    """An item's columns in :func:`_items.render`'s order.

    ``None`` if the table lacks one: ``render`` sends a missing field as null (the Python path).
    """
    system = ("id", "createdAt") if version is ApiVersion.V2 else ("id",)
    names = (*system, "updatedAt", "version", "deleted", *columns)
    if any(name not in table.c for name in names):
        return None
    return [table.c[name] for name in names]


def _has_json(dialect: Dialect) -> bool:
    version = getattr(dialect.dbapi, "sqlite_version_info", (0,))
    return tuple(version) >= _JSON_SINCE


@functools.lru_cache(maxsize=256)
def _sqlite_select(
    table: sa.Table, columns: tuple[str, ...], version: ApiVersion
) -> JsonSelect | None:
    item_columns = _item_columns(table, columns, version)
    if item_columns is None:
        return None
    fields: list[ColumnElement[Any]] = []
    times = []
    for column in item_columns:
        value = _json_value(column, nullable=column.name != "deleted")
        if value is None:
            return None
        fields += [sa.literal_column(_sql_string(column.name)), value]
        if isinstance(column.type, UtcDateTime):
            times.append(column)
    item = sa.func.json_object(*fields, type_=sa.String()).label("item")
    canonical = sa.and_(sa.true(), *(_canonical(column) for column in times))
    return JsonSelect((item, sa.cast(canonical, sa.Integer()).label("canonical")), table)


# The LATERAL row's name: no column can be called this (column names are [A-Za-z0-9_]).
_ROW_NAME = "item$"


@functools.lru_cache(maxsize=256)
def _postgres_select(
    table: sa.Table, columns: tuple[str, ...], version: ApiVersion
) -> JsonSelect | None:
    item_columns = _item_columns(table, columns, version)
    if item_columns is None:
        return None
    fields = []
    for column in item_columns:
        if isinstance(column.type, UtcDateTime):
            fields.append(wire_text(column, "postgresql"))
        elif isinstance(column.type, sa.Boolean | sa.Integer | sa.String):
            fields.append(column.label(column.name))
        else:
            return None  # doubles, JSON, anything else
    row = sa.select(*fields).correlate(table).lateral(_ROW_NAME)
    item = sa.cast(sa.func.row_to_json(row.table_valued()), sa.Text()).label("item")
    # to_char always writes the canonical form.
    source = table.join(row, sa.true())
    return JsonSelect((item, sa.literal(1, sa.Integer()).label("canonical")), source)


def _json_value(column: sa.Column[Any], *, nullable: bool) -> ColumnElement[Any] | None:
    """``column`` as a ``json_object`` argument, or ``None`` when SQLite's JSON would differ."""
    kind = column.type
    if isinstance(kind, UtcDateTime):
        return sa.type_coerce(column, sa.String())
    if isinstance(kind, sa.Boolean):
        as_int = sa.type_coerce(column, sa.Integer())
        true_or_false = sa.case((as_int != 0, _TRUE), else_=_FALSE)
        return (
            sa.case((column.is_(None), sa.null()), else_=true_or_false)
            if nullable
            else true_or_false
        )
    if isinstance(kind, sa.Integer | sa.String):
        return column
    return None  # doubles, JSON, anything else


def _canonical(column: sa.Column[Any]) -> ColumnElement[bool]:
    text = sa.type_coerce(column, sa.String())
    return sa.or_(text.is_(None), text.op("GLOB")(sa.literal_column(_sql_string(_WIRE_GLOB))))


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def all_canonical(rows: Sequence[Any]) -> bool:
    """Whether every timestamp of the page's rows is in its wire form already."""
    return all(row[CANONICAL] for row in rows)


def items_fragment(rows: Sequence[Any]) -> orjson.Fragment:
    """The page's items as one JSON array, to embed in the response as it is."""
    return orjson.Fragment("[" + ",".join([row[ITEM] for row in rows]) + "]")


def last_item(rows: Sequence[Any]) -> dict[str, Any]:
    """The last row's item, decoded (for the keyset position of the next link)."""
    item: dict[str, Any] = orjson.loads(rows[-1][ITEM])
    return item
