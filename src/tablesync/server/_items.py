"""Items on the wire ↔ rows in SQL: field validation, type inference, and rendering."""

from __future__ import annotations

import datetime as dt
import functools
import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..protocol import ApiVersion, format_datetime, is_valid_id, parse_datetime
from ._config import ColumnType, is_valid_column_name
from ._errors import BadRequest
from ._schema import TableState
from ._types import UtcDateTime

_SYSTEM = frozenset({"createdat", "updatedat", "version", "deleted"})
_INT64 = (-(2**63), 2**63 - 1)
# A string inferred as a datetime column must look exactly like a protocol timestamp.
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,7})?(Z|[+-]\d{2}:\d{2})$")


@dataclass(frozen=True, slots=True)
class ItemInput:
    """A validated request body.

    Attributes:
        item_id: the ``id`` in the body, or ``None`` when absent.
        values: user column values keyed by stored column name.
        new_columns: fields that need a new column first (dynamic schema), with inferred kinds.
        version: the ``version`` the body carried (a v2 precondition), or ``None``.
        deleted: the ``deleted`` the body carried, or ``None``.
        raw: the body as received (handed to merge callables).
    """

    item_id: str | None
    values: dict[str, Any]
    new_columns: dict[str, ColumnType]
    version: str | None
    deleted: bool | None
    raw: dict[str, Any]


def parse_item(state: TableState | None, body: Any, *, dynamic: bool) -> ItemInput:
    """Validate a body against a table's columns; unknown fields are an error unless dynamic."""
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object")
    values: dict[str, Any] = {}
    new_columns: dict[str, ColumnType] = {}
    for name, value in body.items():
        if name == "id" or name.lower() in _SYSTEM:
            continue
        column = state.column_for(name) if state is not None else None
        if column is not None:
            values[column] = coerce(state.kinds[column], value, name)  # type: ignore[union-attr]
        elif dynamic:
            _add_inferred(name, value, values, new_columns)
        else:
            raise BadRequest(f"Unknown field {name!r}: the table has no such column")
    return ItemInput(
        item_id=_body_id(body),
        values=values,
        new_columns=new_columns,
        version=_body_version(body),
        deleted=_body_deleted(body),
        raw=body,
    )


def _add_inferred(
    name: str, value: Any, values: dict[str, Any], new_columns: dict[str, ColumnType]
) -> None:
    if not is_valid_column_name(name):
        raise BadRequest(
            f"Invalid field name {name!r}: use a letter or '_' then letters, digits or '_' "
            "(at most 63 characters)"
        )
    kind = infer_kind(value)
    if kind is None:
        return  # null: no type to infer, and a missing column already reads as null
    new_columns[name] = kind
    values[name] = coerce(kind, value, name)


def infer_kind(value: Any) -> ColumnType | None:
    """The column type a new field gets from its first non-null JSON value."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "datetime" if _TIMESTAMP.match(value) else "string"
    return "json"


def coerce(kind: ColumnType, value: Any, name: str) -> Any:
    """Check that ``value`` fits a column of ``kind`` and convert it for storage."""
    if value is None:
        return None
    converted = _COERCERS[kind](value)
    if converted is _INVALID:
        raise BadRequest(
            f"Field {name!r} must be {_EXPECTED[kind]}, got {_describe(value)}",
            detail={"field": name},
        )
    return converted


_INVALID: Any = object()


def _as_string(value: Any) -> Any:
    # PostgreSQL text cannot hold NUL; refuse it everywhere so both backends agree.
    return value if isinstance(value, str) and "\x00" not in value else _INVALID


def _as_integer(value: Any) -> Any:
    # A whole float counts (5.0), below 2^63 in size only: orjson reads an integer literal
    # beyond 64 bits as a float, and -2^63-1 rounds to -2^63, which would be stored.
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and _INT64[0] <= value <= _INT64[1]:
        return value
    return _INVALID


def _as_number(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
        return number if math.isfinite(number) else _INVALID
    return _INVALID


def _as_boolean(value: Any) -> Any:
    return value if isinstance(value, bool) else _INVALID


def _as_datetime(value: Any) -> Any:
    if not isinstance(value, str):
        return _INVALID
    try:
        return parse_datetime(value)
    except (ValueError, OverflowError):
        return _INVALID


def _as_json(value: Any) -> Any:
    return value


_COERCERS: dict[str, Callable[[Any], Any]] = {
    "string": _as_string,
    "integer": _as_integer,
    "number": _as_number,
    "boolean": _as_boolean,
    "datetime": _as_datetime,
    "json": _as_json,
}
_EXPECTED = {
    "string": "a string (without NUL characters)",
    "integer": "a whole number between -2^63 and 2^63-1",
    "number": "a finite number",
    "boolean": "true or false",
    "datetime": "an ISO 8601 date/time string such as 2024-01-02T03:04:05.678Z",
    "json": "any JSON value",
}


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:40]}{'…' if len(text) > 40 else ''}"


def _body_id(body: Mapping[str, Any]) -> str | None:
    if "id" not in body or body["id"] is None:
        return None
    item_id = body["id"]
    if not isinstance(item_id, str):
        raise BadRequest("The 'id' field must be a string")
    if not is_valid_id(item_id):
        raise BadRequest(invalid_id_message(item_id))
    return item_id


def invalid_id_message(item_id: str) -> str:
    """The error text for an id that breaks the protocol's id rules."""
    return (
        f"Invalid id {item_id[:60]!r}: ids are 1-255 characters, without control characters, "
        "any of \" + ? \\ / `, and are not '.' or '..'"
    )


