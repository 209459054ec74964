"""JSON encoding for the wire and the local store, in one place so both sides agree."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable
from typing import Any

import orjson

from .dates import format_datetime


def _default(value: Any) -> Any:
    # orjson writes microseconds; the protocol wants exactly milliseconds with a "Z".
    if isinstance(value, dt.datetime):
        return format_datetime(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def dumps(value: Any) -> bytes:
    """Encode ``value`` as compact UTF-8 JSON; datetimes become ms-precision UTC strings."""
    return orjson.dumps(value, default=_default, option=orjson.OPT_PASSTHROUGH_DATETIME)


_dumps = functools.partial(orjson.dumps, default=_default, option=orjson.OPT_PASSTHROUGH_DATETIME)


def dumps_texts(values: Iterable[Any]) -> list[str]:
    """:func:`dumps` of each value, as text: C-level calls only (a page of pulled items)."""
    return list(map(bytes.decode, map(_dumps, values)))


def loads(data: bytes | str) -> Any:
    """Decode JSON text; raises ``ValueError`` (``orjson.JSONDecodeError``) on malformed input."""
    return orjson.loads(data)
