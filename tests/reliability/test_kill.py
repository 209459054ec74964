"""SIGKILL a syncing client at random moments, again and again; nothing is lost or doubled.

A worker process (``kill_worker.py``) works through a plan of 3000 local writes and pushes,
pulls and purges at random, talking to tablesync's server through the fault proxy (which also
drops, truncates and refuses a few requests). The test kills it at random instants, checks the
store after every kill against the server, restarts it, and finally lets it finish: the server
must then hold exactly the plan's outcome, row by row, and the device must equal the server.

Invariants after every kill (tablesync's server stamps ``updatedAt`` uniquely per table, and
this device is the only writer):

* the store file is intact, and its step counter says which writes were intended;
* an item of the plan with no queued operation is on the server exactly as the plan says
  (nothing lost, nothing applied twice or out of order);
* a local row with no queued operation is the server's row, same version;
* the delta token never runs ahead of the rows: a server row at or before its keyset cursor
  ``(updatedAt, id)``, with no queued operation, is in the store as the server has it (or
  absent, if deleted).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tablesync import SQLiteStore
from tablesync.client._context import SyncContext
from tablesync.client._pull import PullCursor
from tablesync.protocol import parse_datetime
from tests.faults.proxy import DropResponse, Fault, FaultProxy, Reset, Status, Truncate
from tests.reliability.kill_worker import PHASES, STEP_KEY, TABLE, make_plan, model

ROOT = Path(__file__).resolve().parents[2]
KILLS = 50
KILL_BUDGET = 100.0  # seconds for the kill loop; the test fails rather than run longer
FAULT_RATE = 0.03
FAULTS: list[Fault] = [DropResponse(), Truncate(0.5), Reset(), Status(503, retry_after="0")]
HEADERS = {"ZUMO-API-VERSION": "3.0.0"}


class Workers:
    """The fork server of kill_worker.py."""

    def __init__(self, store: Path, url: str, phase: Path) -> None:
        self.phase = phase
        self.errors: list[str] = []
        self.server = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.kill_worker", str(store), url, str(phase)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.worker: int | None = None

    def _line(self, word: str) -> str:
        assert self.server.stdout is not None
        while True:
            line = self.server.stdout.readline()
            if not line:
                pytest.fail("the fork server ended early")
            head, _, rest = line.strip().partition(" ")
            if head == "error":
                self.errors.append(rest)
            elif head == word:
                return rest

    def start(self, seed: int, mode: str) -> None:
        assert self.server.stdin is not None
        self.server.stdin.write(f"{seed} {mode}\n")
        self.server.stdin.flush()
        self.worker = int(self._line("pid"))
        self._line("ready")

    def kill_after(self, delay: float) -> str:
        """Kill the running worker after ``delay`` s; returns the phase it was in."""
        time.sleep(delay)
        assert self.worker is not None
        phase = (self.phase.read_text() if self.phase.exists() else "")[:1] or "-"
        os.kill(self.worker, signal.SIGKILL)
        status = int(self._line("exit"))
        self.worker = None
        if not (os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL):
            pytest.fail(f"the worker ended on its own (wait status {status}); see stderr")
        return phase

    def wait(self) -> int:
        status = int(self._line("exit"))
        self.worker = None
        return status

    def close(self) -> None:
        if self.worker is not None:
            os.kill(self.worker, signal.SIGKILL)
        for stream in (self.server.stdin, self.server.stdout):
            if stream:
                stream.close()
        try:
            self.server.wait(10)
        except subprocess.TimeoutExpired:
            self.server.kill()
            self.server.wait(10)


def server_rows(url: str) -> dict[str, dict[str, Any]]:
    """Every row of the table, tombstones included, read directly from the server."""
    rows: dict[str, dict[str, Any]] = {}
    with httpx.Client(base_url=url, headers=HEADERS, timeout=30) as http:
        while True:
            params: dict[str, Any] = {"$orderby": "id", "$skip": len(rows), "$top": 1000}
            response = http.get(f"/tables/{TABLE}", params={**params, "__includedeleted": "true"})
            response.raise_for_status()
            page = response.json()["items"]
            if not page:
                return rows
            rows.update((row["id"], row) for row in page)


def check(store_path: Path, server: dict[str, dict[str, Any]]) -> tuple[int, int]:
    """Assert the invariants of the module docstring; returns (intended writes, queued ops)."""
    with SQLiteStore(store_path) as store:
        assert store._query("PRAGMA integrity_check") == [("ok",)]
        context = SyncContext(store)
        steps = int(store.get_config(STEP_KEY) or 0)
        queued = {op.item_id for op in context.pending_operations()}
        local = {item["id"]: item for item in context.query(TABLE)}
        token = context.get_delta_token(TABLE, "all")
        for item_id, n in model(make_plan()[:steps]).items():
            if item_id not in queued:
                _assert_on_server(server.get(item_id), item_id, n)
        for item_id, item in local.items():
            if item_id not in queued:
                row = server.get(item_id)
                assert row is not None and not row["deleted"], f"{item_id}: local only"
                assert (item["version"], item["n"]) == (row["version"], row["n"]), item_id
        if token is not None:
            _assert_token_covered(PullCursor.parse(token), server, local, queued)
        return steps, len(queued)


def _assert_on_server(row: dict[str, Any] | None, item_id: str, n: int | None) -> None:
    if n is None:
        assert row is None or row["deleted"], f"{item_id}: a delete was lost"
    else:
        assert row is not None and not row["deleted"], f"{item_id}: a write was lost"
        assert row["n"] == n, f"{item_id}: server has n={row['n']}, the plan says {n}"


def _assert_token_covered(
    cursor: PullCursor,
    server: dict[str, dict[str, Any]],
    local: dict[str, dict[str, Any]],
    queued: set[str],
) -> None:
    for item_id, row in server.items():
        # A bare timestamp covers the rows before it; "<stamp> <id>" the rows up to that one.
        if item_id in queued or (parse_datetime(row["updatedAt"]), item_id) > cursor.key():
            continue
        if row["deleted"]:
            assert item_id not in local, f"{item_id}: deleted before the token, still local"
        else:
            assert item_id in local, f"{item_id}: stamped before the token, missing locally"
            assert local[item_id]["version"] == row["version"], item_id


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[str, FaultProxy]]:
    """tablesync's server (direct URL) and a fault proxy in front of it."""
    from tablesync.server import Table
    from tests.interop.tablesync_server import start_tablesync_server

    columns: dict[str, Any] = {"text": "string", "n": "integer"}
    # tmpfs when there is one: the server's fsync per write is not what this test measures.
    shm = Path("/dev/shm")
    folder = Path(tempfile.mkdtemp(dir=shm)) if shm.is_dir() else tmp_path
    server = start_tablesync_server(
        database=f"sqlite:///{folder / 'server.db'}",
        tables=[Table(TABLE, columns=columns, page_size=1000)],
    )
    target = httpx.URL(server.url)
    with FaultProxy(target.host, target.port or 80) as proxy:
        proxy.plan.randomly(FAULT_RATE, FAULTS, seed=99)
        yield server.url, proxy
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_sigkill_at_random_moments_loses_and_doubles_nothing(
    tmp_path: Path, service: tuple[str, FaultProxy]
) -> None:
    url, proxy = service
    store_path = tmp_path / "device.db"
    workers = Workers(store_path, proxy.url, tmp_path / "phase")
    rng = random.Random(2024)
    phases: Counter[str] = Counter()
    started = time.monotonic()
    try:
        for run in range(KILLS):
            assert time.monotonic() - started < KILL_BUDGET, f"only {run} kills in budget"
            workers.start(run, "kill")
            phases[workers.kill_after(rng.uniform(0.03, 0.4))] += 1
            check(store_path, server_rows(url))
        kill_seconds = time.monotonic() - started
        print(f"\nkill loop {kill_seconds:.1f} s")
        steps_when_killed, _ = check(store_path, server_rows(url))
        finish_started = time.monotonic()
        workers.start(KILLS, "finish")
        assert workers.wait() == 0, "the finishing run failed; see its stderr"
        print(f"finishing run {time.monotonic() - finish_started:.1f} s")
    finally:
        workers.close()
    assert workers.errors == [], "a single writer met push errors (false conflicts?)"
    server = server_rows(url)
    plan = make_plan()
    assert check(store_path, server) == (len(plan), 0)
    expected = model(plan)
    assert set(server) <= set(expected)  # no row the plan did not write
    for item_id, n in expected.items():
        _assert_on_server(server.get(item_id), item_id, n)
    with SQLiteStore(store_path) as store:
        local = {item["id"]: item["n"] for item in SyncContext(store).query(TABLE)}
    assert local == {k: n for k, n in expected.items() if n is not None}
    writes = sum(e.method != "GET" for e in proxy.log)
    print(
        f"\nkill test: {KILLS} kills in {kill_seconds:.1f} s, phases "
        f"{ {PHASES[p]: c for p, c in phases.items()} }, {steps_when_killed} of {len(plan)} "
        f"local writes made under kills, {len(proxy.log)} requests ({writes} writes), "
        f"{proxy.faults_injected()} faults injected, "
        f"{proxy.lost_after_handling()} responses lost after the server handled them"
    )
    assert sum(phases[p] for p in "PL") >= 10, f"too few kills mid-sync: {phases}"
