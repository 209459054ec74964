"""How long a group commit holds the write turn, per insert, in process: ours beside a base.

With ``serve --workers 2`` a table's writes take turns (SQLite's one writer, PostgreSQL's
clock row), so the time a group's transaction takes is the serial part that caps two
processes (Amdahl). This measures it directly: 16 inserts at a time through the ASGI app
(``httpx.ASGITransport``, no sockets), timing ``DatabaseRunner._run_together`` (the group's
transaction, run while the turn is held) and the whole process's CPU per insert. Each round
runs the base checkout and ours in turn, each in a fresh process with its ``src`` first on
``sys.path``, so a ratio compares runs made seconds apart.

    .venv/bin/python bench/insert_turn.py --base-src /tmp/base/src            # SQLite
    .venv/bin/python bench/insert_turn.py --base-src /tmp/base/src --postgres
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
#: Inserts sent at once (wrk's 16 connections split over two workers: about 8 each).
CONCURRENT = 16


def _child(database: str, batches: int, concurrent: int) -> dict[str, float]:
    """Runs in the measured process: seed, then ``batches`` times ``concurrent`` inserts."""
    import httpx
    from _seed import COLUMNS, TABLE, seed_tablesync

    from tablesync.server import Table, _runner, create_app

    seed_tablesync(database, 1000)
    turn = {"s": 0.0, "groups": 0}
    original = _runner.DatabaseRunner._run_together

    def timed(self: Any, jobs: Any, taken: list[Any], table: str) -> list[Any]:
        start = time.perf_counter()
        try:
            return original(self, jobs, taken, table)
        finally:
            turn["s"] += time.perf_counter() - start
            turn["groups"] += 1

    _runner.DatabaseRunner._run_together = timed  # type: ignore[method-assign]
    app = create_app(database, tables=[Table(TABLE, columns=COLUMNS)])  # type: ignore[arg-type]
    headers = {"ZUMO-API-VERSION": "3.0.0", "Accept-Encoding": "identity"}

    async def insert(client: httpx.AsyncClient, n: int) -> None:
        body = {"title": f"Inserted {n}", "year": 1990, "rating": "PG", "duration": 90}
        response = await client.post(f"/tables/{TABLE}", json={**body, "bestPictureWinner": False})
        if response.status_code != 201:
            raise SystemExit(f"{response.status_code}: {response.text[:200]}")

    async def run() -> dict[str, float]:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(
            transport=transport, base_url="http://b", headers=headers
        ) as c:
            for n in range(3):  # warm up
                await asyncio.gather(*(insert(c, n * 100 + i) for i in range(concurrent)))
            turn.update(s=0.0, groups=0)
            cpu, wall = time.process_time(), time.perf_counter()
            for n in range(batches):
                await asyncio.gather(*(insert(c, n * 100 + i) for i in range(concurrent)))
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        count = batches * concurrent
        app.state.tablesync.schema.engine.dispose()
        return {
            "turn_us": turn["s"] / count * 1e6,
            "cpu_us": cpu / count * 1e6,
            "wall_us": wall / count * 1e6,
            "per_group": count / max(1, turn["groups"]),
        }

    return asyncio.run(run())


def _measure(src: Path, database: str, batches: int, concurrent: int) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=f"{src}{os.pathsep}{HERE}")
    argv = [sys.executable, __file__, "--child", database, "--batches", str(batches)]
    argv += ["--concurrent", str(concurrent)]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-2000:])
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _database(postgres: bool, tmp: str, label: str, round_: int) -> tuple[str, Any]:
    if not postgres:
        return f"sqlite:///{tmp}/{label}-{round_}.db", None
    import sqlalchemy as sa

    admin_url = os.environ.get(
        "TABLESYNC_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    name = f"insert_turn_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    return url.replace("postgresql://", "postgresql+psycopg://"), (admin, name)


def _drop(handle: Any) -> None:
    if handle is not None:
        admin, name = handle
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-src", type=Path, required="--child" not in sys.argv)
    parser.add_argument("--src", type=Path, default=ROOT / "src")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", type=int, default=100, help="of inserts sent at once")
    parser.add_argument("--concurrent", type=int, default=CONCURRENT, help="inserts at once")
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, args.batches, args.concurrent)))
        return
    figures: dict[str, list[dict[str, float]]] = {"base": [], "ours": []}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for label, src in (("base", args.base_src), ("ours", args.src)):
                database, handle = _database(args.postgres, tmp, label, round_)
                try:
                    run = _measure(src, database, args.batches, args.concurrent)
                    figures[label].append(run)
                finally:
                    _drop(handle)
    print(f"load average {os.getloadavg()[0]:.2f}; medians of {args.rounds} rounds")
    print(f"{'':5} {'turn µs/insert':>15} {'CPU µs/insert':>14} {'wall µs':>8} {'per group':>9}")
    for label, runs in figures.items():
        median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        print(
            f"{label:5} {median['turn_us']:15.0f} {median['cpu_us']:14.0f} "
            f"{median['wall_us']:8.0f} {median['per_group']:9.1f}"
        )


if __name__ == "__main__":
    main()
