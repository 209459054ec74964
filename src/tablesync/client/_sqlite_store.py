"""``SQLiteStore``: the default local store, one SQLite file (or ``":memory:"``).

Layout: one SQL table per sync table, ``"items_<name>" (id TEXT PRIMARY KEY, data TEXT NOT
NULL)`` with the whole item as JSON (the layout ``tablesync.odata._sqlite`` compiles queries
for), plus the system tables ``__operations``, ``__errors``, ``__config`` and ``__migrations``.

Transactions: one connection, guarded by a lock so that any thread (the async client's too) can
use the store. :meth:`SQLiteStore.atomic` opens ``BEGIN IMMEDIATE`` (the write lock is taken up
front, so a transaction never fails half-way on a lock upgrade) and nests with savepoints. The
journal is WAL with ``synchronous=NORMAL``: a committed transaction survives the death of the
process (it is in the WAL file); only an OS crash or power loss may lose the last commits, never
corrupt the file or split a transaction.
"""

from __future__ import annotations

import datetime as dt
import operator
import os
import re
import secrets
import sqlite3
import threading
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Self

from .._exceptions import QueryError, StoreError, UsageError
from ..odata._sqlite import compile_order_by, compile_where
from ..odata._typing import is_too_complex_error
from ..protocol import dumps, dumps_texts, format_datetime, loads, new_id, parse_datetime
from ._migrations import CREATE_MIGRATIONS_TABLE, MIGRATIONS_TABLE, STORE_MIGRATIONS, record
from ._store import Operation, OperationError, OperationKind, OperationState

if TYPE_CHECKING:
    from ..odata import Query
    from ..odata.ast import Expr

_TABLE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}")
_ITEM_PREFIX = "items_"
_OP_COLUMNS = "id, sequence, tableName, itemId, kind, state, version, item, createdAt"
_ERROR_COLUMNS = (
    "e.id, e.operationVersion, e.operationKind, e.tableName, e.itemId, e.httpStatus, e.item, "
    "e.serverItem, e.rawResult, e.extra"
)
#: Keep each statement well under SQLite's default limit of bound parameters.
_CHUNK = 500
_NO_LIMIT = -1
#: The id of a ``json_each`` row's object (``json_extract``: SQLite before 3.38 has no ``->>``).
_JSON_ID = "json_extract(value, '$.id')"


def table_key(name: str) -> str:
    """The normalised (lower-case) name of a sync table; raises ``StoreError`` when invalid.

    Sync table names are matched case-insensitively, as the servers do. They must be 1 to 128
    characters of ``A-Z a-z 0-9 _ . -`` and must not start with ``.`` or ``-``.
    """
    if not isinstance(name, str) or _TABLE_NAME.fullmatch(name) is None:
        raise StoreError(
            f"invalid table name {name!r}: use 1-128 letters, digits, '_', '.' or '-', "
            "starting with a letter, digit or '_'"
        )
    return name.lower()


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _json(value: Any) -> str:
    return dumps(value).decode()


