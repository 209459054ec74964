"""PostgreSQL reads awaited on the event loop, with no worker thread: psycopg's async pool.

A read handed to a worker thread and back costs this process more CPU than the statement:
16 page queries at once cost it 411-431 µs of CPU each through anyio's worker threads,
197 µs each awaited on an ``AsyncConnectionPool``, 134 on bare async connections
(``bench/read_hop.py``; docs/benchmarks.md, "PostgreSQL reads on the event loop"). The
thread wakes the loop, they contend for the GIL, and anyio's bookkeeping runs twice per call.
psycopg's pool costs some of the gain over bare connections, and keeps its connections alive.

The statements are still SQLAlchemy's, built by the same code as on the threads, compiled
once per shape: SQLAlchemy's cache key tells two statements of one shape apart from their
literal values, which it extracts for each run. Only statements whose rows need no result
processing come here (a JSON page's rows, a count, an item's JSON with the columns its
headers read); the rows are psycopg's own tuples. A statement SQLAlchemy would finish
rendering only when it runs (an expanding ``IN``) is declined, and its caller runs it on a
thread.

An app serves from this pool only on the event loop that opened it (in its lifespan, so
one per ``--workers`` process). Requests driven from another loop (a test client that
never started the app) take the worker threads, as before.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.sql.compiler import Compiled

from ._engine import statement_timeout_ms

if TYPE_CHECKING:
    from psycopg import AsyncConnection
    from psycopg_pool import AsyncConnectionPool

#: Connections of one process's pool, as many as its reading threads had (``_runner``).
#: Enough to keep the database busy while the process renders pages: two workers on this
#: 2-core machine served as many page queries with 2 as with 8, but at 8 their p99 was
#: 49-56 ms against 20-35 ms, the database's processes crowding the workers out of the CPU;
#: one worker lost 7% with 2 (docs/benchmarks.md, "PostgreSQL reads on the event loop").
POOL_SIZE = 4
#: How long a read waits for a pooled connection before it takes a worker thread instead.
#: Under load a wait is a few milliseconds. While the database is unreachable the pool
#: only retries in the background, so its callers would wait out any timeout: the thread's
#: engine tries to connect at once and answers 503 as it always has.
POOL_TIMEOUT_S = 1.0
#: Compiled statement shapes kept; a page query has a few per filter shape.
_COMPILED_CACHE_SIZE = 512
Rows = list[tuple[Any, ...]]


class LoopReads:
    """Runs read-only statements on PostgreSQL from the event loop that opened it."""

    def __init__(self, engine: Engine) -> None:
        self._dialect = engine.dialect
        args, kwargs = engine.dialect.create_connect_args(engine.url)
        timeout_ms = statement_timeout_ms(engine)
        if timeout_ms:
            options = kwargs.get("options", "")
            kwargs["options"] = f"{options} -c statement_timeout={timeout_ms}".strip()
        self._conninfo = " ".join(args)
        self._kwargs = {**kwargs, "autocommit": True}
        self._pool: AsyncConnectionPool[AsyncConnection[Any]] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._compiled: OrderedDict[Any, Compiled | None] = OrderedDict()

    async def open(self) -> None:
        """Start the pool on the running loop (connections are made in the background)."""
        from psycopg_pool import AsyncConnectionPool

        pool: AsyncConnectionPool[AsyncConnection[Any]] = AsyncConnectionPool(
            self._conninfo,
            kwargs=self._kwargs,
            min_size=1,
            max_size=POOL_SIZE,
            timeout=POOL_TIMEOUT_S,
            open=False,
            name="tablesync-reads",
        )
        await pool.open(wait=False)
        self._pool, self._loop = pool, asyncio.get_running_loop()

    async def close(self) -> None:
        """Close the pool's connections."""
        pool, self._pool, self._loop = self._pool, None, None
        if pool is not None:
            await pool.close()

    def here(self) -> bool:
        """Whether reads can be awaited on the running loop (the pool's own)."""
        return self._pool is not None and asyncio.get_running_loop() is self._loop

    async def fetch(
        self, statements: Sequence[tuple[sa.Select[Any], Mapping[str, Any]]]
    ) -> list[Rows] | None:
        """Each statement's rows, run in order on one connection; ``None``: run them elsewhere.

        Each statement comes with the values of its named parameters (``sa.bindparam``).

        A connection found dead (the database restarted while it sat in the pool) is
        replaced and the reads run again, once: they change nothing. No connection within
        ``POOL_TIMEOUT_S`` gives ``None`` too. Database errors are raised as SQLAlchemy
        raises them, so the app answers them as it answers the threads' (a cancelled
        statement: 503; a value the database refuses: 400).
        """
        import psycopg
        from psycopg_pool import PoolTimeout

        assert self._pool is not None
        queries = []
        for statement, values in statements:
            query = self._query(statement, values)
            if query is None:
                return None
            queries.append(query)
        for attempt in (1, 2):
            conn: AsyncConnection[Any] | None = None
            sql, params = queries[0]
            try:
                async with self._pool.connection() as conn:
                    results = []
                    for sql, params in queries:
                        cursor = await conn.execute(sql, params)
                        results.append(await cursor.fetchall())
                    return results
            except PoolTimeout:
                return None
            except psycopg.Error as exc:
                if attempt == 1 and conn is not None and conn.broken:
                    continue
                raise sa.exc.DBAPIError.instance(
                    sql, params, exc, psycopg.Error, dialect=self._dialect
                ) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _query(
        self, statement: sa.Select[Any], values: Mapping[str, Any]
    ) -> tuple[str, dict[str, Any]] | None:
        """The SQL text and parameters of ``statement``, or ``None`` if it cannot run here."""
        key = statement._generate_cache_key()
        if key is None:  # a construct that cannot be cached: not worth compiling each time
            return None
        compiled = self._compiled_for(statement, key)
        if compiled is None:
            return None
        extracted = key.bindparams
        params = dict(compiled.construct_params(values, extracted_parameters=extracted) or {})
        for name, process in compiled._bind_processors.items():  # type: ignore[attr-defined]
            if name in params:
                params[name] = process(params[name])
        return compiled.string, params

    def _compiled_for(self, statement: sa.Select[Any], key: Any) -> Compiled | None:
        try:
            compiled = self._compiled[key.key]
        except KeyError:
            compiled = statement.compile(dialect=self._dialect, cache_key=key)
            if compiled.post_compile_params or compiled.literal_execute_params:
                compiled = None
            self._compiled[key.key] = compiled
            if len(self._compiled) > _COMPILED_CACHE_SIZE:
                self._compiled.popitem(last=False)
            return compiled
        self._compiled.move_to_end(key.key)
        return compiled


def loop_reads_for(engine: Engine) -> LoopReads | None:
    """A ``LoopReads`` for ``engine`` if it is PostgreSQL through psycopg 3, else ``None``."""
    if engine.dialect.name != "postgresql" or engine.dialect.driver != "psycopg":
        return None
    return LoopReads(engine)
