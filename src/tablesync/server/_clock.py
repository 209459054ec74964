"""The ``updatedAt`` clock: one row per table, advanced inside each writing transaction.

``last_ms = max(last_ms + 1, now_ms)`` makes stamps unique and strictly increasing per table.
The clock row stays locked until the writing transaction commits (a PostgreSQL row lock; on
SQLite the single writer lock taken by ``BEGIN IMMEDIATE``), so transactions of one table
commit in stamp order: a reader that saw stamp T never later finds a row stamped at or
below T. See docs/architecture.md.
"""

from __future__ import annotations

import base64
import functools
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from ._engine import can_defer, client_cursor, defer, execute_on_driver, for_client_binding
from ._schema import CLOCK

#: ``Connection.info`` key of the clocks a transaction holds in memory (``hold_clocks``).
_HELD = "tablesync_held_clocks"
#: ``Connection.info`` key of the process clock read when the write arrived, before its
#: transaction waited for any lock: the stamp of the naive scheme (``strict=False``).
_ARRIVAL = "tablesync_arrival_ms"


def now_ms() -> int:
    """The process clock in Unix milliseconds."""
    return time.time_ns() // 1_000_000


def new_version() -> str:
    """A fresh opaque version: 12 random bytes in base64 (16 characters, no padding)."""
    return base64.b64encode(os.urandom(12)).decode("ascii")


def mark_arrival(conn: Connection, arrival_ms: int) -> None:
    """Remember when a write arrived, for the naive scheme (call before ``conn.begin()``)."""
    conn.info[_ARRIVAL] = arrival_ms


def next_stamp(conn: Connection, key: str, *, strict: bool = True) -> int:
    """Take the next ``updatedAt`` stamp (Unix ms) of table ``key`` inside ``conn``'s transaction.

    Call it as the last statement before the item write, then commit promptly: the clock row
    stays locked until the transaction ends. With ``strict=False`` the write is stamped the
    way application-side clocks do it (the official .NET servers' ``UtcNow``): with the
    process clock read when the write arrived (``mark_arrival``), before its transaction
    waited for locks, with no lock and no uniqueness. Kept only for the comparison benchmark
    and the stress test that shows it loses rows.
    """
    now = now_ms()
    if not strict:
        arrival = conn.info.pop(_ARRIVAL, None)
        return now if arrival is None else int(arrival)
    held = _held(conn)
    if held is not None and key in held.clocks:
        stamp = held.clocks[key] = max(held.clocks[key] + 1, now)
        return stamp
    stamp = _advance_row(conn, key, now)
    if held is not None and held.from_first_stamp:
        held.clocks[key] = stamp
    return stamp


@dataclass(slots=True)
class _HeldClocks:
    """The clocks one transaction counts in memory: last stamp by table key."""

    transaction: Any
    #: Hold every table's clock from its first stamp (SQLite), not just those locked up front.
    from_first_stamp: bool
    clocks: dict[str, int] = field(default_factory=dict)


def hold_clocks(conn: Connection, lock: Sequence[str] = ()) -> None:
    """Count the table clocks of ``conn``'s open transaction in memory, under its lock.

    A clock row that no other writer can move until this transaction ends needs no UPDATE
    per stamp (a seventh of an insert's CPU in a group commit): stamps are counted here,
    and ``store_clocks`` writes them back before the COMMIT.

    - SQLite: the write lock taken by ``BEGIN IMMEDIATE`` stays with the transaction until
      it ends, savepoints rolled back or not, so every clock is held from its first stamp.
    - PostgreSQL: rolling back to a savepoint releases the row locks taken after it, so only
      the clocks of the tables in ``lock`` are held: their rows are locked here, before any
      savepoint (call this right after BEGIN); other tables' stamps take the usual UPDATE.
    """
    sqlite = conn.dialect.name == "sqlite"
    held = conn.info[_HELD] = _HeldClocks(conn.get_transaction(), from_first_stamp=sqlite)
    if lock and not sqlite:
        if len(lock) == 1:  # a group commit: one table, without the list's per-call compile
            rows = conn.execute(_lock_one(), {"clock_key": lock[0]})
        else:
            rows = conn.execute(_lock(), {"clock_keys": sorted(lock)})  # sorted: no deadlocks
        held.clocks.update({key: int(last_ms) for key, last_ms in rows})


