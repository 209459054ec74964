"""Engines: URL mapping, SQLite in WAL with ``BEGIN IMMEDIATE`` writes, pool sizing."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

from .._exceptions import ServerConfigError

if TYPE_CHECKING:
    import psycopg

#: Execution option selecting how SQLite opens a transaction (``DEFERRED`` or ``IMMEDIATE``).
BEGIN_OPTION = "tablesync_sqlite_begin"
SQLITE_BUSY_TIMEOUT_MS = 30_000
#: SQLite's page cache per connection, in KiB (its default is 2,000). A page query that
#: walks the id index reads each row's page through the cache; with the default, a
#: 100,000-row table did not fit and every miss was a read from the OS: 2.7 ms of CPU per
#: 50-row query against 1.5 ms with 64 MiB (docs/benchmarks.md). SQLite work runs on the
#: event loop one statement at a time, so a process keeps one or two connections open, and a
#: cache holds only pages read. Memory-mapping the file (``mmap_size``) was as fast, but an
#: I/O error then kills the process (SIGBUS) instead of failing the statement.
SQLITE_CACHE_KIB = 64 * 1024
#: A pooled connection idle for this long is pinged before use (see _ping_idle_connections).
PING_AFTER_IDLE_S = 2.0
#: Attribute of an engine: the timeout ``limit_statements`` gave its statements, in ms.
_STATEMENT_TIMEOUT = "_tablesync_statement_timeout_ms"
_RETURNED = "tablesync_returned_at"


def normalize_url(url: str) -> str:
    """Map ``postgresql://`` / ``postgres://`` to the psycopg 3 driver; leave others as given."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(database: str | Engine, *, pool_size: int = 8, max_overflow: int = 4) -> Engine:
    """An engine for ``database`` (a URL or an existing engine), prepared for tablesync.

    SQLite gets WAL, a busy timeout and explicit transactions (so writers can take the lock up
    front with ``BEGIN IMMEDIATE``). The pool keeps ``pool_size`` connections open, as many
    as the threads that run statements at once (``_runner``: 4 reading, 4 writing), and can
    grow by ``max_overflow`` for the rest (readiness probes, purges).
    """
    if isinstance(database, Engine):
        engine = database
    else:
        engine = _create(normalize_url(database), pool_size, max_overflow)
    if engine.dialect.name == "sqlite":
        _prepare_sqlite(engine)
    return engine


def _create(url: str, pool_size: int, max_overflow: int) -> Engine:
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise ServerConfigError(f"invalid database URL {url!r}: {exc}") from exc
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        if parsed.database in (None, "", ":memory:"):
            # One shared connection: each new connection to :memory: is a different database.
            kwargs["poolclass"] = sa.pool.StaticPool
        else:
            kwargs.update(pool_size=pool_size, max_overflow=max_overflow)
    else:
        kwargs.update(pool_size=pool_size, max_overflow=max_overflow)
    try:
        engine = sa.create_engine(parsed, **kwargs)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError) as exc:
        raise ServerConfigError(f"cannot use database URL {url!r}: {exc}") from exc
    if parsed.get_backend_name() != "sqlite":
        _ping_idle_connections(engine)
    return engine


def _ping_idle_connections(engine: Engine) -> None:
    """Check a pooled connection that sat idle before handing it out; replace it if dead.

    ``pool_pre_ping`` does this on every checkout: one more round trip per request, a tenth of
    a PostgreSQL read by id. A connection in steady use cannot have been dropped unnoticed by
    an idle timeout, and one broken since (a database restart) fails its statement, which
    invalidates the pool; so only connections idle for ``PING_AFTER_IDLE_S`` are pinged.
    """

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info[_RETURNED] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        returned = record.info.get(_RETURNED)
        if returned is None or time.monotonic() - returned < PING_AFTER_IDLE_S:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # any failure: the pool retries with a new connection
            raise sa.exc.DisconnectionError(f"an idle pooled connection is dead: {exc}") from exc


def _prepare_sqlite(engine: Engine) -> None:
    if getattr(engine, "_tablesync_prepared", False):
        return
    engine._tablesync_prepared = True  # type: ignore[attr-defined]

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite's own BEGIN handling cannot emit BEGIN IMMEDIATE; take it over.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        mode = connection.get_execution_options().get(BEGIN_OPTION, "DEFERRED")
        execute_on_driver(connection, f"BEGIN {mode}")


def reader(engine: Engine) -> Engine:
    """The same engine (and pool) for statements that only read.

    On PostgreSQL they run in autocommit: no ``BEGIN`` and ``ROLLBACK`` round trips around
    them, and nothing changes, as READ COMMITTED gives each statement its own snapshot anyway.
    SQLite keeps its ``BEGIN DEFERRED``: a page and its count share one snapshot there.
    """
    if engine.dialect.name == "sqlite":
        return engine
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def writer(engine: Engine) -> Engine:
    """The same engine (and pool) for writes.

    Its transactions take SQLite's write lock at BEGIN. On PostgreSQL through psycopg 3 its
    connections can hold statements back (``defer``); the hooks that send them are on this
    engine only, so reads do not pay for SQLAlchemy's event dispatch.
    """
    writes = engine.execution_options(**{BEGIN_OPTION: "IMMEDIATE"})
    if engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg":
        _send_deferred_first(writes)
    return writes


