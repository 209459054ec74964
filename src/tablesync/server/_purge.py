"""Purging tombstones: soft-deleted rows older than a retention period.

Clients learn about deletions only from tombstones, so purge only rows older than the longest
time a device may stay offline: a client whose last pull is older than the retention keeps
rows deleted on the server until it purges its own store.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from starlette.applications import Starlette

from .._exceptions import ServerConfigError
from ._clock import now_ms
from ._engine import make_engine, writer
from ._items import stamp_datetime
from ._repository import purge_deleted
from ._schema import REGISTRY, Schema, TableState


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
        ServerConfigError: the table does not exist, the retention is negative, the database
            cannot be reached or is not a tablesync database (a missing SQLite file is never
            created).
    """
    if older_than < dt.timedelta(0):
        raise ServerConfigError("older_than must not be negative")
    schema, owned = _schema_of(engine_or_app)
    try:
        state = _table_state(schema, table)
        cutoff = stamp_datetime(now_ms()) - older_than
        with writer(schema.engine).begin() as conn:
            return purge_deleted(conn, state.table, cutoff)
    except sa.exc.SQLAlchemyError as exc:
        raise ServerConfigError(
            f"cannot purge {table!r} in {_shown(schema.engine)}: {_reason(exc)}"
        ) from exc
    finally:
        if owned:
            schema.engine.dispose()


def _schema_of(target: Any) -> tuple[Schema, bool]:
    service = getattr(getattr(target, "state", None), "tablesync", None)
    if service is not None:
        return service.schema, False
    if isinstance(target, Engine | str):
        _check_sqlite_file(target)
        engine = make_engine(target)
        return Schema(engine, {}, dynamic=True), not isinstance(target, Engine)
    raise ServerConfigError("purge_tombstones needs an app from create_app, an engine or a URL")


def _check_sqlite_file(target: Engine | str) -> None:
    # Connecting to a missing SQLite file creates it: a mistyped path would leave an empty
    # database behind and report "no table" instead of the real mistake.
    try:
        url = target.url if isinstance(target, Engine) else sa.make_url(target)
    except sa.exc.ArgumentError as exc:
        raise ServerConfigError(f"invalid database URL {target!r}: {exc}") from exc
    path = url.database
    if url.get_backend_name() != "sqlite" or path in (None, "", ":memory:"):
        return
    if url.query.get("uri") in ("true", "1") or path.startswith("file:"):
        return  # a URI filename: its own mode= decides whether it may be created
    if not Path(path).is_file():
        raise ServerConfigError(f"no SQLite database file {path!r} (nothing was created)")
    if url.drivername in ("sqlite", "sqlite+pysqlite"):
        _check_sqlite_registry(Path(path))


def _check_sqlite_registry(path: Path) -> None:
    # Read-only, before the engine connects: its connect hook switches the file to WAL, a
    # lasting change to a file that may belong to another program.
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
            found = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (REGISTRY.name,)
            ).fetchone()
    except sqlite3.Error as exc:
        raise ServerConfigError(f"cannot read the SQLite database {str(path)!r}: {exc}") from exc
    if found is None:
        raise ServerConfigError(
            f"{str(path)!r} is not a tablesync database (it has no {REGISTRY.name} table)"
        )


def _table_state(schema: Schema, table: str) -> TableState:
    key = table.lower()
    try:
        with schema.engine.connect() as conn:
            # Checked first: otherwise the registry query fails with "no such table".
            if not sa.inspect(conn).has_table(REGISTRY.name):
                raise ServerConfigError(
                    f"{_shown(schema.engine)} is not a tablesync database "
                    f"(it has no {REGISTRY.name} table)"
                )
            state = schema.get(key)
            if state is None:
                state = schema.refresh(conn, key)
    except sa.exc.SQLAlchemyError as exc:
        raise ServerConfigError(
            f"cannot read the database {_shown(schema.engine)}: {_reason(exc)}"
        ) from exc
    if state is None:
        raise ServerConfigError(f"no table {table!r} in {_shown(schema.engine)}")
    return state


def _shown(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def _reason(exc: sa.exc.SQLAlchemyError) -> str:
    # The driver's own message, without SQLAlchemy's statement dump and background link.
    cause = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
    lines = str(cause).strip().splitlines()
    return " ".join(line.strip() for line in lines[:2]) or type(cause).__name__
