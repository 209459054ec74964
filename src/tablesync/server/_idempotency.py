"""``Idempotency-Key``: a write repeated with the same key gets the first response back.

The response of a successful write is recorded in ``tablesync_idempotency`` in the same
transaction as the write, so either both happen or neither does; a retry whose first response
was lost then receives that response instead of a 409/412. Only writes are recorded: a
rejected request wrote nothing, so its retry is simply evaluated again.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from ._clock import now_ms
from ._errors import BadRequest
from ._schema import IDEMPOTENCY

MAX_KEY_LENGTH = 255
_PURGE_INTERVAL_MS = 60_000


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """A recorded response.

    Attributes:
        fingerprint: the method and item the key was first used for.
        status: its HTTP status.
        body: its body bytes (``None`` for 204).
        etag: its ``ETag`` header, if any.
    """

    fingerprint: str
    status: int
    body: bytes | None
    etag: str | None


def check_key(key: str | None) -> str | None:
    """Validate an ``Idempotency-Key`` header value (printable, at most 255 characters)."""
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise BadRequest("Idempotency-Key must be 1-255 printable characters")
    return key


def lookup(conn: Connection, key: str, table_key: str) -> StoredResponse | None:
    """The response recorded for ``key`` on table ``table_key``, if any."""
    row = conn.execute(_lookup_statement(), {"idem_key": key, "idem_table": table_key}).first()
    if row is None:
        return None
    return StoredResponse(row.fingerprint, row.status, row.body, row.etag)


def claim(conn: Connection, key: str, table_key: str, fingerprint: str) -> StoredResponse | None:
    """Reserve ``key`` in this transaction, or return the response already recorded for it.

    The reservation is a placeholder row inserted first: a concurrent request with the same
    key waits on it (PostgreSQL row lock; SQLite's single writer) until this transaction ends,
    then sees the recorded response, or, if this one rolled back, claims the key itself.
    """
    placeholder = {
        "key": key,
        "table_name": table_key,
        "fingerprint": fingerprint,
        "status": 0,
        "body": None,
        "etag": None,
        "created_ms": now_ms(),
    }
    dialect = conn.dialect.name
    if dialect in ("sqlite", "postgresql"):
        if conn.execute(_claim_statement(dialect), placeholder).first() is not None:
            return None
        return lookup(conn, key, table_key)
    stored = lookup(conn, key, table_key)
    if stored is None:
        conn.execute(IDEMPOTENCY.insert().values(placeholder))
    return stored


def record(conn: Connection, key: str, table_key: str, response: StoredResponse) -> None:
    """Record ``response`` for the key claimed in this (writing) transaction."""
    params = {"idem_key": key, "idem_table": table_key, "idem_status": response.status,
              "idem_body": response.body, "idem_etag": response.etag}  # fmt: skip
    conn.execute(_record_statement(), params)


# The statements are built once, with bound parameters: building them per write (values
# inline) cost more SQLAlchemy construction and cache-key work than running them.


def _where_key() -> list[sa.ColumnElement[bool]]:
    t = IDEMPOTENCY
    return [
        t.c.key == sa.bindparam("idem_key", type_=t.c.key.type),
        t.c.table_name == sa.bindparam("idem_table", type_=t.c.table_name.type),
    ]


@functools.cache
def _lookup_statement() -> sa.Select[Any]:
    t = IDEMPOTENCY
    return sa.select(t.c.fingerprint, t.c.status, t.c.body, t.c.etag).where(*_where_key())


@functools.cache
def _claim_statement(dialect: str) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING RETURNING key``; the values come as parameters."""
    module: Any = sqlite if dialect == "sqlite" else postgresql
    # RETURNING, not rowcount: psycopg reports -1 for this INSERT under SQLAlchemy 2.1.
    return module.insert(IDEMPOTENCY).on_conflict_do_nothing().returning(IDEMPOTENCY.c.key)


@functools.cache
def _record_statement() -> sa.Update:
    t = IDEMPOTENCY
    return (
        t.update()
        .where(*_where_key())
        .values(
            status=sa.bindparam("idem_status", type_=t.c.status.type),
            body=sa.bindparam("idem_body", type_=t.c.body.type),
            etag=sa.bindparam("idem_etag", type_=t.c.etag.type),
        )
    )


class Expiry:
    """Deletes records older than the TTL, at most once a minute per process (opportunistic)."""

    def __init__(self, ttl_ms: int) -> None:
        self._ttl_ms = ttl_ms
        self._next_ms = 0
        self._lock = threading.Lock()

    def due(self) -> bool:
        """Whether this process should purge now (claims the slot when it says yes)."""
        now = now_ms()
        with self._lock:
            if now < self._next_ms:
                return False
            self._next_ms = now + _PURGE_INTERVAL_MS
            return True

    def purge(self, conn: Connection) -> int:
        """Delete the expired records; returns how many."""
        cutoff = now_ms() - self._ttl_ms
        result = conn.execute(IDEMPOTENCY.delete().where(IDEMPOTENCY.c.created_ms < cutoff))
        return int(result.rowcount)
