"""What a PostgreSQL read costs this process by the way it waits: worker thread or event loop.

The same page statement (a 50-row JSON page of the benchmark table, random filter values),
16 at a time, run four ways; the figure is this process's CPU per statement, and
PostgreSQL's (all its processes). Nothing else differs: no HTTP, no SQLAlchemy compile.

- ``threads``: a SQLAlchemy connection on one of 4 anyio worker threads (the thread path);
- ``pool``: psycopg's ``AsyncConnectionPool`` with 4 connections, awaited (``_loop_reads``);
- ``connections``: 4 bare ``AsyncConnection``s handed out by a queue (the floor);

    .venv/bin/python bench/read_hop.py            # PostgreSQL on 127.0.0.1:5432
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import _common  # puts src/ on sys.path
import anyio
import anyio.to_thread
import sqlalchemy as sa
from _seed import TABLE, seed_tablesync

CONCURRENT = 16
CONNECTIONS = 4
# The statement the server sends for the benchmark's page query (docs/benchmarks.md).
PAGE = f"""SELECT CAST(row_to_json(item$) AS TEXT), 1 FROM {TABLE} JOIN LATERAL (
SELECT {TABLE}.id, to_char(timezone('UTC', {TABLE}."updatedAt"), 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
AS "updatedAt", {TABLE}.version, {TABLE}.deleted, {TABLE}."bestPictureWinner",
{TABLE}.duration, {TABLE}.rating, {TABLE}.title, {TABLE}.year) AS item$ ON true
WHERE {TABLE}.rating = %(rating)s AND {TABLE}.year >= %(year)s AND NOT {TABLE}.deleted
ORDER BY {TABLE}.id LIMIT 51"""
RATINGS = ("G", "PG", "PG-13", "R", "NC-17")
Fetch = Callable[[dict[str, Any]], Awaitable[Any]]


async def _measure(fetch: Fetch, count: int) -> str:
    rng = random.Random(1)
    left = count

    async def client() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await fetch({"rating": rng.choice(RATINGS), "year": rng.randint(1920, 2015)})

    for _ in range(50):  # warm: connections, prepared statements
        await fetch({"rating": "R", "year": 2000})
    cpu, postgres, wall = time.process_time(), _common.postgres_cpu_seconds(), time.perf_counter()
    await asyncio.gather(*(client() for _ in range(CONCURRENT)))
    cpu, postgres = time.process_time() - cpu, _common.postgres_cpu_seconds() - postgres
    rate = count / (time.perf_counter() - wall)
    return (
        f"{rate:6.0f} statements/s, this process {1e6 * cpu / count:5.0f} µs CPU each,"
        f" PostgreSQL {1e6 * postgres / count:5.0f} µs"
    )


async def threads(url: str, count: int) -> str:
    engine = sa.create_engine(url, pool_size=CONNECTIONS)
    reader = engine.execution_options(isolation_level="AUTOCOMMIT")
    limiter = anyio.CapacityLimiter(CONNECTIONS)

    def fetch(params: dict[str, Any]) -> Any:
        with reader.connect() as conn:
            return conn.exec_driver_sql(PAGE, params).cursor.fetchall()  # type: ignore[union-attr]

    try:
        return await _measure(
            lambda params: anyio.to_thread.run_sync(fetch, params, limiter=limiter), count
        )
    finally:
        engine.dispose()


async def pool(url: str, count: int) -> str:
    from psycopg_pool import AsyncConnectionPool

    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    connections: AsyncConnectionPool[Any] = AsyncConnectionPool(
        conninfo, min_size=CONNECTIONS, max_size=CONNECTIONS, kwargs={"autocommit": True},
        open=False,
    )  # fmt: skip
    await connections.open(wait=True)

    async def fetch(params: dict[str, Any]) -> Any:
        async with connections.connection() as conn:
            return await (await conn.execute(PAGE, params)).fetchall()  # type: ignore[arg-type]

    try:
        return await _measure(fetch, count)
    finally:
        await connections.close()


async def connections(url: str, count: int) -> str:
    import psycopg

    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    free: asyncio.Queue[psycopg.AsyncConnection[Any]] = asyncio.Queue()
    for _ in range(CONNECTIONS):
        free.put_nowait(await psycopg.AsyncConnection.connect(conninfo, autocommit=True))

    async def fetch(params: dict[str, Any]) -> Any:
        conn = await free.get()
        try:
            return await (await conn.execute(PAGE, params)).fetchall()  # type: ignore[arg-type]
        finally:
            free.put_nowait(conn)

    try:
        return await _measure(fetch, count)
    finally:
        while not free.empty():
            await free.get_nowait().close()


def main() -> None:
    """Command line entry point."""
    import uvloop

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--count", type=int, default=3000, help="statements per way and round")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with _common.scratch_postgres_database("bench_hop") as url:
        seed_tablesync(url, args.rows)
        for round_ in range(1, args.rounds + 1):
            for way in (threads, pool, connections):
                print(f"round {round_} {way.__name__:12}", uvloop.run(way(url, args.count)))


if __name__ == "__main__":
    main()
