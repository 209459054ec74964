"""The store's write paths keep their shape: what would make them slow, checked by counting.

Rates are measured by the benchmark (``bench/client_bench.py``, docs/benchmarks.md), not here:
a timed floor failed on the loaded 2-core machine (18,968 items per CPU second against a floor
of 20,000). These tests catch the regressions that floor was for, deterministically: an fsync
per write (the journal settings), more than one transaction per bulk call or pulled page, and a
query per row (SELECTs counted by the connection's trace callback).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tablesync.client._context import SyncContext
from tablesync.client._sqlite_store import SQLiteStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    with SQLiteStore(tmp_path / "perf.db") as opened:
        yield opened


def _statement_kinds(store: SQLiteStore) -> Counter[str]:
    """The first word of every statement the store runs from now on, counted."""
    kinds: Counter[str] = Counter()
    store._connection().set_trace_callback(lambda sql: kinds.update([sql.split()[0].upper()]))
    return kinds


def test_the_store_commits_without_an_fsync_per_write(store: SQLiteStore) -> None:
    # WAL with synchronous=NORMAL syncs at checkpoints, not at each commit.
    assert store._query("PRAGMA journal_mode") == [("wal",)]
    assert store._query("PRAGMA synchronous") == [(1,)]


def test_a_single_local_write_is_one_small_transaction(store: SQLiteStore) -> None:
    context = SyncContext(store)
    context.insert("t", {"n": 0})  # the table is created here
    kinds = _statement_kinds(store)

    for n in range(100):
        context.insert("t", {"n": n, "text": "x" * 60})

    assert kinds["COMMIT"] == 100
    assert sum(kinds.values()) <= 100 * 8, kinds  # 6 today: BEGIN, 2 SELECT, 2 INSERT, COMMIT


def test_insert_many_is_one_transaction_without_a_query_per_item(store: SQLiteStore) -> None:
    context = SyncContext(store)
    kinds = _statement_kinds(store)

    context.insert_many("t", [{"n": n, "text": "x" * 60} for n in range(2_000)])

    assert kinds["COMMIT"] == 1
    assert kinds["SELECT"] < 20, kinds


def test_a_pulled_page_is_one_transaction_without_a_query_per_row(store: SQLiteStore) -> None:
    context = SyncContext(store)
    page = [{"id": f"p{n}", "n": n, "version": "v", "deleted": False} for n in range(1_000)]
    kinds = _statement_kinds(store)

    context.apply_pulled_page("p", page, delta_token=("k", "v"))

    assert kinds["COMMIT"] == 1
    assert kinds["SELECT"] < 20, kinds
    assert len(context.query("p")) == 1_000
