"""Purging tombstones: soft-deleted rows older than a retention period.

Clients learn about deletions only from tombstones, so purge only rows older than the longest
time a device may stay offline: a client whose last pull is older than the retention keeps
rows deleted on the server until it purges its own store.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.engine import Engine
from starlette.applications import Starlette

from .._exceptions import ServerConfigError
from ._clock import now_ms
from ._engine import make_engine, writer
from ._items import stamp_datetime
from ._repository import purge_deleted
from ._schema import Schema, TableState


def purge_tombstones(
    engine_or_app: Engine | Starlette | str, table: str, older_than: dt.timedelta
) -> int:
    """Delete the tombstones of ``table`` last written more than ``older_than`` ago.

    Example:
        ```python
        removed = purge_tombstones(app, "todoitem", older_than=timedelta(days=30))
        ```

    Args:
        engine_or_app: an app from ``create_app``, an engine, or a database URL.
        table: the table name (any case).
        older_than: the retention period; rows deleted more recently are kept.

    Returns:
        How many tombstones were removed.

    Raises:
        ServerConfigError: the table does not exist or the retention is negative.
    """
    if older_than < dt.timedelta(0):
        raise ServerConfigError("older_than must not be negative")
    schema, owned = _schema_of(engine_or_app)
    try:
        state = _table_state(schema, table)
        cutoff = stamp_datetime(now_ms()) - older_than
        with writer(schema.engine).begin() as conn:
            return purge_deleted(conn, state.table, cutoff)
    finally:
        if owned:
            schema.engine.dispose()


def _schema_of(target: Any) -> tuple[Schema, bool]:
    service = getattr(getattr(target, "state", None), "tablesync", None)
    if service is not None:
        return service.schema, False
    if isinstance(target, Engine | str):
        engine = make_engine(target)
        return Schema(engine, {}, dynamic=True), not isinstance(target, Engine)
    raise ServerConfigError("purge_tombstones needs an app from create_app, an engine or a URL")


def _table_state(schema: Schema, table: str) -> TableState:
    key = table.lower()
    state = schema.get(key)
    if state is None:
        with schema.engine.connect() as conn:
            state = schema.refresh(conn, key)
    if state is None:
        raise ServerConfigError(f"no table {table!r} in this database")
    return state
