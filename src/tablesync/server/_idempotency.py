"""``Idempotency-Key``: a write repeated with the same key gets the first response back.

The response of a successful write is recorded in ``tablesync_idempotency`` in the same
transaction as the write, so either both happen or neither does; a retry whose first response
was lost then receives that response instead of a 409/412. Only writes are recorded: a
rejected request wrote nothing, so its retry is simply evaluated again.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator
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
#: Keys looked up per query (SQLite's bound-parameter limit is far above).
_LOOKUP_CHUNK = 500


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


class BatchKeys:
    """The idempotency keys of one ``$batch`` transaction: no statement per write, one per batch.

    On SQLite the batch's transaction holds the database's only write lock from its BEGIN
    (``IMMEDIATE``), so no other request can record a key while it runs. One query up front
    (:meth:`expect`) finds which of the batch's keys have no record; a write with such a key
    needs no placeholder claim, and its record is kept until the batch commits, when
    :meth:`flush` inserts all of them in one statement. A key used again in the same batch
    is answered from its kept record, exactly as from a stored one. Every other key
    (recorded before, or on another database, where other writers run concurrently) takes
    the usual claim and record. After a commit in the middle of the batch (a schema change)
    other writers may have run, so nothing is assumed any more.
    """

    def __init__(self) -> None:
        self._fresh: set[tuple[str, str]] = set()
        self._unclaimed: set[tuple[str, str]] = set()
        self._kept: dict[tuple[str, str], dict[str, Any]] = {}
        self._writing: tuple[str, str] | None = None

    def expect(self, conn: Connection, keys: list[tuple[str, str]]) -> None:
        """Learn, in one query, which of ``keys`` (key, table) have no record.

        ``conn`` is the batch's, in its transaction; on other databases than SQLite nothing
        is learnt (every key then takes the usual claim).
        """
        if conn.dialect.name != "sqlite" or not keys:
            return
        recorded: set[tuple[str, str]] = set()
        for start in range(0, len(keys), _LOOKUP_CHUNK):
            chunk = list({key for key, _ in keys[start : start + _LOOKUP_CHUNK]})
            rows = conn.execute(_recorded_statement(), {"idem_keys": chunk})
            recorded.update((row.key, row.table_name) for row in rows)
        self._fresh = set(keys) - recorded

    @contextlib.contextmanager
    def write(self) -> Iterator[None]:
        """Around one write of the batch: a write that fails leaves no record behind.

        Its savepoint is rolled back, and so must the record it kept be.
        """
        self._writing = None
        try:
            yield
        except BaseException:
            if self._writing is not None:
                self._kept.pop(self._writing, None)
            raise
        finally:
            self._writing = None

    def flush(self, conn: Connection) -> None:
        """Insert the kept records, in ``conn``'s transaction, just before it commits."""
        rows, self._kept = list(self._kept.values()), {}
        if rows:
            conn.execute(_insert_statement(), rows)

    def forget(self) -> None:
        """The transaction ended: what :meth:`expect` learnt no longer holds."""
        self._fresh.clear()
        self._unclaimed.clear()
        self._kept.clear()

    def claim(
        self, conn: Connection, key: str, table_key: str, fingerprint: str
    ) -> StoredResponse | None:
        """:func:`claim`, without a statement for a key known to have no record."""
        pair = (key, table_key)
        kept = self._kept.get(pair)
        if kept is not None:
            return StoredResponse(kept["fingerprint"], kept["status"], kept["body"], kept["etag"])
        if pair in self._fresh:
            self._fresh.discard(pair)
            self._unclaimed.add(pair)
            return None
        self._unclaimed.discard(pair)
        return claim(conn, key, table_key, fingerprint)

    def record(self, conn: Connection, key: str, table_key: str, response: StoredResponse) -> None:
        """:func:`record`; an unclaimed key's record is kept for :meth:`flush`."""
        pair = (key, table_key)
        if pair not in self._unclaimed:
            record(conn, key, table_key, response)
            return
        self._unclaimed.discard(pair)
        self._writing = pair
        self._kept[pair] = {"key": key, "table_name": table_key,
                            "fingerprint": response.fingerprint, "status": response.status,
                            "body": response.body, "etag": response.etag,
                            "created_ms": now_ms()}  # fmt: skip


class SingleKeys:
    """The idempotency keys of a request on its own: :func:`claim` and :func:`record`."""

    @staticmethod
    def claim(
        conn: Connection, key: str, table_key: str, fingerprint: str
    ) -> StoredResponse | None:
        """:func:`claim`."""
        return claim(conn, key, table_key, fingerprint)

    @staticmethod
    def record(conn: Connection, key: str, table_key: str, response: StoredResponse) -> None:
        """:func:`record`."""
        record(conn, key, table_key, response)


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


@functools.cache
def _recorded_statement() -> sa.Select[Any]:
    t = IDEMPOTENCY
    keys = sa.bindparam("idem_keys", expanding=True, type_=t.c.key.type)
    return sa.select(t.c.key, t.c.table_name).where(t.c.key.in_(keys))


@functools.cache
def _insert_statement() -> sa.Insert:
    return IDEMPOTENCY.insert()


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
