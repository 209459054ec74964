"""A write stamped later cannot become visible before one stamped earlier (no stamp gap).

Deterministic counterpart of the stress test: write ``slow`` holds its transaction open in
``before_commit``; write ``fast`` comes next. With the per-table clock, ``fast`` waits on the
clock row (PostgreSQL) or the write lock (SQLite) until ``slow`` commits, so a reader, even
one at READ COMMITTED between the two commits, never sees ``fast`` without ``slow``. The naive
clock on PostgreSQL lets ``fast`` commit first: a reader sees the newer stamp while the older
one is still to come, exactly the gap an incremental pull falls into.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from starlette.requests import Request

from tablesync.server import Table, WriteEvent

pytestmark = pytest.mark.timeout(120)
V3 = {"ZUMO-API-VERSION": "3.0.0"}


def _blocked_on_clock(database: str) -> bool:
    with psycopg.connect(database, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database() AND query ILIKE '%tablesync_clock%'"
        ).fetchone()
    return row is not None and row[0] > 0


def _visible(base: str) -> list[str]:
    page = httpx.get(f"{base}/tables/events?$orderby=updatedAt", headers=V3, timeout=30).json()
    return [item["id"] for item in page["items"]]


@pytest.mark.parametrize(
    ("engine", "strict"),
    [
        pytest.param("sqlite", True, id="sqlite-strict"),
        pytest.param("postgres", True, id="postgres-strict"),
        pytest.param("postgres", False, id="postgres-naive-shows-the-gap"),
    ],
)
def test_later_write_never_visible_before_an_earlier_stamp(
    engine: str,
    strict: bool,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    running_server: Callable[..., str],
) -> None:
    if engine == "sqlite":
        database = f"sqlite:///{tmp_path / 'order.db'}"
    else:
        database = request.getfixturevalue("postgres_url")
    entered, gate = threading.Event(), threading.Event()

    def hold_slow(_request: Request, event: WriteEvent) -> None:
        if event.item_id == "slow":
            entered.set()
            gate.wait(30)

    table = Table("events", before_commit=hold_slow)
    base = running_server(database=database, tables=[table], strict_clock=strict)
    answers: dict[str, Any] = {}

    def post(item_id: str) -> None:
        answers[item_id] = httpx.post(
            f"{base}/tables/events", json={"id": item_id}, headers=V3, timeout=60
        )

    slow = threading.Thread(target=post, args=("slow",))
    slow.start()
    try:
        assert entered.wait(30), "the slow write never reached its before_commit hook"
        fast = threading.Thread(target=post, args=("fast",))
        fast.start()
        deadline = time.monotonic() + 30
        if not strict:
            while _visible(base) != ["fast"]:
                assert time.monotonic() < deadline, "the naive fast write never committed"
                time.sleep(0.05)
        elif engine == "postgres":
            while not _blocked_on_clock(database):
                assert time.monotonic() < deadline, "the fast write never waited on the clock"
                time.sleep(0.05)
        else:
            time.sleep(1.5)  # SQLite does not show lock waiters: give fast time to commit
        seen_between = _visible(base)
    finally:
        gate.set()
        slow.join(60)
    fast.join(60)
    assert answers["slow"].status_code == 201 and answers["fast"].status_code == 201
    stamps = {key: answers[key].json()["updatedAt"] for key in ("slow", "fast")}
    assert stamps["slow"] < stamps["fast"]
    if strict:
        assert seen_between == []  # fast waited: no reader saw its stamp before slow's
    else:
        # A pull that read "fast" has a token above slow's stamp, which commits only now.
        assert seen_between == ["fast"]
    assert _visible(base) == ["slow", "fast"]