def store_clocks(conn: Connection) -> None:
    """Write the held clocks of ``conn``'s transaction back to their rows (before COMMIT).

    Where the connection can hold statements back (PostgreSQL through psycopg), the
    write-back is held back (``_engine.defer``) to go with the COMMIT in one query
    (``_engine.commit_deferred``): one round trip fewer for each group, while it holds the
    table's clock row.
    """
    held = _held(conn)
    conn.info.pop(_HELD, None)
    deferring = can_defer(conn)
    for key, last_ms in held.clocks.items() if held is not None else ():
        params = {"clock_key": key, "clock_last": last_ms}
        if deferring:
            defer(conn, _bound(conn, _store_sql(conn.dialect), params))
        elif conn.dialect.name == "sqlite":
            _on_sqlite_driver(conn, _store("sqlite"), params)
        else:
            conn.execute(_store(conn.dialect.name), params)


def _on_sqlite_driver(conn: Connection, stmt: Any, params: dict[str, Any]) -> list[Any]:
    """``stmt`` run on the SQLite driver (``_engine.execute_on_driver``), its rows.

    A group commit stamps from the clock row once and writes it back once, inside its turn;
    the UPDATE took 25.6 µs through SQLAlchemy's execution context, 5.4 µs here.
    """
    sql, binds = _sqlite_sql(stmt, conn.dialect)
    values = tuple(params.get(name, value) for name, value in binds)
    return execute_on_driver(conn, sql, values)


@functools.lru_cache(maxsize=8)
def _sqlite_sql(stmt: Any, dialect: sa.Dialect) -> tuple[str, tuple[tuple[str, Any], ...]]:
    """A clock statement's SQL for SQLite, and its parameters in order: name, own value.

    The own values are the statement's literals (the ``1`` of ``last_ms + 1``).
    """
    compiled = stmt.compile(dialect=dialect)
    names = compiled.positiontup or ()
    return compiled.string, tuple((name, compiled.binds[name].value) for name in names)


@functools.lru_cache(maxsize=4)
def _store_sql(dialect: sa.Dialect) -> str:
    """The write-back's SQL with the driver's placeholders (PostgreSQL)."""
    return for_client_binding(str(_store(dialect.name).compile(dialect=dialect)))


def _bound(conn: Connection, sql: str, params: dict[str, Any]) -> str:
    """``sql`` with ``params`` bound, by the driver's own quoting (psycopg)."""
    with client_cursor(conn) as cursor:
        return str(cursor.mogrify(sql, params))


def _held(conn: Connection) -> _HeldClocks | None:
    held: _HeldClocks | None = conn.info.get(_HELD)
    # Only in the transaction they were taken in: a pooled connection outlives it.
    if held is None or held.transaction is not conn.get_transaction():
        return None
    return held


def _advance_row(conn: Connection, key: str, now: int) -> int:
    """The clock row's UPDATE (inserting the row if it is missing); returns the new stamp."""
    returning = bool(conn.dialect.update_returning)
    update = _advance(conn.dialect.name, returning)
    params = {"clock_key": key, "clock_now": now}
    if returning and conn.dialect.name == "sqlite":
        rows = _on_sqlite_driver(conn, update, params)
        stamp = rows[0][0] if rows else None
    elif returning:
        stamp = conn.execute(update, params).scalar_one_or_none()
    else:
        result = conn.execute(update, params)
        stamp = None if result.rowcount == 0 else _read(conn, key)
    if stamp is None:
        # A table created before the clock row existed (or the row was removed): start it.
        conn.execute(CLOCK.insert().values(table_name=key, last_ms=now))
        return now
    return int(stamp)


@functools.cache
def _advance(dialect: str, returning: bool) -> sa.Update:
    """The clock UPDATE, built once per dialect with bound parameters.

    Building it per write (with the values inline) cost ~1.3 ms of SQLAlchemy statement
    construction and cache-key work, more than the rest of an insert; see docs/benchmarks.md.
    """
    now = sa.bindparam("clock_now", type_=sa.BigInteger)
    greatest = sa.func.max if dialect == "sqlite" else sa.func.greatest
    advance = greatest(CLOCK.c.last_ms + 1, now, type_=sa.BigInteger)
    where = CLOCK.c.table_name == sa.bindparam("clock_key", type_=sa.String)
    update = CLOCK.update().where(where).values(last_ms=advance)
    return update.returning(CLOCK.c.last_ms) if returning else update