def _chunks(values: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


class SQLiteStore:
    """The local store in one SQLite file; implements :class:`~tablesync.client.LocalStore`.

    ```python
    from tablesync import Client, SQLiteStore

    with Client("https://example.org", store=SQLiteStore("app.db")) as client:
        client.sync_table("todoitem").insert({"text": "milk"})
    ```

    Args:
        path: the database file, created if missing; ``":memory:"`` for a throw-away store.
        timeout: seconds to wait for another connection's write lock before failing.

    Raises:
        StoreError: the file cannot be opened, is not a store, or needs a newer tablesync.
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 5.0) -> None:
        self._path = os.fspath(path)
        self._timeout = timeout
        self._lock = threading.RLock()
        self._depth = 0
        self._tables: set[str] = set()
        self._dbapi: Any = sqlite3
        self._conn: Any = None
        self._open()

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def path(self) -> str:
        """The database path as given."""
        return self._path

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._conn is None

    def _connect(self) -> Any:
        """Open the DB-API connection; subclasses override this (and only this) to change it."""
        return sqlite3.connect(
            self._path, timeout=self._timeout, isolation_level=None, check_same_thread=False
        )

    def _open(self) -> None:
        try:
            self._conn = self._connect()
            self._configure()
            self._migrate()
            self._load_tables()
        except BaseException as exc:
            self._discard_connection()
            if isinstance(exc, self._dbapi.Error):
                raise StoreError(f"cannot open the store {self._path!r}: {exc}") from exc
            raise

    def _discard_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _configure(self) -> None:
        # WAL + NORMAL: commits survive a killed process and cost no fsync (see module doc).
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")

    def _migrate(self) -> None:
        self._conn.execute(CREATE_MIGRATIONS_TABLE)
        with self.atomic():
            rows = self._conn.execute(f"SELECT name FROM {MIGRATIONS_TABLE}").fetchall()
            for migration in STORE_MIGRATIONS.pending({row[0] for row in rows}):
                migration.apply(self._conn)
                record(self._conn, migration)

    def _load_tables(self) -> None:
        rows = self._conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND substr(name, 1, ?) = ?",
            (len(_ITEM_PREFIX), _ITEM_PREFIX),
        ).fetchall()
        self._tables = {row[0][len(_ITEM_PREFIX) :] for row in rows}

    def migrations(self) -> list[str]:
        """The names of the migrations applied to this file, in the order they ran."""
        return [row[0] for row in self._query(f"SELECT name FROM {MIGRATIONS_TABLE} ORDER BY 1")]

    def close(self) -> None:
        """Close the database; later calls raise ``UsageError``. Closing twice is harmless."""
        with self._lock:
            if self._depth:
                raise UsageError("cannot close the store inside an atomic() block")
            self._discard_connection()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- transactions ------------------------------------------------------------------------
    @contextmanager
    def atomic(self) -> Iterator[None]:
        """A write transaction; nested blocks are savepoints; any exception rolls back.

        The outermost block holds the store's lock (and SQLite's write lock, ``BEGIN
        IMMEDIATE``) until it ends, so other threads wait for it rather than interleave.
        """
        with self._lock:
            conn = self._connection()
            savepoint = f"sp{self._depth}" if self._depth else None
            self._run(conn, f"SAVEPOINT {savepoint}" if savepoint else "BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield
            except BaseException:
                self._depth -= 1
                self._rollback(conn, savepoint)
                raise
            self._depth -= 1
            self._commit(conn, savepoint)

    def _run(self, conn: Any, sql: str) -> None:
        try:
            conn.execute(sql)
        except self._dbapi.Error as exc:
            raise StoreError(f"the store could not start a transaction: {exc}") from exc

    def _rollback(self, conn: Any, savepoint: str | None) -> None:
        try:
            if savepoint:
                conn.execute(f"ROLLBACK TO {savepoint}")
                conn.execute(f"RELEASE {savepoint}")
            elif conn.in_transaction:
                conn.execute("ROLLBACK")
        finally:
            # A rolled-back CREATE TABLE must not stay in the cache of known tables.
            self._load_tables()

    def _commit(self, conn: Any, savepoint: str | None) -> None:
        try:
            conn.execute(f"RELEASE {savepoint}" if savepoint else "COMMIT")
        except self._dbapi.Error as exc:
            self._rollback(conn, savepoint)
            raise StoreError(f"the store could not commit: {exc}") from exc

    def _connection(self) -> Any:
        if self._conn is None:
            raise UsageError("the store is closed")
        return self._conn

    # -- low-level statements ----------------------------------------------------------------
    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            conn = self._connection()
            try:
                return list(conn.execute(sql, params).fetchall())
            except self._dbapi.Error as exc:
                raise _store_error("read", exc) from exc

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one write statement (atomic on its own); returns the changed row count."""
        with self._lock:
            conn = self._connection()
            try:
                return int(conn.execute(sql, params).rowcount)
            except self._dbapi.Error as exc:
                raise _store_error("write", exc) from exc

    def _execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run a write statement for each row, all or none."""
        if len(rows) == 1:
            # One statement is atomic by itself: skip the savepoint (local writes are hot).
            self._execute(sql, rows[0])
            return
        with self.atomic():
            try:
                self._conn.executemany(sql, rows)
            except self._dbapi.Error as exc:
                raise StoreError(f"the store could not write: {exc}") from exc

    def _insert_returning_rowid(self, sql: str, params: Sequence[Any]) -> int:
        with self._lock:
            conn = self._connection()
            try:
                return int(conn.execute(sql, params).lastrowid)
            except self._dbapi.Error as exc:
                raise StoreError(f"the store could not write: {exc}") from exc

    # -- item tables -------------------------------------------------------------------------
    def _has_table(self, key: str) -> bool:
        if key in self._tables:
            return True
        # Another connection (another process) may have created it since we looked.
        rows = self._query(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (_ITEM_PREFIX + key,)
        )
        if rows:
            self._tables.add(key)
        return bool(rows)

    def _ensure_table(self, key: str) -> str:
        name = _quote(_ITEM_PREFIX + key)
        if key not in self._tables:
            self._execute(
                f"CREATE TABLE IF NOT EXISTS {name} (id TEXT PRIMARY KEY, data TEXT NOT NULL)"
            )
            self._tables.add(key)
        return name

    def table_names(self) -> list[str]:
        """The (normalised) names of the sync tables that have a local table, sorted."""
        with self._lock:
            self._connection()
            self._load_tables()
            return sorted(self._tables)

    # -- items -------------------------------------------------------------------------------
    def get_item(self, table: str, item_id: str) -> dict[str, Any] | None:
        key = table_key(table)
        if not self._has_table(key):
            return None
        rows = self._query(
            f"SELECT data FROM {_quote(_ITEM_PREFIX + key)} WHERE id = ?", (item_id,)
        )
        return _decode_item(rows[0][0]) if rows else None

    def get_items(self, table: str, item_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The stored items among ``item_ids``, keyed by id (missing ids are left out)."""
        key = table_key(table)
        ids = list(dict.fromkeys(item_ids))
        if not ids or not self._has_table(key):
            return {}
        found: dict[str, dict[str, Any]] = {}
        for chunk in _chunks(ids):
            marks = ", ".join("?" * len(chunk))
            sql = f"SELECT id, data FROM {_quote(_ITEM_PREFIX + key)} WHERE id IN ({marks})"
            found.update((row[0], _decode_item(row[1])) for row in self._query(sql, chunk))
        return found

    def query_items(self, table: str, query: Query | None = None) -> list[dict[str, Any]]:
        key = table_key(table)
        if not self._has_table(key):
            return []
        where, params = _where(query.filter if query else None)
        order = _order_by(query.order_by if query else ())
        top = _NO_LIMIT if query is None or query.top is None else query.top
        skip = 0 if query is None or query.skip is None else query.skip
        name = _quote(_ITEM_PREFIX + key)
        sql = f"SELECT data FROM {name}{where} ORDER BY {order} LIMIT ? OFFSET ?"
        items = [_decode_item(row[0]) for row in self._query(sql, [*params, top, skip])]
        select = query.select if query else ()
        if select:
            items = [{name: item[name] for name in select if name in item} for item in items]
        return items

    def count_items(self, table: str, query: Query | None = None) -> int:
        key = table_key(table)
        if not self._has_table(key):
            return 0
        where, params = _where(query.filter if query else None)
        rows = self._query(f"SELECT count(*) FROM {_quote(_ITEM_PREFIX + key)}{where}", params)
        return int(rows[0][0])

    def upsert_items(self, table: str, items: Iterable[dict[str, Any]]) -> None:
        rows = _item_rows(items)
        if rows:
            name = self._ensure_table(table_key(table))
            self._execute_many(
                f"INSERT INTO {name} (id, data) VALUES (?, ?) "
                "ON CONFLICT (id) DO UPDATE SET data = excluded.data",
                rows,
            )

    def upsert_json_items(
        self, table: str, text: str, path: str, leave_out: Collection[str] = ()
    ) -> int:
        """Upsert the objects of the JSON array at ``path`` of ``text`` in one statement.

        SQLite reads the page and copies each object's text itself, in C and without Python's
        lock: per row, encoding the decoded item again and binding it cost the client more
        than SQLite's insert (see ``JsonPageStore`` in ``_store``).
        """
        name = self._ensure_table(table_key(table))
        where, params = "true", [text, path]
        if leave_out:
            where = f"{_JSON_ID} NOT IN (SELECT value FROM json_each(?))"
            params.append(_json(list(leave_out)))
        return self._execute(
            f"INSERT INTO {name} (id, data) SELECT {_JSON_ID}, value FROM json_each(?, ?) "
            # The WHERE also tells SQLite's parser the ON CONFLICT is the upsert's.
            f"WHERE {where} ON CONFLICT (id) DO UPDATE SET data = excluded.data",
            params,
        )

    def insert_items(self, table: str, items: Iterable[dict[str, Any]]) -> None:
        """Insert new items; raises ``StoreError`` (and inserts none) if an id exists.

        The items go to SQLite as one JSON array that it splits itself, as pulled pages do:
        one statement instead of one bound row per item (a third of a bulk insert's CPU).
        """
        items = list(items)
        if items:
            _item_ids(items)
            name = self._ensure_table(table_key(table))
            self._execute(
                f"INSERT INTO {name} (id, data) SELECT {_JSON_ID}, value FROM json_each(?)",
                (_json(items),),
            )

    def delete_items(self, table: str, item_ids: Iterable[str]) -> None:
        key = table_key(table)
        rows = [(item_id,) for item_id in item_ids]
        if rows and self._has_table(key):
            self._execute_many(f"DELETE FROM {_quote(_ITEM_PREFIX + key)} WHERE id = ?", rows)

    def delete_matching(self, table: str, filter: Expr | None = None) -> int:
        key = table_key(table)
        if not self._has_table(key):
            return 0
        where, params = _where(filter)
        return self._execute(f"DELETE FROM {_quote(_ITEM_PREFIX + key)}{where}", params)

    # -- the operation queue -----------------------------------------------------------------
    def get_operation(self, table: str, item_id: str) -> Operation | None:
        rows = self._query(
            f"SELECT {_OP_COLUMNS} FROM __operations WHERE tableName = ? AND itemId = ?",
            (table_key(table), item_id),
        )
        return _operation(rows[0]) if rows else None

    def get_operation_by_id(self, operation_id: str) -> Operation | None:
        rows = self._query(f"SELECT {_OP_COLUMNS} FROM __operations WHERE id = ?", (operation_id,))
        return _operation(rows[0]) if rows else None

    def operations_for_items(self, table: str, item_ids: Iterable[str]) -> dict[str, Operation]:
        """The queued operations of the given items, keyed by item id."""
        key = table_key(table)
        ids = list(dict.fromkeys(item_ids))
        found: dict[str, Operation] = {}
        for chunk in _chunks(ids):
            marks = ", ".join("?" * len(chunk))
            sql = (
                f"SELECT {_OP_COLUMNS} FROM __operations "
                f"WHERE tableName = ? AND itemId IN ({marks})"
            )
            rows = self._query(sql, [key, *chunk])
            found.update((op.item_id, op) for op in map(_operation, rows))
        return found

    def add_operation(
        self, table: str, item_id: str, kind: OperationKind, item: dict[str, Any] | None
    ) -> Operation:
        key = table_key(table)
        op_id, created = new_id(), dt.datetime.now(dt.UTC)
        try:
            sequence = self._insert_returning_rowid(
                "INSERT INTO __operations (id, kind, state, tableName, itemId, item, createdAt, "
                "version) VALUES (?, ?, ?, ?, ?, ?, ?, 1)",
                (op_id, int(kind), int(OperationState.PENDING), key, item_id,
                 None if item is None else _json(item), format_datetime(created)),
            )  # fmt: skip
        except StoreError as exc:
            if isinstance(exc.__cause__, self._dbapi.IntegrityError):
                msg = f"an operation for item {item_id!r} of {key!r} is already queued"
                raise StoreError(msg) from exc
            raise
        return Operation(
            op_id, sequence, key, item_id, kind, OperationState.PENDING, 1, item, created
        )

    def add_operations(
        self, table: str, entries: Sequence[tuple[str, OperationKind, dict[str, Any] | None]]
    ) -> None:
        """Append many operations ``(item_id, kind, item)`` at once (all or none), in order.

        One statement over a JSON array: binding a row per operation cost three times as much.
        The operations' ids are one random 96-bit prefix and a counter (32 hex digits, as
        :func:`new_id`'s), so they enter the unique index of ids in order.
        """
        if not entries:
            return
        kinds = {kind for _, kind, _ in entries}
        array: list[Any]
        if len(kinds) == 1 and all(item is None for _, _, item in entries):
            # A JSON array of the ids alone (what insert_many queues): reading the fields of
            # nested arrays cost a third of the statement.
            fields, array = f"{int(kinds.pop())}, value, NULL", [entry[0] for entry in entries]
        else:
            fields = "value ->> 1, value ->> 0, value ->> 2"
            array = [[item_id, int(kind), item] for item_id, kind, item in entries]
        self._execute(
            "INSERT INTO __operations (id, kind, itemId, item, state, tableName, createdAt, "
            f"version) SELECT ? || printf('%08x', key), {fields}, ?, ?, ?, 1 "
            "FROM json_each(?) ORDER BY key",  # the array's order is the queue's
            (secrets.token_hex(12), int(OperationState.PENDING), table_key(table),
             format_datetime(dt.datetime.now(dt.UTC)), _json(array)),
        )  # fmt: skip

    def update_operation(self, operation: Operation) -> None:
        changed = self._execute(
            "UPDATE __operations SET kind = ?, state = ?, item = ?, version = ? WHERE id = ?",
            (int(operation.kind), int(operation.state),
             None if operation.item is None else _json(operation.item),
             operation.version, operation.id),
        )  # fmt: skip
        if not changed:
            raise StoreError(f"operation {operation.id} is no longer queued")

    def set_operation_state(self, operation_id: str, state: OperationState) -> bool:
        """Set only the state of a queued operation; False if it is no longer queued."""
        sql = "UPDATE __operations SET state = ? WHERE id = ?"
        return self._execute(sql, (int(state), operation_id)) > 0

    def delete_operation(self, operation_id: str, *, version: int | None = None) -> bool:
        if version is None:
            return self._execute("DELETE FROM __operations WHERE id = ?", (operation_id,)) > 0
        sql = "DELETE FROM __operations WHERE id = ? AND version = ?"
        return self._execute(sql, (operation_id, version)) > 0

    def operations(
        self, *, tables: Sequence[str] | None = None, after_sequence: int = 0, limit: int = 1000
    ) -> list[Operation]:
        sql = f"SELECT {_OP_COLUMNS} FROM __operations WHERE sequence > ?"
        params: list[Any] = [after_sequence]
        if tables is not None:
            keys = sorted({table_key(table) for table in tables})
            sql += f" AND tableName IN ({', '.join('?' * len(keys))})"
            params.extend(keys)
        rows = self._query(sql + " ORDER BY sequence LIMIT ?", [*params, limit])
        return [_operation(row) for row in rows]

    def count_operations(self, table: str | None = None) -> int:
        if table is None:
            rows = self._query("SELECT count(*) FROM __operations")
        else:
            sql = "SELECT count(*) FROM __operations WHERE tableName = ?"
            rows = self._query(sql, (table_key(table),))
        return int(rows[0][0])

    def delete_operations(self, table: str) -> int:
        key = table_key(table)
        with self.atomic():
            self._execute("DELETE FROM __errors WHERE tableName = ?", (key,))
            return self._execute("DELETE FROM __operations WHERE tableName = ?", (key,))

    # -- push errors -------------------------------------------------------------------------
    def save_error(self, error: OperationError) -> None:
        self._execute(
            "INSERT OR REPLACE INTO __errors (id, operationVersion, operationKind, tableName, "
            "itemId, httpStatus, item, serverItem, rawResult, extra) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (error.operation_id, error.operation_version, int(error.kind), table_key(error.table),
             error.item_id, error.status, _json_or_none(error.item),
             _json_or_none(error.server_item), error.raw_result, _json(error.extra)),
        )  # fmt: skip

    def errors(self) -> list[OperationError]:
        rows = self._query(
            f"SELECT {_ERROR_COLUMNS} FROM __errors e LEFT JOIN __operations o ON o.id = e.id "
            "ORDER BY o.sequence IS NULL, o.sequence, e.rowid"
        )
        return [_operation_error(row) for row in rows]

    def delete_error(self, operation_id: str) -> None:
        self._execute("DELETE FROM __errors WHERE id = ?", (operation_id,))

    def delete_errors(self) -> int:
        """Forget every recorded error; returns how many there were."""
        return self._execute("DELETE FROM __errors")

    # -- configuration and delta tokens ------------------------------------------------------
    def get_config(self, key: str) -> str | None:
        rows = self._query("SELECT value FROM __config WHERE id = ?", (key,))
        return str(rows[0][0]) if rows else None

    def set_config(self, key: str, value: str) -> None:
        self._execute(
            "INSERT INTO __config (id, value) VALUES (?, ?) "
            "ON CONFLICT (id) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def delete_config(self, key: str) -> None:
        self._execute("DELETE FROM __config WHERE id = ?", (key,))


# -- rows <-> values -------------------------------------------------------------------------
def _item_rows(items: Iterable[dict[str, Any]]) -> list[tuple[str, str]]:
    """``(id, JSON text)`` of each item; ``StoreError`` for an item without a usable id."""
    items = list(items)
    return list(zip(_item_ids(items), dumps_texts(items), strict=True))


def _item_ids(items: list[dict[str, Any]]) -> list[str]:
    """The id of each item; ``StoreError`` for an item without a usable id.

    The ids of a list of dicts are checked at once (C-level calls): per item, the check cost
    a pulled row as much as its JSON encoding.
    """
    if set(map(type, items)) <= {dict}:
        ids: list[Any] = list(map(_GET_ID, items))
        if set(map(type, ids)) <= {str} and "" not in ids:
            return ids
    return list(map(_item_id, items))


_GET_ID = operator.methodcaller("get", "id")


def _item_id(item: dict[str, Any]) -> str:
    item_id = item.get("id") if isinstance(item, dict) else None
    if not isinstance(item_id, str) or not item_id:
        raise StoreError(f"a stored item needs a non-empty string 'id', got {item_id!r}")
    return item_id


def _decode_item(data: str) -> dict[str, Any]:
    item: dict[str, Any] = loads(data)
    return item


def _json_or_none(value: Any) -> str | None:
    return None if value is None else _json(value)


def _operation(row: Sequence[Any]) -> Operation:
    op_id, sequence, table, item_id, kind, state, version, item, created = row
    return Operation(
        id=op_id,
        sequence=sequence,
        table=table,
        item_id=item_id,
        kind=OperationKind(kind),
        state=OperationState(state),
        version=version,
        item=None if item is None else _decode_item(item),
        created_at=parse_datetime(created),
    )


def _operation_error(row: Sequence[Any]) -> OperationError:
    op_id, version, kind, table, item_id, status, item, server_item, raw, extra = row
    return OperationError(
        operation_id=op_id,
        operation_version=version,
        kind=OperationKind(kind),
        table=table,
        item_id=item_id,
        status=status,
        item=None if item is None else loads(item),
        server_item=None if server_item is None else loads(server_item),
        raw_result=raw,
        extra=loads(extra),
    )


def _store_error(action: str, exc: Exception) -> Exception:
    """The error to raise for a failed statement: the caller's query, or the store."""
    if is_too_complex_error(exc):
        return QueryError(f"the filter is too complex for the local database ({exc})")
    return StoreError(f"the store could not {action}: {exc}")


def _where(filter: Expr | None) -> tuple[str, list[Any]]:
    if filter is None:
        return "", []
    sql, params = compile_where(filter)
    return f" WHERE {sql}", list(params)


def _order_by(terms: Sequence[Any]) -> str:
    # The id tie-break makes skip/top paging stable, as the servers do.
    if not terms:
        return "id"
    return f"{compile_order_by(terms)}, id"
