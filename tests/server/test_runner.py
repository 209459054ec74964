"""Where database work runs: SQLite on the event loop, writers through the write gate.

The gate's ``flock`` is per open file, so a second ``WriteGate`` on the same lock file stands
in for another server process.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import sqlalchemy as sa
from starlette.requests import Request

from tablesync.server import Table, WriteEvent, create_app
from tablesync.server._errors import ServiceUnavailable
from tablesync.server._runner import DatabaseRunner, WriteGate

from .conftest import V3

pytestmark = pytest.mark.timeout(60)


def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def test_gate_is_exclusive_across_open_files(tmp_path: Path) -> None:
    path = str(tmp_path / "db-writer.lock")
    first, second = WriteGate(path), WriteGate(path)
    try:
        assert first.try_acquire()
        assert not second.try_acquire()  # another "process" is writing
        assert not first.try_acquire()  # and one writer per process at a time
        first.release()
        assert second.try_acquire()
        second.release()
    finally:
        first.close()
        second.close()


def _hold_gate(path: str, held: Any, release: Any) -> None:
    gate = WriteGate(path)
    gate.acquire()
    held.set()
    release.wait(30)
    gate.release()


def test_gate_orders_writers_of_two_processes(tmp_path: Path) -> None:
    path = str(tmp_path / "db-writer.lock")
    context = multiprocessing.get_context("spawn")
    held, release = context.Event(), context.Event()
    child = context.Process(target=_hold_gate, args=(path, held, release))
    child.start()
    gate = WriteGate(path)
    try:
        assert held.wait(30)
        assert not gate.try_acquire()
        release.set()
        gate.acquire(timeout=30)  # granted once the other process lets go
        gate.release()
    finally:
        release.set()
        child.join(30)
        gate.close()


def test_gate_wait_times_out_with_503(tmp_path: Path) -> None:
    path = str(tmp_path / "db-writer.lock")
    holder, waiter = WriteGate(path), WriteGate(path)
    try:
        holder.acquire()
        started = time.monotonic()
        with pytest.raises(ServiceUnavailable):
            waiter.acquire(timeout=0.2)
        assert time.monotonic() - started >= 0.2
        assert waiter.try_acquire() is False  # the failed wait left nothing held
        holder.release()
        assert waiter.try_acquire()
        waiter.release()
    finally:
        holder.close()
        waiter.close()


def test_sqlite_reads_and_writes_run_on_the_event_loop(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'a.db'}")
    runner = DatabaseRunner(engine)

    async def main() -> tuple[int, int, int]:
        loop_thread = threading.get_ident()
        read = await runner.read(threading.get_ident)
        written = await runner.write(threading.get_ident)
        return loop_thread, read, written

    try:
        loop_thread, read, written = anyio.run(main)
        assert read == loop_thread and written == loop_thread
    finally:
        runner.close()
        engine.dispose()


def test_postgres_work_runs_on_worker_threads(postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://"))
    runner = DatabaseRunner(engine)

    async def main() -> tuple[int, int, int]:
        loop_thread = threading.get_ident()
        return (
            loop_thread,
            await runner.read(threading.get_ident),
            await runner.write(threading.get_ident),
        )

    try:
        loop_thread, read, written = anyio.run(main)
        assert read != loop_thread and written != loop_thread
    finally:
        engine.dispose()


def test_a_write_waiting_for_another_process_does_not_stop_reads(tmp_path: Path) -> None:
    database = tmp_path / "shared.db"
    app = create_app(f"sqlite:///{database}", tables=[Table("todo", columns={"n": "integer"})])
    other_process = WriteGate(f"{database}-writer.lock")

    async def main() -> None:
        async with _client(app) as client:
            first = await client.post("/tables/todo", json={"id": "a", "n": 1}, headers=V3)
            assert first.status_code == 201
            other_process.acquire()
            try:
                write = asyncio.ensure_future(
                    client.post("/tables/todo", json={"id": "b", "n": 2}, headers=V3)
                )
                await asyncio.sleep(0.3)
                assert not write.done()  # waits for the other writer...
                page = await client.get("/tables/todo", headers=V3)
                assert [item["id"] for item in page.json()["items"]] == ["a"]  # ...reads go on
            finally:
                other_process.release()
            assert (await write).status_code == 201

    try:
        asyncio.run(main())
    finally:
        other_process.close()


def test_a_blocking_hook_runs_off_the_event_loop(tmp_path: Path) -> None:
    entered, release = threading.Event(), threading.Event()

    def notify(_request: Request, _event: WriteEvent) -> None:
        entered.set()
        release.wait(10)  # an application's slow notification

    table = Table("todo", columns={"n": "integer"}, after_commit=notify)
    app = create_app(f"sqlite:///{tmp_path / 'hooks.db'}", tables=[table])

    async def main() -> None:
        async with _client(app) as client:
            write = asyncio.ensure_future(
                client.post("/tables/todo", json={"id": "a", "n": 1}, headers=V3)
            )
            assert await asyncio.to_thread(entered.wait, 30)
            page = await client.get("/tables/todo", headers=V3)  # the loop is free
            assert [item["id"] for item in page.json()["items"]] == ["a"]
            assert not write.done()  # answered while the hook still blocks
            release.set()
            assert (await write).status_code == 201

    try:
        asyncio.run(main())
    finally:
        release.set()


def test_writers_waiting_for_another_process_go_in_arrival_order(tmp_path: Path) -> None:
    database = tmp_path / "queue.db"
    app = create_app(f"sqlite:///{database}", tables=[Table("todo", columns={"n": "integer"})])
    other_process = WriteGate(f"{database}-writer.lock")

    async def main() -> list[Any]:
        async with _client(app) as client:
            other_process.acquire()
            writes = []
            try:
                for n in range(5):
                    body = {"id": f"w{n}", "n": n}
                    writes.append(
                        asyncio.ensure_future(client.post("/tables/todo", json=body, headers=V3))
                    )
                    await asyncio.sleep(0.02)  # each one queued before the next arrives
                assert not any(write.done() for write in writes)
            finally:
                other_process.release()
            return [(await write).json() for write in writes]

    try:
        items = asyncio.run(main())
    finally:
        other_process.close()
    stamps = [item["updatedAt"] for item in items]
    assert [item["id"] for item in items] == [f"w{n}" for n in range(5)]
    assert stamps == sorted(stamps) and len(set(stamps)) == 5


def test_postgres_writes_use_at_most_write_threads_at_once(postgres_url: str) -> None:
    from tablesync.server._runner import WRITE_THREADS

    engine = sa.create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://"))
    runner = DatabaseRunner(engine)
    lock, running, most = threading.Lock(), [0], [0]

    def write() -> None:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1

    async def main() -> None:
        async with anyio.create_task_group() as group:
            for _ in range(3 * WRITE_THREADS):
                group.start_soon(runner.write, write)

    try:
        anyio.run(main)
    finally:
        engine.dispose()
    assert most[0] == WRITE_THREADS


@contextlib.contextmanager
def _runner_beside_another_process(path: Path) -> Iterator[tuple[DatabaseRunner, WriteGate]]:
    """A runner on a SQLite file, and the gate of another "process" writing to it."""
    engine = sa.create_engine(f"sqlite:///{path}")
    runner = DatabaseRunner(engine)
    other_process = WriteGate(f"{path}-writer.lock")
    try:
        yield runner, other_process
    finally:
        other_process.close()
        runner.close()
        engine.dispose()


def test_a_waiting_writer_is_woken_by_the_kernel_not_by_polling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tries: list[bool] = []

    async def main(runner: DatabaseRunner, other_process: WriteGate) -> str:
        other_process.acquire()
        try:
            write = asyncio.ensure_future(runner.write(lambda: "written"))
            await asyncio.sleep(0.3)
            assert not write.done()
        finally:
            other_process.release()
        return await write

    with _runner_beside_another_process(tmp_path / "woken.db") as (runner, other_process):
        assert runner.gate is not None
        try_acquire = runner.gate.try_acquire

        def counted() -> bool:
            tries.append(taken := try_acquire())
            return taken

        monkeypatch.setattr(runner.gate, "try_acquire", counted)
        assert asyncio.run(main(runner, other_process)) == "written"
    # Two tries before the wait, none during it: polling every millisecond, as the gate
    # did before, tried about 300 times in those 0.3 s.
    assert len(tries) <= 2 and not any(tries)


def test_a_writer_that_gives_up_waiting_hands_the_gate_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tablesync.server._runner.WRITE_WAIT_S", 0.2)

    async def main(runner: DatabaseRunner, other_process: WriteGate) -> str:
        other_process.acquire()
        try:
            with pytest.raises(ServiceUnavailable):
                await runner.write(lambda: "too late")
        finally:
            other_process.release()
        # The waiting thread takes the gate once it is free, and gives it straight back.
        for _ in range(100):
            if other_process.try_acquire():
                other_process.release()
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the gate was never handed back")
        return await runner.write(lambda: "written")

    with _runner_beside_another_process(tmp_path / "given-up.db") as (runner, other_process):
        assert asyncio.run(main(runner, other_process)) == "written"
