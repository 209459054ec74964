"""In-process CPU per request of the tablesync server: page query, read by id, insert.

Runs the ASGI app in this process through ``httpx.ASGITransport`` (no sockets, no uvicorn), so
the figure is the CPU of the app itself: Starlette, option parsing, SQLAlchemy, the driver and
rendering. CPU time (``time.process_time``: this process, all threads) is robust on a loaded
machine where wall time is not. Each scenario is measured at two page sizes so the per-row
cost and the per-request cost can be told apart (least squares over both).

    .venv/bin/python bench/server_cpu.py                 # SQLite file, 20,000 rows
    .venv/bin/python bench/server_cpu.py --postgres      # PostgreSQL on 127.0.0.1:5432 as well

On PostgreSQL it measures the app twice: as served (its reads awaited on the event loop,
``_loop_reads``) and with its reads on worker threads (an app given an engine).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import _common  # puts src/ on sys.path
import httpx
from _seed import COLUMNS, RATINGS, TABLE, row_id, seed_tablesync

# No gzip, as with wrk: compressing a page is a bandwidth trade measured on its own.
HEADERS = {"ZUMO-API-VERSION": "3.0.0", "Accept": "application/json", "Accept-Encoding": "identity"}
Scenario = Callable[[httpx.AsyncClient, random.Random], Awaitable[httpx.Response]]


def _query(top: int) -> Scenario:
    async def run(client: httpx.AsyncClient, rng: random.Random) -> httpx.Response:
        rating = rng.choice([r for r in RATINGS if r is not None])
        year = rng.randint(1920, 1930)
        params = {
            "$filter": f"(rating eq '{rating}') and (year ge {year})",
            "$orderby": "id",
            "$top": str(top),
        }
        return await client.get(f"/tables/{TABLE}", params=params)

    return run


def _pull(top: int) -> Scenario:
    """A page of the pull pattern: every column, ordered by (updatedAt, id), no filter."""

    async def run(client: httpx.AsyncClient, rng: random.Random) -> httpx.Response:
        params = {"$filter": "updatedAt gt 2000-01-01T00:00:00.000Z", "$orderby": "updatedAt"}
        params["$top"] = str(top)
        params["$skip"] = str(rng.randrange(1000))
        return await client.get(f"/tables/{TABLE}", params=params)

    return run


def _read(rows: int) -> Scenario:
    async def run(client: httpx.AsyncClient, rng: random.Random) -> httpx.Response:
        return await client.get(f"/tables/{TABLE}/{row_id(rng.randrange(rows))}")

    return run


async def _insert(client: httpx.AsyncClient, rng: random.Random) -> httpx.Response:
    body = {
        "title": f"Inserted {uuid.uuid4().hex[:8]}",
        "year": rng.randint(1920, 2020),
        "rating": rng.choice(RATINGS[:-1]),
        "duration": rng.randint(60, 200),
        "bestPictureWinner": False,
    }
    return await client.post(f"/tables/{TABLE}", json=body)


async def _measure(app: object, scenario: Scenario, count: int, rounds: int) -> float:
    """The least over ``rounds`` of CPU µs per request for ``count`` requests.

    The least, not the median: on a shared machine other processes only ever add to it.
    """
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    rng = random.Random(7)
    figures = []
    # The app started as uvicorn starts it: its lifespan opens the pool of the reads that
    # PostgreSQL serves on the event loop (``_loop_reads``).
    router = getattr(app, "router", None)
    started = router.lifespan_context(app) if router else contextlib.nullcontext()
    async with (
        started,
        httpx.AsyncClient(transport=transport, base_url="http://bench", headers=HEADERS) as client,
    ):
        for _ in range(10):  # warm caches, the pool and the statement cache
            (await scenario(client, rng)).raise_for_status()
        for _ in range(rounds):
            start = time.process_time()
            for _ in range(count):
                response = await scenario(client, rng)
                if response.status_code >= 400:
                    raise SystemExit(f"{response.status_code}: {response.text[:200]}")
            figures.append((time.process_time() - start) / count * 1e6)
    return min(figures)


async def _client_cost(count: int) -> float:
    """CPU µs of httpx's side of a request (subtracted: it is not the server's)."""

    async def echo(scope: dict, receive: Callable, send: Callable) -> None:  # type: ignore[type-arg]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"[]"})

    return await _measure(echo, lambda c, _r: c.get("/x"), count, 3)


def run(
    database: str, label: str, rows: int, count: int, rounds: int, *, seed: bool = True
) -> None:
    """Seed ``rows`` rows into ``database`` (unless told not to) and print the CPU figures.

    ``label`` ending in "threads": the app gets an engine rather than the URL, so its
    PostgreSQL reads take the worker threads, for comparison.
    """
    import sqlalchemy as sa

    from tablesync.server import Table, create_app

    if seed:
        seed_tablesync(database, rows)
    engine = sa.create_engine(database) if label.endswith("threads") else None
    tables = [Table(TABLE, columns=COLUMNS)]  # type: ignore[arg-type]
    app = create_app(engine or database, tables=tables)
    client = asyncio.run(_client_cost(count))
    query = asyncio.run(_measure(app, _query(50), count, rounds)) - client
    small = asyncio.run(_measure(app, _pull(5), count, rounds)) - client
    large = asyncio.run(_measure(app, _pull(100), count, rounds)) - client
    per_row = (large - small) / 95
    read = asyncio.run(_measure(app, _read(rows), count, rounds)) - client
    insert = asyncio.run(_measure(app, _insert, count, rounds)) - client
    print(f"{label}: httpx client side {client:.0f} µs/request (subtracted below)")
    print(f"  query (filter, orderby, 50 rows): {query:6.0f} µs/request")
    print(f"  pull page of 5 rows             : {small:6.0f} µs/request")
    print(f"  pull page of 100 rows           : {large:6.0f} µs/request")
    print(f"  per row (from the pull pages)   : {per_row:6.1f} µs")
    print(f"  read by id                      : {read:6.0f} µs/request")
    print(f"  insert                          : {insert:6.0f} µs/request")
    asyncio.run(_dispose(app))
    if engine is not None:
        engine.dispose()


async def _dispose(app: object) -> None:
    app.state.tablesync.schema.engine.dispose()  # type: ignore[attr-defined]


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--count", type=int, default=300, help="requests per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        database = f"sqlite:///{Path(tmp) / 'bench.db'}"
        run(database, "sqlite", args.rows, args.count, args.rounds)
    if args.postgres:
        _run_postgres(args)


def _run_postgres(args: argparse.Namespace) -> None:
    with _common.scratch_postgres_database("bench_cpu") as url:
        run(url, "postgres, reads on the event loop", *_sizes(args))
        run(url, "postgres, reads on worker threads", *_sizes(args), seed=False)


def _sizes(args: argparse.Namespace) -> tuple[int, int, int]:
    return args.rows, args.count, args.rounds


if __name__ == "__main__":
    main()