def _system_value(body: Mapping[str, Any], name: str) -> Any:
    return next((value for key, value in body.items() if key.lower() == name), None)


def _body_version(body: Mapping[str, Any]) -> str | None:
    version = _system_value(body, "version")
    if version is not None and not isinstance(version, str):
        raise BadRequest("The 'version' field must be a string")
    return version or None


def _body_deleted(body: Mapping[str, Any]) -> bool | None:
    deleted = _system_value(body, "deleted")
    if deleted is not None and not isinstance(deleted, bool):
        raise BadRequest("The 'deleted' field must be true or false")
    return deleted


def render(
    state: TableState,
    row: Mapping[Any, Any],
    version: ApiVersion,
    select: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The wire form of a stored row (v3 omits ``createdAt``; ``$select`` narrows it)."""
    item: dict[str, Any] = {"id": row["id"]}
    if not select or version is ApiVersion.V2:
        if version is ApiVersion.V2:
            item["createdAt"] = row["createdAt"]
        item["updatedAt"] = row["updatedAt"]
        item["version"] = row["version"]
        item["deleted"] = bool(row["deleted"])
    if not select:
        item.update((column, row.get(column)) for column in state.kinds)
        return item
    for name in select:
        if name in ("deleted",):
            item[name] = bool(row[name])
        elif name != "createdAt" or version is ApiVersion.V2:
            item[name] = row.get(name)
    return item


def render_rows(
    state: TableState,
    rows: Sequence[Any],
    version: ApiVersion,
    select: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """The wire form of a page of rows read by ``_repository.page_statement``.

    Gives what :func:`render` gives for each row, but reads the rows (``sa.Row`` tuples in
    ``table.c`` order) by position: a mapping lookup per field was a third of the per-row cost
    of a page (docs/benchmarks.md). Timestamps leave as wire text; SQLite's rows carry them as
    the stored text, sent as it is when it is already canonical. ``$select`` pages, rarer,
    take the general path.
    """
    layout = None if select else _layout(state.table, tuple(state.kinds), version)
    if layout is None:
        return [_wire_times(state, render(state, row._mapping, version, select)) for row in rows]
    names, pick, times = layout
    items = []
    for row in rows:
        item = dict(zip(names, pick(row), strict=True))
        item["deleted"] = bool(item["deleted"])
        for name in times:
            item[name] = wire_time(item[name])
        items.append(item)
    return items


@functools.lru_cache(maxsize=256)
def _layout(
    table: Any, columns: tuple[str, ...], version: ApiVersion
) -> tuple[tuple[str, ...], Callable[[Any], tuple[Any, ...]], tuple[str, ...]] | None:
    """A full item's field names in :func:`render`'s order, their row positions, its times.

    ``None`` when the table lacks one of them (:func:`render` sends such a field as null).
    """
    positions = {column.name: index for index, column in enumerate(table.c)}
    system = ("id", "createdAt") if version is ApiVersion.V2 else ("id",)
    names = (*system, "updatedAt", "version", "deleted", *columns)
    if any(name not in positions for name in names):
        return None
    times = tuple(name for name in names if _is_time(table.c[name]))
    return names, operator.itemgetter(*(positions[name] for name in names)), times


def _is_time(column: Any) -> bool:
    return isinstance(column.type, UtcDateTime)


def _wire_times(state: TableState, item: dict[str, Any]) -> dict[str, Any]:
    for name, value in item.items():
        if name in state.table.c and _is_time(state.table.c[name]):
            item[name] = wire_time(value)
    return item


# The canonical wire form, as ``protocol.dates`` writes it (and so as SQLite stores it).
_WIRE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z", re.ASCII)


def wire_time(value: Any) -> str | None:
    """A timestamp (a datetime, or stored text) in its wire form."""
    if value is None:
        return None
    if isinstance(value, str):
        return value if _WIRE_TIME.fullmatch(value) else format_datetime(parse_datetime(value))
    return format_datetime(value)


def stamp_datetime(millis: int) -> dt.datetime:
    """The aware UTC datetime of a clock stamp."""
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=millis)
