"""Engines: URL mapping, SQLite in WAL with ``BEGIN IMMEDIATE`` writes, pool sizing."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

from .._exceptions import ServerConfigError

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
        connection.exec_driver_sql(f"BEGIN {mode}")


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
    """The same engine (and pool) whose transactions take SQLite's write lock at BEGIN."""
    return engine.execution_options(**{BEGIN_OPTION: "IMMEDIATE"})


def limit_statements(engine: Engine, timeout_ms: int) -> None:
    """Cancel any statement running past ``timeout_ms`` (the request then gets a 503).

    A hostile or merely unlucky query (a filter no index serves) then frees its connection
    instead of holding it. On SQLite it matters more: statements run on the event loop
    (``_runner``), so a long one holds up every request of its process.
    """
    if engine.dialect.name == "postgresql":
        _postgres_statement_timeout(engine, timeout_ms)
    elif engine.dialect.name == "sqlite":
        _sqlite_statement_timeout(engine, timeout_ms / 1000)


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

    def __init__(self) -> None:
        self.at = float("inf")

    def passed(self) -> bool:
        # SQLite's progress handler: a true result interrupts the statement.
        return time.monotonic() > self.at


_DEADLINE = "tablesync_deadline"
#: SQLite virtual-machine steps between two deadline checks (a few microseconds of work).
_CHECK_EVERY = 10_000


def _sqlite_statement_timeout(engine: Engine, timeout_s: float) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, record: Any) -> None:
        deadline = record.info[_DEADLINE] = _Deadline()
        dbapi_connection.set_progress_handler(deadline.passed, _CHECK_EVERY)

    @event.listens_for(engine, "before_cursor_execute")
    def _on_execute(conn: sa.Connection, *_args: Any) -> None:
        deadline = conn.info.get(_DEADLINE)
        if deadline is not None:
            deadline.at = time.monotonic() + timeout_s
