"""Where a request's database work runs: on the event loop for SQLite, on worker threads else.

Measured on the 2-core machine of docs/benchmarks.md: Python's ``sqlite3`` releases the GIL
around every step of a statement, so a page query run by several threads at once spends its
time handing the GIL back and forth (one thread: 0.22 ms of CPU per query; four: 0.8 ms;
sixteen: 1.2 ms). A query or a write on a SQLite file takes a fraction of a millisecond, so
running it on the event loop itself, one at a time, is faster than any thread pool and keeps
the GIL with one thread. Writers additionally queue on a :class:`WriteGate` instead of on
SQLite's busy handler, whose sleeps (up to 100 ms each) made the insert p99 about a second.
Single-request writes that reach one process together also commit together
(:meth:`DatabaseRunner.write_grouped`, "group commit"): one transaction for all of them,
each write in its own savepoint.

PostgreSQL statements wait on the network and on the server, so they keep to worker threads:
``READ_THREADS`` reading and ``WRITE_THREADS`` writing per process. Page queries and reads by
id are awaited on the event loop instead where they can be (``_loop_reads``); they come here
when they cannot.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import queue
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import anyio.to_thread
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ._errors import ServiceUnavailable

try:  # POSIX only; elsewhere the gate serializes one process's writers only.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

T = TypeVar("T")
_PerLoop = weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter]
#: One write of a group: called with the group's shared transaction (or ``None``: its own).
Job = Callable[[Any], T]
#: Runs jobs (writes of the table named, on SQLite maybe of others too) in one transaction,
#: in order, taking each from the iterable only when it is about to run it; returns the
#: outcome (a result or the exception it raised) of each job it took. It may stop early,
#: after an outcome that leaves the transaction in doubt; the jobs not taken then run in a
#: new group.
GroupRun = Callable[[Iterable[Job[Any]], str], list[Any]]

#: How long a writer waits for another process's write before answering 503.
WRITE_WAIT_S = 30.0
#: Worker threads per process running PostgreSQL statements at once, for reads and for
#: writes (so neither waits behind the other). With anyio's 40 threads, 16 concurrent
#: requests contended for the GIL and, for writes, queued inside PostgreSQL on the table's
#: clock row holding connections: insert p99 160 ms and read p99 56-69 ms, against 40-47 ms
#: and 32-36 ms with 4 threads, at the same throughput (docs/benchmarks.md). A process is
#: bound by the GIL anyway; more parallel statements need more processes (--workers).
READ_THREADS = WRITE_THREADS = 4
#: The most writes one group commit runs. A PostgreSQL group takes the writes that arrive
#: while it waits for its table's clock row or runs; the bound keeps its transaction, and
#: the wait of its first write, short.
MAX_GROUP = 64
#: How often a writer on a worker thread (one running user hooks) tries the gate again while
#: another process holds it: ``flock`` cannot time out, so that path polls.
_POLL_S = 0.001


class WriteGate:
    """One SQLite writer at a time: a thread lock, and an ``flock`` shared by processes.

    The ``flock`` is on a small file beside the database (``<database>-writer.lock``), never on
    the database itself: closing any descriptor of a file drops the POSIX locks SQLite holds on
    it. The gate only orders tablesync's own writers; SQLite's lock still protects the data
    from any other writer, which ``busy_timeout`` waits for.
    """

    def __init__(self, lock_path: str | None) -> None:
        self._threads = threading.Lock()
        self._fd: int | None = None
        if lock_path is not None and fcntl is not None:
            with contextlib.suppress(OSError):  # a read-only directory: threads only
                self._fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)

    def try_acquire(self) -> bool:
        """Take the gate if it is free right now."""
        if not self._threads.acquire(blocking=False):
            return False
        if self._fd is None or self._flock(blocking=False):
            return True
        self._threads.release()
        return False

    def acquire(self, timeout: float = WRITE_WAIT_S) -> None:
        """Wait for the gate (on a worker thread); 503 after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        if not self._threads.acquire(timeout=timeout):
            raise _busy()
        # flock cannot time out; poll it. This path runs only while another process writes.
        while self._fd is not None and not self._flock(blocking=False):
            if time.monotonic() > deadline:
                self._threads.release()
                raise _busy()
            time.sleep(_POLL_S)

    def acquire_blocking(self) -> None:
        """Wait for the gate with no time limit, woken by the kernel the moment it is free."""
        self._threads.acquire()
        if self._fd is not None:
            self._flock(blocking=True)

    def release(self) -> None:
        """Let the next writer in."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._threads.release()

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Hold the gate (waiting for it) for the duration of the block."""
        self.acquire()
        try:
            yield
        finally:
            self.release()

    def close(self) -> None:
        """Close the lock file (the gate then orders this process's writers only)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _flock(self, *, blocking: bool) -> bool:
        assert self._fd is not None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            return False
        return True


def _busy() -> ServiceUnavailable:
    return ServiceUnavailable(
        "The database is busy or unavailable; retry shortly", headers={"Retry-After": "1"}
    )


class _GateWaiter:
    """A daemon thread that waits in the kernel for the gate on behalf of event loops.

    Each wait is a future of the waiting loop; the thread takes the gate, then hands it over
    on that loop. A wait given up before the gate came (it timed out, or its task was
    cancelled) hands the gate straight back. A daemon: a thread stuck in ``flock`` behind a
    hung process must not keep this one from exiting.
    """

    def __init__(self, gate: WriteGate) -> None:
        self._gate = gate
        self._requests: queue.SimpleQueue[asyncio.Future[None] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="tablesync-gate", daemon=True)
        self._thread.start()

    async def wait(self) -> None:
        """Hold the gate on return; 503 after ``WRITE_WAIT_S`` seconds."""
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._requests.put(granted)
        try:
            await asyncio.wait_for(asyncio.shield(granted), WRITE_WAIT_S)
        except BaseException as exc:  # timed out, or this task was cancelled
            if not granted.done():
                granted.cancel()  # the thread hands the gate back when it comes
            elif not granted.cancelled():
                self._gate.release()  # it came just now, for nobody
            if isinstance(exc, TimeoutError):
                raise _busy() from None
            raise

    def stop(self) -> None:
        """End the thread once it is not waiting (at once, unless another process writes)."""
        self._requests.put(None)

    def _serve(self) -> None:
        while (granted := self._requests.get()) is not None:
            self._gate.acquire_blocking()
            try:
                granted.get_loop().call_soon_threadsafe(self._hand_over, granted)
            except RuntimeError:  # that loop is closed
                self._gate.release()

    def _hand_over(self, granted: asyncio.Future[None]) -> None:
        if granted.done():  # the waiter gave up meanwhile
            self._gate.release()
        else:
            granted.set_result(None)


class _Group:
    """The writes of one event loop that wait to run together, and the task that runs them.

    ``jobs`` is appended to on the loop and, for PostgreSQL, taken from by the group's worker
    thread while it runs (``deque`` appends and pops are atomic): a write that arrives while
    the group waits for the table's clock row, or runs, joins it instead of waiting for the
    next one. The futures are only ever completed on the loop.
    """

    __slots__ = ("jobs", "leader")

    def __init__(self) -> None:
        self.jobs: deque[tuple[Job[Any], asyncio.Future[Any]]] = deque()
        self.leader: asyncio.Task[None] | None = None

    def take(self, taken: list[tuple[Job[Any], asyncio.Future[Any]]]) -> Iterator[Job[Any]]:
        """The jobs to run, taken one by one (into ``taken``) as the group asks for them.

        A job whose waiter was cancelled (its client went away) before its turn is skipped.
        """
        while len(taken) < MAX_GROUP:
            try:
                job, future = self.jobs.popleft()
            except IndexError:
                return
            if future.done():
                continue
            taken.append((job, future))
            yield job


class DatabaseRunner:
    """Runs the synchronous service calls of requests: ``read`` and ``write``."""

    def __init__(self, engine: Engine, run_group: GroupRun | None = None) -> None:
        self.inline = engine.dialect.name == "sqlite"
        self._run_group = run_group
        # An in-memory SQLite database is one shared connection: callers on several event
        # loops (test clients on threads) must take turns.
        shared = isinstance(engine.pool, sa.pool.StaticPool)
        self._serial = threading.Lock() if shared else None
        database = engine.url.database
        file_backed = self.inline and not shared and database not in (None, "", ":memory:")
        self.gate = WriteGate(f"{database}-writer.lock") if file_backed else None
        self._waiter: _GateWaiter | None = None
        # Per event loop (an app can be driven from several, e.g. test clients on threads).
        self._queues: _PerLoop = weakref.WeakKeyDictionary()
        self._read_threads: _PerLoop = weakref.WeakKeyDictionary()
        self._write_threads: _PerLoop = weakref.WeakKeyDictionary()
        # Per loop, per table (PostgreSQL) or one for all (SQLite: key None).
        self._groups: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[str | None, _Group]
        ] = weakref.WeakKeyDictionary()

    async def read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a call that only reads."""
        call = functools.partial(fn, *args, **kwargs)
        if not self.inline:
            limiter = self._per_loop(self._read_threads, READ_THREADS)
            return await anyio.to_thread.run_sync(call, limiter=limiter)
        return self._in_turn(call)

    async def write(self, call: Callable[[], T], *, user_hooks: bool = False) -> T:
        """Run a call that writes: SQLite writers one at a time, per database file.

        ``user_hooks``: the write runs the application's own hooks, which may block (an
        ``after_commit`` notification, say): it runs on a worker thread, holding the gate.
        """
        if not self.inline:
            limiter = self._per_loop(self._write_threads, WRITE_THREADS)
            return await anyio.to_thread.run_sync(call, limiter=limiter)
        if self.gate is None:
            if user_hooks:
                return await anyio.to_thread.run_sync(self._in_turn, call)
            return self._in_turn(call)
        if user_hooks:
            return await anyio.to_thread.run_sync(_under, self.gate, call)
        await self._wait_for_gate()
        try:
            return call()
        finally:
            self.gate.release()

    async def write_grouped(self, job: Job[T], table: str) -> T:
        """Run a write of ``table`` that may share its transaction with writes beside it.

        The writes that reach this process while the previous group runs (or waits for the
        write gate, or in the same turn of the event loop) form the next group: one
        transaction for all of them, each job in its own savepoint of it (see ``GroupRun``),
        so each has the outcome it would have had alone, and none is answered before its
        group commits. SQLite: one group per process, on the loop, one gate turn, one
        ``BEGIN IMMEDIATE`` and one ``COMMIT``. PostgreSQL: one group per table, on a worker
        thread; the table's clock row is locked for the whole group, so the group pays for
        one commit (a WAL flush, ~1 ms here) where each write used to pay for its own while
        the others queued on that row.
        """
        if self._run_group is None:
            return await self.write(functools.partial(job, None))
        loop = asyncio.get_running_loop()
        groups = self._groups.get(loop)
        if groups is None:
            groups = self._groups[loop] = {}
        key = None if self.inline else table
        group = groups.get(key)
        if group is None:
            group = groups[key] = _Group()
        future: asyncio.Future[T] = loop.create_future()
        group.jobs.append((job, future))
        if group.leader is None:
            # A task of its own, not the first request's: a request that is cancelled (its
            # client went away) must not strand the writes that joined it.
            group.leader = loop.create_task(self._lead(group, table))
        return await future

    async def _lead(self, group: _Group, table: str) -> None:
        """Take the gate (SQLite), then run the group's jobs until none is left."""
        try:
            await asyncio.sleep(0)  # the writes that arrived in this turn of the loop join
            if self.gate is not None:
                await self._wait_for_gate()
            try:
                while group.jobs:
                    await self._run_jobs(group, table)
            finally:
                if self.gate is not None:
                    self.gate.release()
        except BaseException as exc:  # the gate was not free in time (503), or a shutdown
            for _, future in group.jobs:
                if not future.done():
                    future.set_exception(exc) if isinstance(exc, Exception) else future.cancel()
            group.jobs.clear()
            if not isinstance(exc, Exception):
                raise
        finally:
            group.leader = None

    async def _run_jobs(self, group: _Group, table: str) -> None:
        """One transaction of the group's jobs; those it did not take stay queued.

        The futures are completed on the loop only; a worker thread runs the transaction
        and takes the jobs from the queue as it goes (``_Group.take``).
        """
        taken: list[tuple[Job[Any], asyncio.Future[Any]]] = []
        run = functools.partial(self._run_together, group.take(taken), taken, table)
        if self.inline:
            outcomes = self._in_turn(run)
        else:
            limiter = self._per_loop(self._write_threads, WRITE_THREADS)
            outcomes = await anyio.to_thread.run_sync(run, limiter=limiter)
        for (_, future), outcome in zip(taken, outcomes, strict=False):
            if future.done():
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
        group.jobs.extendleft(reversed(taken[len(outcomes) :]))  # taken, not run: next group

    def _run_together(self, jobs: Iterator[Job[Any]], taken: list[Any], table: str) -> list[Any]:
        assert self._run_group is not None
        try:
            return self._run_group(jobs, table)
        except Exception as exc:  # the commit failed: none of these writes happened
            return [exc] * len(taken)

    async def _wait_for_gate(self) -> None:
        """Take the gate; while another process holds it, the loop serves other requests.

        The wait itself is a thread blocked in ``flock``, which the kernel wakes the moment the
        other process lets go. Polling the gate instead (every millisecond) left it idle for
        half a poll on average at each handover, and the process that had just written
        usually took it back first (docs/benchmarks.md, "Current results (session 4)").
        """
        assert self.gate is not None
        if self.gate.try_acquire():
            return
        # The waiting writers of this loop queue in order; only the first one waits.
        async with self._per_loop(self._queues, 1):
            if self.gate.try_acquire():
                return
            if self._waiter is None:
                self._waiter = _GateWaiter(self.gate)
            await self._waiter.wait()

    @staticmethod
    def _per_loop(limiters: _PerLoop, tokens: int) -> anyio.CapacityLimiter:
        loop = asyncio.get_running_loop()
        limiter = limiters.get(loop)
        if limiter is None:
            limiter = limiters[loop] = anyio.CapacityLimiter(tokens)
        return limiter

    def close(self) -> None:
        """Stop the gate's waiting thread and release the gate's lock file."""
        if self._waiter is not None:
            self._waiter.stop()
        if self.gate is not None:
            self.gate.close()

    def _in_turn(self, call: Callable[[], T]) -> T:
        if self._serial is None:
            return call()
        with self._serial:
            return call()


def _under(gate: WriteGate, call: Callable[[], T]) -> T:
    with gate.held():
        return call()
