"""Throughput floors of the store, in CPU time so that a loaded machine cannot fail them.

Measured rates are in docs/store.md; the floors here are far below them and catch only a real
regression (an accidental fsync per write, a query per row, a lost executemany).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tablesync.client._context import SyncContext
from tablesync.client._sqlite_store import SQLiteStore


def cpu_rate(count: int, action: object) -> float:
    started = time.process_time()
    action()  # type: ignore[operator]
    return count / max(time.process_time() - started, 1e-9)


@pytest.mark.slow
def test_single_local_writes_are_fast(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "perf.db") as store:
        context = SyncContext(store)
        rate = cpu_rate(
            1000, lambda: [context.insert("t", {"n": n, "text": "x" * 60}) for n in range(1000)]
        )
    assert rate > 3000, f"{rate:.0f} single inserts per CPU second"


@pytest.mark.slow
def test_insert_many_and_pulled_pages_are_bulk_fast(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "perf.db") as store:
        context = SyncContext(store)
        items = [{"n": n, "text": "x" * 60} for n in range(10_000)]
        bulk = cpu_rate(10_000, lambda: context.insert_many("t", items))
        page = [{"id": f"p{n}", "n": n, "version": "v", "deleted": False} for n in range(1000)]
        pulled = cpu_rate(
            1000, lambda: context.apply_pulled_page("p", page, delta_token=("k", "v"))
        )
    assert bulk > 20_000, f"{bulk:.0f} items per CPU second in insert_many"
    assert pulled > 50_000, f"{pulled:.0f} pulled items per CPU second"