def limit_statements(engine: Engine, timeout_ms: int) -> None:
    """Cancel any statement running past ``timeout_ms`` (the request then gets a 503).

    A hostile or merely unlucky query (a filter no index serves) then frees its connection
    instead of holding it. On SQLite it matters more: statements run on the event loop
    (``_runner``), so a long one holds up every request of its process.
    """
    setattr(engine, _STATEMENT_TIMEOUT, timeout_ms)
    if engine.dialect.name == "postgresql":
        _postgres_statement_timeout(engine, timeout_ms)
    elif engine.dialect.name == "sqlite":
        _sqlite_statement_timeout(engine, timeout_ms / 1000)


def statement_timeout_ms(engine: Engine) -> int:
    """The statement timeout ``limit_statements`` set on ``engine``; 0 for none."""
    return int(getattr(engine, _STATEMENT_TIMEOUT, 0))


def _postgres_statement_timeout(engine: Engine, timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"SET statement_timeout = {int(timeout_ms)}")
        cursor.close()
        # psycopg opens a transaction for SET; commit so the pool hands out a clean one.
        dbapi_connection.commit()


class _Deadline:
    """When the running statement of one SQLite connection must stop."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.at = float("inf")

    def start(self) -> None:
        """A statement starts now: it may run for ``timeout_s``."""
        self.at = time.monotonic() + self.timeout_s

    def passed(self) -> bool:
        # SQLite's progress handler: a true result interrupts the statement.
        return time.monotonic() > self.at


_DEADLINE = "tablesync_deadline"
#: SQLite virtual-machine steps between two deadline checks (a few microseconds of work).
_CHECK_EVERY = 10_000


def _sqlite_statement_timeout(engine: Engine, timeout_s: float) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, record: Any) -> None:
        deadline = record.info[_DEADLINE] = _Deadline(timeout_s)
        dbapi_connection.set_progress_handler(deadline.passed, _CHECK_EVERY)

    @event.listens_for(engine, "before_cursor_execute")
    def _on_execute(conn: sa.Connection, *_args: Any) -> None:
        _start_statement(conn)


def _start_statement(conn: sa.Connection) -> None:
    """Start the statement timeout's clock for a statement sent past SQLAlchemy (SQLite).

    SQLAlchemy's ``before_cursor_execute`` hook starts it for every statement SQLAlchemy
    executes; a statement sent on the driver's own connection (``execute_on_driver``)
    must start it itself, or it would run under the previous statement's deadline (and be
    interrupted early, or never). Without ``limit_statements`` there is no clock.
    """
    deadline: _Deadline | None = conn.info.get(_DEADLINE)
    if deadline is not None:
        deadline.start()


def execute_on_driver(conn: sa.Connection, sql: str, params: Sequence[Any] = ()) -> list[Any]:
    """Run ``sql`` on ``conn``'s SQLite driver connection; its rows (none for most).

    For the statements a group commit runs inside its turn, which every other process's
    writers wait for: a write's ``SAVEPOINT``, the clock's UPDATE and write-back, ``BEGIN``.
    SQLAlchemy's execution context is most of their cost: a SAVEPOINT took 8.6 µs through
    it and 1.3 µs here, the clock's UPDATE 25.6 and 5.4 µs (bench/insert_statements.py).
    As for any statement, the statement timeout's clock is started and a driver error is
    raised as SQLAlchemy would raise it. The parameters are passed as they are: the
    callers' are integers and strings, which need no processing.
    """
    import sqlite3

    _start_statement(conn)
    try:
        cursor = conn.connection.dbapi_connection.execute(sql, params)  # type: ignore[union-attr]
        return list(cursor.fetchall())
    except sqlite3.Error as exc:
        raise sa.exc.DBAPIError.instance(
            sql, params, exc, sqlite3.Error, dialect=conn.dialect
        ) from exc


#: ``Connection.info`` key: what ``defer`` holds back (a ``_Deferred``).
_DEFERRED = "tablesync_deferred_sql"
#: Attribute of a ``writer`` engine whose connections send what ``defer`` holds back.
_DEFERRING = "_tablesync_deferring"


class _Deferred:
    """Statements held back for ``conn``'s current transaction, and whether they failed."""

    __slots__ = ("failed", "statements", "transaction")

    def __init__(self, transaction: Any) -> None:
        self.transaction = transaction
        self.statements: list[str] = []
        self.failed = False


def for_client_binding(sql: str) -> str:
    """Compiled PostgreSQL SQL, ready for psycopg to bind on the client (held-back statements).

    ``%(x)s::BIGINT`` becomes ``(%(x)s)::BIGINT``. Bound on the client, a value is a literal:
    ``-9223372036854775808::BIGINT`` is the cast of ``9223372036854775808``, negated, and the
    cast overflows; ``(-9223372036854775808)::BIGINT`` is the smallest bigint, as the
    server-side binding of every other statement receives it.
    """
    return re.sub(r"%\((\w+)\)s", r"(%(\1)s)", sql)


