"""A client process that syncs a fixed plan of writes until it is SIGKILLed (see test_kill.py).

Usage: ``python -m tests.reliability.kill_worker <store> <service url> <phase file>``. It is a
fork server, so each run starts in milliseconds with tablesync already imported: for each line
``<seed> <kill|finish>`` on stdin it forks a worker and prints ``pid <pid>``; the worker
prints ``ready`` once its store and client are open; the server prints ``exit <wait status>``
when the worker ends.

A worker resumes the plan (:func:`make_plan`, the same for every run) at the step recorded in
the store, and interleaves local writes with pushes, pulls and purges at random. Each step's
local write commits together with the step counter, so the log of intended writes is exactly
"the first N steps of the plan", whatever instant the process was killed at. The phase file
holds one letter saying what the worker was doing (W write, P push, L pull, G purge), so the
test can tell which phase each kill hit. A ``finish`` run completes the plan, pushes until
the queue is empty and pulls once.
"""

from __future__ import annotations

import os
import random
import sys
from dataclasses import dataclass
from typing import Any

import httpx

from tablesync import Client, PushFailedError, QueueError, RetryPolicy, SQLiteStore, TableSyncError
from tablesync.client._context import SyncContext

TABLE = "todoitem"
STEP_KEY = "kill|step"
PLAN_STEPS = 3000
PHASES = {"W": "local write", "P": "push", "L": "pull", "G": "purge", "-": "idle"}
STALL_LIMIT = 20
"""Rounds of writes and push in a row that may make no progress before ``finish`` gives up."""
RETRY = RetryPolicy(max_attempts=4, backoff_base=0.005, backoff_max=0.02, jitter=True)


@dataclass(frozen=True, slots=True)
class Step:
    """One intended write: ``kind`` of item ``item_id``, setting ``n`` (the step number)."""

    kind: str
    item_id: str
    n: int


def make_plan(count: int = PLAN_STEPS, seed: int = 7) -> list[Step]:
    """The writes every run works through: inserts, updates and deletes of live items."""
    rng = random.Random(seed)
    live: list[str] = []
    plan: list[Step] = []
    for n in range(count):
        roll = rng.random()
        if roll < 0.35 or len(live) < 5:
            live.append(f"k{n:05d}")
            plan.append(Step("insert", live[-1], n))
        elif roll < 0.85:
            plan.append(Step("update", rng.choice(live), n))
        else:
            plan.append(Step("delete", live.pop(rng.randrange(len(live))), n))
    return plan


PLAN = make_plan()


def model(plan: list[Step]) -> dict[str, int | None]:
    """What the server must hold after ``plan``: id → ``n``, or ``None`` once deleted."""
    state: dict[str, int | None] = {}
    for step in plan:
        state[step.item_id] = None if step.kind == "delete" else step.n
    return state


class Worker:
    """One run: the store, the client and the position in the plan."""

    def __init__(self, store_path: str, url: str, phase_fd: int, seed: int) -> None:
        self.store = SQLiteStore(store_path)
        # Plain HTTP: no certificate store to load at each start.
        http = httpx.Client(verify=False, timeout=httpx.Timeout(10.0, connect=5.0))
        self.client = Client(url, store=self.store, retry=RETRY, http=http)
        self.context: SyncContext = self.client.context
        self.table = self.client.sync_table(TABLE)
        self.rng = random.Random(seed)
        self.phase_fd = phase_fd
        self.plan = PLAN
        self.phase("-")

    def phase(self, letter: str) -> None:
        os.pwrite(self.phase_fd, letter.encode(), 0)

    @property
    def position(self) -> int:
        return int(self.store.get_config(STEP_KEY) or 0)

    def apply(self, step: Step) -> bool:
        """Make the step's local write, with the step counter, in one transaction."""
        try:
            with self.store.atomic():
                self._write(step)
                self.store.set_config(STEP_KEY, str(step.n + 1))
        except QueueError:
            return False  # a delete of an insert already attempted: push first (NC rule)
        return True

    def _write(self, step: Step) -> None:
        row: dict[str, Any] | None = self.context.get(TABLE, step.item_id)
        if step.kind == "insert":
            self.context.insert(TABLE, {"id": step.item_id, "n": step.n, "text": "kill"})
        elif step.kind == "update":
            base = row or {"id": step.item_id, "text": "kill"}  # purged locally: a blind write
            self.context.update(TABLE, {**base, "n": step.n})
        else:
            if row is None and self.context.store.get_operation(TABLE, step.item_id) is None:
                self.context.update(TABLE, {"id": step.item_id})  # purged: queue a blind delete
            self.context.delete(TABLE, step.item_id)

    def writes(self, count: int) -> None:
        self.phase("W")
        position = self.position
        for step in self.plan[position : position + count]:
            if not self.apply(step):
                self.push()
                return
        self.phase("-")

    def push(self) -> None:
        self.phase("P")
        try:
            self.client.push()
        except PushFailedError as exc:
            for error in exc.result.errors:  # a single writer must never meet a conflict
                say(f"error {error.status} {error.item_id}")
        self.phase("-")

    def pull(self) -> None:
        self.phase("L")
        try:
            self.table.pull(query_id="all")
        except TableSyncError:
            pass  # the network failed for good, or the implicit push did: the next run resumes
        self.phase("-")

    def purge(self) -> None:
        if self.context.pending_count() == 0:
            self.phase("G")
            self.table.purge(query_id="all")
            self.phase("-")

    def run(self) -> None:
        while True:
            self.writes(self.rng.randint(1, 120))
            roll = self.rng.random()
            if roll < 0.3:
                self.push()
            elif roll < 0.45:
                self.pull()
            elif roll < 0.55:
                self.push()
                self.purge()

    def finish(self) -> None:
        stalled = 0
        while self.position < len(self.plan):
            before = self.position
            self.writes(200)
            self.push()
            stalled = 0 if self.position > before else stalled + 1
            if stalled == STALL_LIMIT:
                # A write refused for good (a delete behind an insert that keeps failing):
                # fail now with the reason rather than loop until the test's timeout.
                sys.stderr.write(f"finish: no progress at step {before} in {stalled} rounds\n")
                raise SystemExit(1)
        for _ in range(20):
            if self.context.pending_count() == 0:
                break
            self.push()
        self.pull()


def say(line: str) -> None:
    # One small write(2) per line: the fork server and its worker share the pipe atomically.
    os.write(sys.stdout.fileno(), f"{line}\n".encode())


def main() -> None:
    store_path, url, phase_path = sys.argv[1:4]
    phase_fd = os.open(phase_path, os.O_RDWR | os.O_CREAT, 0o600)
    for line in sys.stdin:
        seed, mode = line.split()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                worker = Worker(store_path, url, phase_fd, int(seed))
                say("ready")
                worker.finish() if mode == "finish" else worker.run()
                code = 0
            finally:
                os._exit(code)  # never return into the fork server's loop
        say(f"pid {pid}")
        _, status = os.waitpid(pid, 0)
        say(f"exit {status}")


if __name__ == "__main__":
    main()
