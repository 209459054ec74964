"""Column types that store the protocol's values identically on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.engine import Dialect

from ..protocol.dates import format_datetime, parse_datetime, truncate_millis


class UtcDateTime(sa.types.TypeDecorator[dt.datetime]):
    """An aware UTC datetime at exactly millisecond precision.

    PostgreSQL keeps it as ``timestamp(3) with time zone``. SQLite has no date type, so it is
    kept as fixed-width ISO 8601 text (``2024-01-02T03:04:05.678Z``): such strings sort in time
    order and SQLite's own date functions read them, so comparisons, ordering and ``year()``
    work in SQL on both engines.
    """

    impl = sa.String(24)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.TIMESTAMP(timezone=True, precision=3))
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=3))
        return dialect.type_descriptor(sa.String(24))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if isinstance(value, str):
            value = parse_datetime(value)
        if not isinstance(value, dt.datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if dialect.name in ("postgresql",):
            return truncate_millis(value)
        if dialect.name in ("mysql", "mariadb"):
            return truncate_millis(value).replace(tzinfo=None)
        return format_datetime(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            return parse_datetime(value)
        return truncate_millis(value)
