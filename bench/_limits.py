"""In-process limits for the client benchmark: the same work with no client logic at all.

Each function does the irreducible part of one client measurement straight on ``sqlite3``
(with the store's settings: WAL, ``synchronous=NORMAL``, one ``(id, data)`` table per sync
table), so the ratio client / limit says how much the client adds on top.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

_ITEMS = 'CREATE TABLE IF NOT EXISTS "items_bench" (id TEXT PRIMARY KEY, data TEXT NOT NULL)'
_OPS = (
    "CREATE TABLE IF NOT EXISTS ops (sequence INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT, "
    "tableName TEXT, itemId TEXT, kind INTEGER, state INTEGER, item TEXT, createdAt TEXT, "
    "version INTEGER, UNIQUE (tableName, itemId))"
)
_UPSERT = (
    'INSERT INTO "items_bench" (id, data) VALUES (?, ?) '
    "ON CONFLICT (id) DO UPDATE SET data = excluded.data"
)
_INSERT_JSON = (
    "INSERT INTO \"items_bench\" (id, data) SELECT value ->> 'id', value FROM json_each(?)"
)
_ADD_OPS_JSON = (
    "INSERT INTO ops (id, tableName, itemId, kind, state, item, createdAt, version) "
    "SELECT lower(hex(randomblob(16))), 'bench', value, 1, 0, NULL, ?, 1 FROM json_each(?)"
)
_ADD_OP = (
    "INSERT INTO ops (id, tableName, itemId, kind, state, item, createdAt, version) "
    "VALUES (?, 'bench', ?, 1, 0, NULL, ?, 1)"
)


def connect(path: Path) -> sqlite3.Connection:
    """A connection configured as ``SQLiteStore`` configures its own."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(_ITEMS)
    conn.execute(_OPS)
    return conn


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(start: tuple[float, float]) -> tuple[float, float]:
    """(wall, CPU) seconds since ``start``."""
    return time.perf_counter() - start[0], time.process_time() - start[1]


def apply_pages(conn: sqlite3.Connection, pages: Sequence[bytes]) -> tuple[float, float]:
    """Decode each v3 page and upsert its items, one transaction per page; (wall, CPU) s."""
    start = _clock()
    for page in pages:
        items = orjson.loads(page)["items"]
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(_UPSERT, [(item["id"], orjson.dumps(item).decode()) for item in items])
        conn.execute("COMMIT")
    return _since(start)


def single_writes(conn: sqlite3.Connection, items: Sequence[dict[str, Any]]) -> tuple[float, float]:
    """Each item and its queued operation in its own transaction; (wall, CPU) seconds."""
    start = _clock()
    for item in items:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(_UPSERT, (item["id"], orjson.dumps(item).decode()))
        conn.execute(_ADD_OP, (uuid.uuid4().hex, item["id"], "2026-01-01T00:00:00.000Z"))
        conn.execute("COMMIT")
    return _since(start)


def bulk_write(conn: sqlite3.Connection, items: Sequence[dict[str, Any]]) -> tuple[float, float]:
    """All items and their queued operations in one transaction; (wall, CPU) seconds."""
    start = _clock()
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(_UPSERT, [(item["id"], orjson.dumps(item).decode()) for item in items])
    stamp = "2026-01-01T00:00:00.000Z"
    conn.executemany(_ADD_OP, [(uuid.uuid4().hex, item["id"], stamp) for item in items])
    conn.execute("COMMIT")
    return _since(start)


def bulk_write_json(
    conn: sqlite3.Connection, items: Sequence[dict[str, Any]]
) -> tuple[float, float]:
    """:func:`bulk_write` in two statements over JSON arrays that SQLite splits itself.

    The floor of the bulk insert's technique (``SQLiteStore.insert_items`` and
    ``add_operations`` do the same), where :func:`bulk_write` is the usual way to write rows.
    """
    start = _clock()
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(_INSERT_JSON, (orjson.dumps(items),))
    ids = orjson.dumps([item["id"] for item in items])
    conn.execute(_ADD_OPS_JSON, ("2026-01-01T00:00:00.000Z", ids))
    conn.execute("COMMIT")
    return _since(start)
