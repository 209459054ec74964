"""``tablesync serve --workers 2``: requests spread over both processes, consistent answers, and
SIGTERM lets an in-flight write finish before the processes exit (SQLite and PostgreSQL)."""

from __future__ import annotations

import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from .conftest import clean_env, free_port, stop, wait_ready

pytestmark = pytest.mark.timeout(180)
V3 = {"ZUMO-API-VERSION": "3.0.0"}
_PID = re.compile(r"pid=(\d+)")


class Served:
    """A running ``tablesync serve --workers 2`` and the database it serves."""

    def __init__(self, process: subprocess.Popen[bytes], base: str, port: int, db: str) -> None:
        self.process, self.base, self.port, self.database = process, base, port, db


@pytest.fixture(
    params=[pytest.param("sqlite", id="sqlite"), pytest.param("postgres", id="postgres")]
)
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Served]:
    if request.param == "sqlite":
        database = f"sqlite:///{tmp_path / 'serve.db'}"
    else:
        database = request.getfixturevalue("postgres_url")
    for _attempt in range(5):
        port = free_port()
        command = [sys.executable, "-m", "tablesync", "serve", "--workers", "2"]
        command += ["--port", str(port), "--database", database, "--dynamic-schema"]
        command += ["--shutdown-timeout", "30"]
        process = subprocess.Popen(
            command, cwd=tmp_path, env=clean_env(), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        if wait_ready(process, base, 60):
            break
        stop(process)
    else:
        raise AssertionError("tablesync serve could not start")
    try:
        yield Served(process, base, port, database)
    finally:
        stop(process)


def _worker_pids(port: int) -> set[int]:
    """The processes holding established server-side connections of ``port`` (from ``ss``)."""
    listing = subprocess.run(
        ["ss", "-Htnp", "state", "established", f"( sport = :{port} )"],
        capture_output=True, text=True, check=True, timeout=10,
    )  # fmt: skip
    return {int(pid) for pid in _PID.findall(listing.stdout)}


def test_requests_spread_over_both_workers_and_agree(served: Served) -> None:
    clients: list[httpx.Client] = []
    try:
        pids: set[int] = set()
        # Keep-alive connections stay with the worker that accepted them; open more until
        # both workers hold some (bounded: the kernel hands them out, not this test).
        while len(pids) < 2 and len(clients) < 40:
            for _ in range(4):
                http = httpx.Client(base_url=served.base, headers=V3, timeout=30)
                clients.append(http)
                item = {"id": f"c{len(clients):02d}", "n": len(clients)}
                assert http.post("/tables/spread", json=item).status_code == 201
            pids = _worker_pids(served.port)
        assert len(pids) == 2, f"connections landed on {pids} only"
        assert served.process.pid not in pids, "the supervisor must not serve requests"
        pages = [http.get("/tables/spread?$orderby=updatedAt").json() for http in clients]
        assert all(page == pages[0] for page in pages), "workers answered differently"
        items = pages[0]["items"]
        assert [item["id"] for item in items] == [f"c{n:02d}" for n in range(1, len(clients) + 1)]
        stamps = [item["updatedAt"] for item in items]
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    finally:
        for http in clients:
            http.close()


def _hold_write_lock(served: Served) -> tuple[Callable[[], None], Callable[[], bool]]:
    """Block the table's writers from outside; returns (release, writer_is_waiting)."""
    if served.database.startswith("sqlite"):
        conn = sqlite3.connect(served.database.removeprefix("sqlite:///"), isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")  # SQLite's single write lock, as a writer takes it

        def release_sqlite() -> None:
            conn.execute("ROLLBACK")
            conn.close()

        # SQLite does not show who waits for its lock; the caller waits a moment instead.
        return release_sqlite, lambda: True
    pg = psycopg.connect(served.database)
    pg.execute("SELECT last_ms FROM tablesync_clock WHERE table_name = 'slow' FOR UPDATE")
    watcher = psycopg.connect(served.database, autocommit=True)

    def waiting() -> bool:
        row = watcher.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database() AND query ILIKE '%tablesync_clock%'"
        ).fetchone()
        return row is not None and row[0] > 0

    def release_pg() -> None:
        pg.rollback()
        pg.close()
        watcher.close()

    return release_pg, waiting


def test_sigterm_lets_an_in_flight_write_finish(served: Served) -> None:
    with httpx.Client(base_url=served.base, headers=V3, timeout=60) as http:
        assert http.post("/tables/slow", json={"id": "first"}).status_code == 201
    release, waiting = _hold_write_lock(served)
    result: list[Any] = []

    def write() -> None:
        try:
            result.append(
                httpx.post(f"{served.base}/tables/slow", json={"id": "inflight"}, headers=V3,
                           timeout=60)
            )  # fmt: skip
        except httpx.HTTPError as exc:
            result.append(exc)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        deadline = time.monotonic() + 30
        while not waiting():
            assert time.monotonic() < deadline, "the write never reached the database lock"
            time.sleep(0.05)
        time.sleep(1.0)  # the write is in flight, blocked on the table's write lock
        served.process.send_signal(signal.SIGTERM)
        time.sleep(1.5)
        assert served.process.poll() is None, "the server exited with a request in flight"
        assert not result, "the write finished while its lock was still held"
    finally:
        release()
    writer.join(60)
    assert len(result) == 1 and isinstance(result[0], httpx.Response), result
    assert result[0].status_code == 201, result[0].text
    assert result[0].json()["id"] == "inflight"
    served.process.wait(timeout=60)
    assert _stored_ids(served.database) == {"first", "inflight"}


def _stored_ids(database: str) -> set[str]:
    if database.startswith("sqlite"):
        with sqlite3.connect(database.removeprefix("sqlite:///")) as conn:
            return {row[0] for row in conn.execute("SELECT id FROM slow")}
    with psycopg.connect(database) as conn:
        return {row[0] for row in conn.execute("SELECT id FROM slow")}
