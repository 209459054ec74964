"""The updatedAt clock: unique, strictly increasing stamps, committed in stamp order."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import sqlalchemy as sa

from tablesync.protocol import parse_datetime, to_millis
from tablesync.server import Table
from tablesync.server._clock import next_stamp
from tablesync.server._engine import make_engine, writer

WRITERS = 4
WRITES_EACH = 25
TIME_LIMIT_S = 60


def test_concurrent_http_writers_get_unique_increasing_stamps(
    running_server: Any, db_url: str
) -> None:
    base = running_server(database=db_url, tables=[Table("log", columns={"n": "integer"})])
    engine = make_engine(db_url)
    deadline = time.monotonic() + TIME_LIMIT_S
    errors: list[BaseException] = []
    late: list[tuple[str, int, int]] = []
    done = threading.Event()

    def write(worker: int) -> None:
        try:
            with httpx.Client(base_url=base, headers={"ZUMO-API-VERSION": "3.0.0"}) as http:
                for n in range(WRITES_EACH):
                    assert time.monotonic() < deadline, "writers ran out of time"
                    item = {"id": f"w{worker}-{n}", "n": n}
                    response = http.post("/tables/log", json=item, timeout=30)
                    assert response.status_code == 201, response.text
        except BaseException as exc:
            errors.append(exc)

    def watch() -> None:
        # A reader must never see a row appear with a stamp at or below one it already saw.
        seen: dict[str, int] = {}
        high = -1
        while not done.is_set() and time.monotonic() < deadline:
            with engine.connect() as conn:
                rows = conn.execute(sa.text('SELECT id, "updatedAt" FROM log')).all()
            fresh = {row[0]: _millis(row[1]) for row in rows if row[0] not in seen}
            late.extend((i, ms, high) for i, ms in fresh.items() if ms <= high)
            seen.update(fresh)
            high = max([high, *fresh.values()])
            time.sleep(0.002)

    watcher = threading.Thread(target=watch)
    watcher.start()
    threads = [threading.Thread(target=write, args=(w,)) for w in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIME_LIMIT_S)
    done.set()
    watcher.join(TIME_LIMIT_S)
    assert not errors, errors[0]
    assert late == [], f"rows committed after a newer stamp was visible: {late[:5]}"
    with engine.connect() as conn:
        stamps = [
            _millis(v) for v in conn.execute(sa.text('SELECT "updatedAt" FROM log')).scalars()
        ]
    engine.dispose()
    assert len(stamps) == WRITERS * WRITES_EACH
    assert len(set(stamps)) == len(stamps), "stamps must be unique per table"


def _millis(value: Any) -> int:
    return to_millis(parse_datetime(value) if isinstance(value, str) else value)


def test_next_stamp_advances_past_a_clock_ahead_of_now(db_url: str) -> None:
    from tablesync.server import create_app

    app = create_app(db_url, [Table("t")])
    engine = app.state.tablesync.schema.engine
    future = int(time.time() * 1000) + 3_600_000
    with writer(engine).begin() as conn:
        conn.execute(sa.text("UPDATE tablesync_clock SET last_ms = :f"), {"f": future})
    with writer(engine).begin() as conn:
        first = next_stamp(conn, "t")
        second = next_stamp(conn, "t")
    assert (first, second) == (future + 1, future + 2)
    engine.dispose()


def test_stamps_are_per_table(db_url: str) -> None:
    from tablesync.server import create_app

    app = create_app(db_url, [Table("a"), Table("b")])
    engine = app.state.tablesync.schema.engine
    with writer(engine).begin() as conn:
        conn.execute(
            sa.text("UPDATE tablesync_clock SET last_ms = 5000000000000 WHERE table_name = 'a'")
        )
    with writer(engine).begin() as conn:
        assert next_stamp(conn, "a") == 5000000000001
        assert next_stamp(conn, "b") < 5000000000000
    engine.dispose()
