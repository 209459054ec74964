"""A user's pull of a per-user table (``Access(owner_column=...)``), with its owner index or not.

``--users`` users own ``--rows`` rows between them, written in turn (as users writing at once
would). Each pull request is the one the client sends, to the app in process (httpx's ASGI
transport: HTTP without the socket), as a user of its own API key: the first page of an
initial pull (1,000 rows), an incremental pull that finds 10 new rows (of 10 per user), and
one that finds none. Each is timed with the
table's ``(owner, updatedAt, id)`` index, then with it dropped (the sync index alone, as
before session 10), in the same run; medians of ``--repeat`` requests, over the users.

    .venv/bin/python bench/owner_pull.py                 # SQLite file and PostgreSQL
    .venv/bin/python bench/owner_pull.py --users 1000 --backends sqlite
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import _common  # puts src/ on sys.path
import httpx
import sqlalchemy as sa

from tablesync.server import Access, ApiKeyAuth, Table, create_app

TABLE = "notes"
COLUMNS: dict[str, Any] = {"text": "string", "owner": "string"}
BASE = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _key(user: int) -> str:
    return f"bench-key-{user:06d}-0123456789"


def _seed(engine: sa.Engine, table: sa.Table, users: int, rows: int) -> None:
    values = [
        {
            "id": f"r{n:07d}",
            "createdAt": BASE,
            "updatedAt": BASE + dt.timedelta(milliseconds=n),
            "version": "v",
            "deleted": False,
            "text": f"note {n} " + "x" * 40,
            "owner": f"user{n % users:06d}",
        }
        for n in range(rows)
    ]
    with engine.begin() as conn:
        for start in range(0, rows, 5000):
            conn.execute(table.insert(), values[start : start + 5000])
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")


def _pulls(users: int, rows: int) -> dict[str, str]:
    def since(ms: int) -> str:
        stamp = (BASE + dt.timedelta(milliseconds=ms)).isoformat(timespec="milliseconds")
        return f"updatedAt gt cast({stamp.replace('+00:00', 'Z')},Edm.DateTimeOffset)"

    newest_10 = rows - 10 * users - 1
    common = "&$orderby=updatedAt&$top=1000&__includedeleted=true"
    return {
        "initial pull, first page": f"/tables/{TABLE}?{common[1:]}",
        "incremental pull, 10 new rows": f"/tables/{TABLE}?$filter={since(newest_10)}{common}",
        "incremental pull, nothing new": f"/tables/{TABLE}?$filter={since(rows)}{common}",
    }


async def _time(client: httpx.AsyncClient, users: int, rows: int, repeat: int) -> dict[str, float]:
    medians: dict[str, float] = {}
    for name, url in _pulls(users, rows).items():
        times = []
        for n in range(repeat):
            headers = {"ZUMO-API-VERSION": "3.0.0", "X-API-Key": _key(n % users)}
            start = time.perf_counter()
            response = await client.get(url, headers=headers)
            times.append(time.perf_counter() - start)
            assert response.status_code == 200, response.text
        medians[name] = statistics.median(times) * 1000
    return medians


@contextlib.contextmanager
def _database(backend: str) -> Iterator[str]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as work:
            yield f"sqlite:///{Path(work) / 'owner.db'}"
    else:
        with _common.scratch_postgres_database("owner_pull") as url:
            yield url


async def run(backend: str, users: int, rows: int, repeat: int) -> None:
    with _database(backend) as url:
        table = Table(TABLE, columns=COLUMNS, access=Access(owner_column="owner"))
        auth = ApiKeyAuth({_key(user): f"user{user:06d}" for user in range(users)})
        app = create_app(url, tables=[table], auth=auth)
        schema = app.state.tablesync.schema
        state = schema.get(TABLE)
        _seed(schema.engine, state.table, users, rows)
        (owner_index,) = (ix for ix in state.table.indexes if ix.name.endswith("_owner"))
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://bench") as client,
        ):
            await _time(client, users, rows, repeat)  # warm-up: statements built, pages cached
            with_index = await _time(client, users, rows, repeat)
            with schema.engine.begin() as conn:
                owner_index.drop(conn)
            without = await _time(client, users, rows, repeat)
        print(f"\n{backend}: {users} users, {rows} rows, median ms per request")
        header = ("pull", "owner index", "sync index only", "ratio")
        table_rows = [
            (name, f"{ms:.2f}", f"{without[name]:.2f}", f"{without[name] / ms:.1f}")
            for name, ms in with_index.items()
        ]
        print(_common.markdown_table(header, table_rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--backends", default="sqlite,postgres")
    args: Any = parser.parse_args()
    _common.print_machine()
    for backend in args.backends.split(","):
        asyncio.run(run(backend, args.users, args.rows, args.repeat))


if __name__ == "__main__":
    main()
