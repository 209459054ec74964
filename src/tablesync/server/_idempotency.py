"""``Idempotency-Key``: a write repeated with the same key gets the first response back.

The response of a successful write is recorded in ``tablesync_idempotency`` in the same
transaction as the write, so either both happen or neither does; a retry whose first response
was lost then receives that response instead of a 409/412. Only writes are recorded: a
rejected request wrote nothing, so its retry is simply evaluated again.
"""

from __future__ import annotations

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
    t = IDEMPOTENCY
    row = conn.execute(
        sa.select(t.c.fingerprint, t.c.status, t.c.body, t.c.etag).where(
            t.c.key == key, t.c.table_name == table_key
        )
    ).first()
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
        module: Any = sqlite if dialect == "sqlite" else postgresql
        stmt = module.insert(IDEMPOTENCY).values(placeholder).on_conflict_do_nothing()
        # RETURNING, not rowcount: psycopg reports -1 for this INSERT under SQLAlchemy 2.1.
        if conn.execute(stmt.returning(IDEMPOTENCY.c.key)).first() is not None:
            return None
        return lookup(conn, key, table_key)
    stored = lookup(conn, key, table_key)
    if stored is None:
        conn.execute(IDEMPOTENCY.insert().values(placeholder))
    return stored


def record(conn: Connection, key: str, table_key: str, response: StoredResponse) -> None:
    """Record ``response`` for the key claimed in this (writing) transaction."""
    t = IDEMPOTENCY
    conn.execute(
        t.update()
        .where(t.c.key == key, t.c.table_name == table_key)
        .values(status=response.status, body=response.body, etag=response.etag)
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
