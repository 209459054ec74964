"""SIGKILL a process mid-write, again and again; the store must stay consistent every time."""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tablesync.client._context import SyncContext
from tablesync.client._sqlite_store import SQLiteStore
from tablesync.client._store import OperationKind

from .crash_worker import PAGE_SIZE

ROOT = Path(__file__).resolve().parents[3]
KILLS = 20
STEP_TIMEOUT = 15.0
TIME_BUDGET = 20.0  # seconds; the loop stops early rather than run long on a loaded machine


class Workers:
    """The fork server of crash_worker.py: one slow Python start-up, then a fork per run."""

    def __init__(self, path: Path) -> None:
        self.server = subprocess.Popen(
            [sys.executable, "-m", "tests.client.store.crash_worker", str(path)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.worker: int | None = None
        self.buffer = b""

    def _lines(self, *prefixes: str) -> dict[str, str]:
        """Read stdout until a line starting with each prefix was seen (any order)."""
        seen: dict[str, str] = {}
        while set(prefixes) - set(seen):
            word, _, rest = self._next_line().partition(" ")
            if word == "exit" and "exit" not in prefixes:
                pytest.fail(f"a worker died on its own (wait status {rest}); see its stderr")
            if word == "pid":
                self.worker = int(rest)
            seen[word] = rest
        return seen

    def _next_line(self) -> str:
        # Raw reads and our own buffer: select() on a buffered file would miss buffered lines.
        assert self.server.stdout is not None
        fd = self.server.stdout.fileno()
        while b"\n" not in self.buffer:
            if not select.select([fd], [], [], STEP_TIMEOUT)[0]:
                if self.worker is not None:
                    os.kill(self.worker, signal.SIGUSR1)  # its stack goes to stderr
                    time.sleep(0.5)
                pytest.fail(f"the crash worker said nothing for {STEP_TIMEOUT} s")
            chunk = os.read(fd, 4096)
            if not chunk:
                pytest.fail("the fork server ended early")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.decode().strip()

    def run_and_kill(self, seed: int, delay: float) -> None:
        assert self.server.stdin is not None
        self.server.stdin.write(f"{seed}\n")
        self.server.stdin.flush()
        self._lines("pid", "ready")
        assert self.worker is not None
        time.sleep(delay)
        os.kill(self.worker, signal.SIGKILL)
        status = int(self._lines("exit")["exit"])
        self.worker = None
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (
            "the worker died before it was killed"
        )

    def close(self) -> None:
        if self.worker is not None:  # a failed run: do not leave it writing
            os.kill(self.worker, signal.SIGKILL)
        for stream in (self.server.stdin, self.server.stdout):
            if stream:
                stream.close()
        try:
            self.server.wait(10)
        except subprocess.TimeoutExpired:
            self.server.kill()
            self.server.wait(10)


def check_invariants(path: Path) -> tuple[int, int]:
    """Assert the store is consistent; returns (queued operations, pulled pages)."""
    with SQLiteStore(path) as store:
        assert store._query("PRAGMA integrity_check") == [("ok",)]
        context = SyncContext(store)
        ops = context.pending_operations()
        rows = {item["id"] for item in context.query("local")}
        live = {op.item_id for op in ops if op.kind is not OperationKind.DELETE}
        deleted = {op.item_id for op in ops if op.kind is OperationKind.DELETE}
        # Nothing is ever pushed, so every local row has its INSERT/UPDATE queued, and every
        # queued DELETE has its snapshot and no row.
        assert rows == live
        assert not rows & deleted
        assert all(op.item is not None for op in ops if op.kind is OperationKind.DELETE)
        token = int(context.get_delta_token("pulled", "all") or 0)
        pages: dict[int, int] = {}
        for item in context.query("pulled"):
            pages[item["page"]] = pages.get(item["page"], 0) + 1
        # Rows and token commit together: the token is never ahead of the rows, nor behind.
        assert pages == dict.fromkeys(range(1, token + 1), PAGE_SIZE)
        return len(ops), token


@pytest.mark.slow
def test_sigkill_during_writes_never_leaves_an_inconsistent_store(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    rng = random.Random(1234)
    deadline = time.monotonic() + TIME_BUDGET
    kills, progress = 0, []
    workers = Workers(path)
    try:
        while kills < KILLS and time.monotonic() < deadline:
            workers.run_and_kill(seed=kills, delay=rng.uniform(0.01, 0.12))
            kills += 1
            progress.append(check_invariants(path))
    finally:
        workers.close()
    assert kills >= 5, "too few kills within the time budget to mean anything"
    # The workers did real work between kills (otherwise the invariants are vacuous).
    ops, pages = progress[-1]
    assert ops > 20 and pages > 3, progress
