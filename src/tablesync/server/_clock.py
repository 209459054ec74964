"""The ``updatedAt`` clock: one row per table, advanced inside each writing transaction.

``last_ms = max(last_ms + 1, now_ms)`` makes stamps unique and strictly increasing per table.
The clock row stays locked until the writing transaction commits (a PostgreSQL row lock; on
SQLite the single writer lock taken by ``BEGIN IMMEDIATE``), so transactions of one table
commit in stamp order: a reader that saw stamp T never later finds a row stamped at or
below T. See docs/architecture.md.
"""

from __future__ import annotations

import base64
import os
import time

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ._schema import CLOCK


def now_ms() -> int:
    """The process clock in Unix milliseconds."""
    return time.time_ns() // 1_000_000


def new_version() -> str:
    """A fresh opaque version: 12 random bytes in base64 (16 characters, no padding)."""
    return base64.b64encode(os.urandom(12)).decode("ascii")


def next_stamp(conn: Connection, key: str, *, strict: bool = True) -> int:
    """Take the next ``updatedAt`` stamp (Unix ms) of table ``key`` inside ``conn``'s transaction.

    Call it as the last statement before the item write, then commit promptly: the clock row
    stays locked until the transaction ends. With ``strict=False`` the process clock is used
    as is (no lock, no uniqueness): kept only for the comparison benchmark and stress test.
    """
    now = now_ms()
    if not strict:
        return now
    advance = _greatest(conn, CLOCK.c.last_ms + 1, sa.literal(now, sa.BigInteger))
    update = CLOCK.update().where(CLOCK.c.table_name == key).values(last_ms=advance)
    if conn.dialect.update_returning:
        stamp = conn.execute(update.returning(CLOCK.c.last_ms)).scalar_one_or_none()
    else:
        result = conn.execute(update)
        stamp = None if result.rowcount == 0 else _read(conn, key)
    if stamp is None:
        # A table created before the clock row existed (or the row was removed): start it.
        conn.execute(CLOCK.insert().values(table_name=key, last_ms=now))
        return now
    return int(stamp)


def _greatest(
    conn: Connection, left: sa.ColumnElement[int], right: sa.ColumnElement[int]
) -> sa.ColumnElement[int]:
    if conn.dialect.name == "sqlite":
        return sa.func.max(left, right, type_=sa.BigInteger)
    return sa.func.greatest(left, right, type_=sa.BigInteger)


def _read(conn: Connection, key: str) -> int:
    return int(
        conn.execute(sa.select(CLOCK.c.last_ms).where(CLOCK.c.table_name == key)).scalar_one()
    )