@functools.cache
def advancing() -> sa.CTE:
    """The clock row advanced by ``clock_n`` stamps, as a CTE of the statement that uses them.

    Its one row's ``first_ms`` is the first of the stamps ``first_ms .. first_ms + n - 1``,
    the ones ``n`` calls of ``next_stamp`` would have taken at ``clock_now``. The UPDATE locks
    the row until the transaction ends, as ``next_stamp`` does (PostgreSQL). No row where the
    clock row is missing: a stamp computed from it is then NULL, which the item tables refuse.
    """
    count = sa.bindparam("clock_n", type_=sa.BigInteger)
    now = sa.bindparam("clock_now", type_=sa.BigInteger)
    key = sa.bindparam("clock_key", type_=sa.String)
    one = sa.literal_column("1", sa.BigInteger)  # a literal: the statement's only binds are named
    last = sa.func.greatest(CLOCK.c.last_ms + count, now + count - one, type_=sa.BigInteger)
    return (
        CLOCK.update()
        .where(CLOCK.c.table_name == key)
        .values(last_ms=last)
        .returning((CLOCK.c.last_ms - count + one).label("first_ms"))
        .cte("tablesync_stamps")
    )


def advanced_stamp(stamps: sa.CTE, offset: int) -> ColumnElement[Any]:
    """The stamp ``offset`` after the first of ``stamps`` (``advancing``), as a timestamp."""
    first = sa.select(stamps.c.first_ms).scalar_subquery()
    millis = first + sa.literal_column(str(int(offset)), sa.BigInteger)
    return sa.literal_column("TIMESTAMPTZ 'epoch'", sa.DateTime(timezone=True)) + (
        millis * sa.literal_column("INTERVAL '1 millisecond'", sa.Interval)
    )


@functools.cache
def _store(dialect: str) -> Any:
    """The write-back of a held clock; ``max`` / ``greatest``: the clock never goes back.

    On SQLite an upsert: the row may have been inserted in a savepoint since rolled back.
    On PostgreSQL only rows locked (so found) by ``hold_clocks`` are held.
    """
    last = sa.bindparam("clock_last", type_=sa.BigInteger)
    key = sa.bindparam("clock_key", type_=sa.String)
    if dialect != "sqlite":
        latest = sa.func.greatest(CLOCK.c.last_ms, last, type_=sa.BigInteger)
        return CLOCK.update().where(CLOCK.c.table_name == key).values(last_ms=latest)
    from sqlalchemy.dialects.sqlite import insert

    row = insert(CLOCK).values(table_name=key, last_ms=last)
    newest = sa.func.max(CLOCK.c.last_ms, row.excluded.last_ms)
    return row.on_conflict_do_update(index_elements=[CLOCK.c.table_name], set_={"last_ms": newest})


@functools.cache
def _lock() -> sa.Select[Any]:
    """Lock clock rows for the rest of the transaction (PostgreSQL)."""
    keys = sa.bindparam("clock_keys", expanding=True, type_=sa.String)
    return (
        sa.select(CLOCK.c.table_name, CLOCK.c.last_ms)
        .where(CLOCK.c.table_name.in_(keys))
        .order_by(CLOCK.c.table_name)
        .with_for_update()
    )


@functools.cache
def _lock_one() -> sa.Select[Any]:
    """Lock one clock row for the rest of the transaction (PostgreSQL).

    ``_lock``'s expanding list is rendered anew at every execution (SQLAlchemy's
    "post-compile" step): half of a group's clock lock in CPU.
    """
    key = sa.bindparam("clock_key", type_=sa.String)
    return (
        sa.select(CLOCK.c.table_name, CLOCK.c.last_ms)
        .where(CLOCK.c.table_name == key)
        .with_for_update()
    )


def _read(conn: Connection, key: str) -> int:
    return int(
        conn.execute(sa.select(CLOCK.c.last_ms).where(CLOCK.c.table_name == key)).scalar_one()
    )
