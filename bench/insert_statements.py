"""A group commit's SQLite statements through SQLAlchemy and on the driver, in process.

Each statement of a group commit runs while the group holds the write turn that the other
processes' writers wait for. This times the item INSERT, a write's SAVEPOINT and the clock's
UPDATE both ways, 3,000 of each in a transaction, median of 5 rounds (wall µs each).

    .venv/bin/python bench/insert_statements.py
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _common  # noqa: F401  (puts src/ on sys.path)
from _seed import COLUMNS, TABLE

from tablesync.server import _clock
from tablesync.server import _repository as repo
from tablesync.server._engine import execute_on_driver, make_engine, writer
from tablesync.server._items import stamp_datetime
from tablesync.server._schema import CLOCK, build_table

COUNT = 3000
ROUNDS = 5


def _values(n: int) -> dict[str, Any]:
    stamp = stamp_datetime(1_700_000_000_000 + n)
    user = {"title": "t", "year": 1999, "rating": "PG", "duration": 90, "bestPictureWinner": False}
    return {**user, "id": f"id-{n}", "createdAt": stamp, "updatedAt": stamp}


def main() -> None:
    """Print the median µs per statement of each way."""
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'statements.db'}")
        table = build_table(TABLE, COLUMNS)  # type: ignore[arg-type]
        table.metadata.create_all(engine)
        CLOCK.metadata.create_all(engine, tables=[CLOCK])
        insert = repo._insert_statement(table, "sqlite")
        advance = _clock._advance("sqlite", True)
        counter = iter(range(10**9))
        rows = {"version": "v", "deleted": False}
        with writer(engine).connect() as conn:
            with conn.begin():
                conn.execute(CLOCK.insert().values(table_name=TABLE, last_ms=0))
            plan = repo._sqlite_insert(table, conn.dialect, frozenset({**_values(0), **rows}))
            assert plan is not None
            ways: dict[str, Callable[[int], object]] = {
                "INSERT, SQLAlchemy": lambda n: conn.execute(
                    insert, {**_values(next(counter)), **rows}
                ).first(),
                "INSERT, driver": lambda n: plan.run(conn, {**_values(next(counter)), **rows}),
                "SAVEPOINT, SQLAlchemy": lambda n: conn.exec_driver_sql("SAVEPOINT s"),
                "SAVEPOINT, driver": lambda n: execute_on_driver(conn, "SAVEPOINT s"),
                "clock UPDATE, SQLAlchemy": lambda n: conn.execute(
                    advance, {"clock_key": TABLE, "clock_now": n}
                ).scalar_one(),
                "clock UPDATE, driver": lambda n: _clock._on_sqlite_driver(
                    conn, advance, {"clock_key": TABLE, "clock_now": n}
                ),
            }
            times: dict[str, list[float]] = {name: [] for name in ways}
            for _ in range(ROUNDS):
                for name, way in ways.items():
                    with conn.begin():  # one each: open savepoints would slow the others
                        start = time.perf_counter()
                        for n in range(COUNT):
                            way(n)
                        times[name].append((time.perf_counter() - start) / COUNT * 1e6)
        engine.dispose()
    for name, figures in times.items():
        print(f"{name:26} {statistics.median(figures):6.1f} µs")


if __name__ == "__main__":
    main()