def client_cursor(conn: sa.Connection) -> psycopg.ClientCursor[Any]:
    """A cursor of ``conn``'s psycopg connection that binds values on the client.

    For statements sent in one query with what ``defer`` held back: the simple query
    protocol carries several statements, but no server-side parameters, so values go into
    the text (``mogrify``, after ``for_client_binding``). Close it after use (``with``).
    """
    import psycopg  # the driver of the connections that defer (``can_defer``)

    dbapi_connection: Any = conn.connection.dbapi_connection
    return psycopg.ClientCursor(dbapi_connection)


def can_defer(conn: sa.Connection | Engine) -> bool:
    """Whether ``defer`` works on ``conn``: one of a ``writer`` engine on psycopg 3."""
    return bool(getattr(conn.engine, _DEFERRING, False))


def defer(conn: sa.Connection, *statements: str) -> None:
    """Send ``statements`` in one query with the next statement ``conn`` executes.

    For statements without parameters whose results nobody reads (a write's savepoint). The
    insert of a group commit sends them in its own query (``take_deferred``): one round trip
    per write where there were two, and one GIL hand-over fewer between the group's worker
    thread and the event loop (docs/benchmarks.md). Any other statement sends them first, in
    one query of their own. An error of theirs is raised by that next statement (see
    ``settle_deferred``). Only for ``conn``'s current transaction: another ignores them.
    """
    held = _held(conn)
    if held is None:
        held = conn.info[_DEFERRED] = _Deferred(conn.get_transaction())
    held.statements.extend(statements)


def take_deferred(conn: sa.Connection) -> str:
    """The held-back statements as one text, for the caller to send first in its own query.

    They then count as sent. Empty when none are held, and when the transaction is already
    aborted: they would fail there, so they count as failed (``settle_deferred``) and the
    caller's statement raises the abort alone.
    """
    held = _held(conn)
    if held is None or not held.statements:
        return ""
    statements, held.statements = held.statements, []
    if _aborted(conn.connection.dbapi_connection):
        held.failed = True
        return ""
    return "".join(f"{sql}; " for sql in statements)


def settle_deferred(conn: sa.Connection) -> bool:
    """Forget what ``defer`` held back; whether it never took effect (not sent, or failed)."""
    held = _held(conn)
    conn.info.pop(_DEFERRED, None)
    return held is not None and (held.failed or bool(held.statements))


def commit_deferred(conn: sa.Connection) -> None:
    """Send the held-back statements and COMMIT in one query (one round trip), if any are held.

    A group commit's clock write-back (``_clock.store_clocks``) is held back to go with its
    COMMIT: one round trip fewer for each group, inside the table's turn on its clock row.
    The caller then commits ``conn``'s transaction as usual, which finds it committed
    (psycopg sends no second COMMIT from an idle connection). A failure is raised as
    SQLAlchemy raises one; the transaction did not commit then.
    """
    held = _held(conn)
    if held is None or not held.statements:
        return
    statements, held.statements = held.statements, []
    sql = "".join(f"{statement}; " for statement in statements) + "COMMIT"
    error: type[Exception] = conn.dialect.loaded_dbapi.Error
    try:
        conn.connection.dbapi_connection.execute(sql)  # type: ignore[union-attr]
    except error as exc:
        held.failed = True
        raise sa.exc.DBAPIError.instance(sql, (), exc, error, dialect=conn.dialect) from exc


def _held(conn: sa.Connection) -> _Deferred | None:
    held: _Deferred | None = conn.info.get(_DEFERRED)
    # Only in the transaction they were deferred in: a pooled connection outlives it.
    if held is None or held.transaction is not conn.get_transaction():
        return None
    return held


def _send_deferred_first(engine: Engine) -> None:
    """Send the statements of ``defer`` before the next statement (psycopg 3)."""
    setattr(engine, _DEFERRING, True)

    @event.listens_for(engine, "before_cursor_execute")
    def _on_execute(connection: sa.Connection, cursor: Any, *_args: Any) -> None:
        _send_deferred(connection, cursor.connection)

    @event.listens_for(engine, "commit")
    def _on_commit(connection: sa.Connection) -> None:
        # Nothing was executed after them: send them now, so that the commit has them.
        _send_deferred(connection, connection.connection.dbapi_connection)


def _send_deferred(connection: sa.Connection, dbapi_connection: Any) -> None:
    """Send the held-back statements in one query of their own, if there are any."""
    try:
        held = _held(connection)
    except NotImplementedError:  # the dialect's first-connect checks: nothing held
        return
    if held is None or not held.statements:
        return
    statements, held.statements = held.statements, []
    try:
        dbapi_connection.execute("; ".join(statements))
    except Exception:
        held.failed = True
        raise


def _aborted(dbapi_connection: Any) -> bool:
    """Whether a failed statement aborted the connection's transaction (PostgreSQL)."""
    status = getattr(getattr(dbapi_connection, "info", None), "transaction_status", None)
    return getattr(status, "name", None) == "INERROR"
