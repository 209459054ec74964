"""Group commit: single-request SQLite writes that arrive together share one transaction.

Each write runs in its own savepoint, so its outcome is the one it has alone; none is answered
before its group commits; a write that breaks stops its group, and the rest run after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tablesync.server import Table, create_app
from tablesync.server import _repository as repo
from tablesync.server._runner import DatabaseRunner, WriteGate

from .conftest import V3, sent_statements

pytestmark = pytest.mark.timeout(60)


def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def _app(path: Path) -> Any:
    return create_app(f"sqlite:///{path}", tables=[Table("todo", columns={"n": "integer"})])


def _count_commits(app: Any) -> list[int]:
    commits = [0]

    @sa.event.listens_for(app.state.tablesync.schema.engine, "commit")
    def _on_commit(_conn: Any) -> None:
        commits[0] += 1

    return commits


def _stored(path: Path) -> dict[str, int]:
    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            rows = conn.exec_driver_sql('SELECT id, n FROM todo WHERE NOT "deleted"').all()
    finally:
        engine.dispose()
    return {row[0]: row[1] for row in rows}


async def _post_all(app: Any, bodies: Sequence[Any]) -> list[httpx.Response]:
    async with _client(app) as client:
        posts = [client.post("/tables/todo", json=body, headers=V3) for body in bodies]
        return list(await asyncio.gather(*posts))


def test_writes_arriving_together_commit_together(tmp_path: Path) -> None:
    app = _app(tmp_path / "g.db")
    commits = _count_commits(app)
    bodies = [{"id": f"w{n}", "n": n} for n in range(12)]

    replies = asyncio.run(_post_all(app, bodies))

    assert [reply.status_code for reply in replies] == [201] * 12
    assert commits[0] < 12 / 2  # one commit per write without grouping
    assert _stored(tmp_path / "g.db") == {f"w{n}": n for n in range(12)}
    stamps = [reply.json()["updatedAt"] for reply in replies]
    assert len(set(stamps)) == 12 and stamps == sorted(stamps)  # stamped in arrival order
    assert all(reply.headers["ETag"] == f'"{reply.json()["version"]}"' for reply in replies)


def test_each_write_of_a_group_has_its_own_outcome(tmp_path: Path) -> None:
    path = tmp_path / "outcomes.db"
    app = _app(path)

    async def main() -> tuple[list[httpx.Response], list[httpx.Response]]:
        async with _client(app) as client:
            first = await client.post("/tables/todo", json={"id": "taken", "n": 1}, headers=V3)
            assert first.status_code == 201
        bodies: list[Any] = [
            {"id": "a", "n": 1},
            {"id": "taken", "n": 2},  # 409 with the stored item
            {"id": "b", "n": "not a number"},  # 400, nothing written
            {"id": "c", "n": 3},
            {"id": "d", "n": 4, "unknown": 1},  # 400: no such column
            {"id": "e", "n": 5},
        ]
        return await _post_all(app, bodies), [first]

    replies, (first,) = asyncio.run(main())

    assert [reply.status_code for reply in replies] == [201, 409, 400, 201, 400, 201]
    conflict = replies[1]
    assert conflict.json() == first.json()
    assert conflict.headers["ETag"] == first.headers["ETag"]
    assert _stored(path) == {"taken": 1, "a": 1, "c": 3, "e": 5}


def test_a_write_that_breaks_stops_its_group_and_the_rest_run_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "breaks.db"
    app = _app(path)
    commits = _count_commits(app)
    insert, insert_rows = repo.insert, repo.insert_rows

    def breaking_insert(conn: Any, state: Any, view: Any, values: Any, **kw: Any) -> Any:
        if values["id"] == "broken":  # in the group's transaction
            raise sa.exc.OperationalError("INSERT", {}, Exception("disk I/O error"))
        return insert(conn, state, view, values, **kw)

    def breaking_insert_rows(conn: Any, table: Any, rows: Any) -> Any:
        if any(row["id"] == "broken" for row in rows):  # the statement that carries it
            raise sa.exc.OperationalError("INSERT", {}, Exception("disk I/O error"))
        return insert_rows(conn, table, rows)

    monkeypatch.setattr(repo, "insert", breaking_insert)
    monkeypatch.setattr(repo, "insert_rows", breaking_insert_rows)
    bodies = [{"id": "a", "n": 1}, {"id": "broken", "n": 2}, {"id": "b", "n": 3}]

    replies = asyncio.run(_post_all(app, bodies))

    assert [reply.status_code for reply in replies] == [201, 503, 201]
    assert _stored(path) == {"a": 1, "b": 3}
    assert commits[0] == 2  # "a" committed before the break; "b" in a group of its own


def test_a_failed_group_commit_answers_503_to_every_write_and_stores_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tablesync.server._service import WriteBatch

    path = tmp_path / "commit.db"
    app = _app(path)
    commit = WriteBatch.commit
    failures = [1]

    def failing_commit(self: WriteBatch) -> None:
        if failures[0]:
            failures[0] -= 1
            self.close()  # what a failed COMMIT leaves: the transaction rolled back
            raise sa.exc.OperationalError("COMMIT", {}, Exception("database is locked"))
        commit(self)

    monkeypatch.setattr(WriteBatch, "commit", failing_commit)
    bodies = [{"id": f"w{n}", "n": n} for n in range(4)]

    replies = asyncio.run(_post_all(app, bodies))

    assert [reply.status_code for reply in replies] == [503] * 4
    assert _stored(path) == {}


def _recording_runner(engine: sa.Engine, ran: list[list[str]], stop_after: int) -> DatabaseRunner:
    """A runner whose groups record their jobs' names and run at most ``stop_after`` each."""

    def run_group(jobs: Sequence[Callable[[Any], str]], _table: str) -> list[Any]:
        taken = list(jobs)[:stop_after]
        ran.append([job(None) for job in taken])
        return [f"done {name}" for name in ran[-1]]

    return DatabaseRunner(engine, run_group)


def _named(name: str) -> Callable[[Any], str]:
    return lambda _batch: name


def test_a_group_that_stops_early_runs_the_rest_in_order_after(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'r.db'}")
    ran: list[list[str]] = []
    runner = _recording_runner(engine, ran, stop_after=2)

    async def main() -> list[str]:
        return list(await asyncio.gather(*(runner.write_grouped(_named(n), "t") for n in "abcde")))

    try:
        results = asyncio.run(main())
    finally:
        runner.close()
        engine.dispose()
    assert results == [f"done {name}" for name in "abcde"]
    assert ran == [["a", "b"], ["c", "d"], ["e"]]


def test_a_cancelled_write_is_not_run(tmp_path: Path) -> None:
    database = tmp_path / "cancel.db"
    engine = sa.create_engine(f"sqlite:///{database}")
    ran: list[list[str]] = []
    runner = _recording_runner(engine, ran, stop_after=10)
    other_process = WriteGate(f"{database}-writer.lock")

    async def main() -> list[str]:
        other_process.acquire()
        try:
            writes = [asyncio.ensure_future(runner.write_grouped(_named(n), "t")) for n in "abc"]
            await asyncio.sleep(0.1)
            assert not any(write.done() for write in writes)  # waiting for the gate
            writes[1].cancel()
        finally:
            other_process.release()
        return [await writes[0], await writes[2]]

    try:
        results = asyncio.run(main())
    finally:
        other_process.close()
        runner.close()
        engine.dispose()
    assert results == ["done a", "done c"]
    assert ran == [["a", "c"]]


def test_writes_waiting_for_another_process_join_one_group(tmp_path: Path) -> None:
    database = tmp_path / "joined.db"
    app = _app(database)
    commits = _count_commits(app)
    other_process = WriteGate(f"{database}-writer.lock")

    async def main() -> list[int]:
        async with _client(app) as client:
            other_process.acquire()
            try:
                writes = []
                for n in range(5):
                    body = {"id": f"w{n}", "n": n}
                    post = client.post("/tables/todo", json=body, headers=V3)
                    writes.append(asyncio.ensure_future(post))
                    await asyncio.sleep(0.02)  # arriving one by one, while the gate is taken
            finally:
                other_process.release()
            return [(await write).status_code for write in writes]

    try:
        statuses = asyncio.run(main())
    finally:
        other_process.close()
    assert statuses == [201] * 5
    assert commits[0] == 1


def test_postgres_groups_writes_per_table_on_worker_threads(postgres_url: str) -> None:
    engine = sa.create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://"))
    groups: list[tuple[str, list[str], int]] = []

    def run_group(jobs: Sequence[Callable[[Any], str]], table: str) -> list[Any]:
        groups.append((table, [job(None) for job in jobs], threading.get_ident()))
        return [f"done {name}" for name in groups[-1][1]]

    runner = DatabaseRunner(engine, run_group)
    writes = [("a", "t1"), ("b", "t2"), ("c", "t1"), ("d", "t2")]

    async def main() -> list[str]:
        return list(await asyncio.gather(*(runner.write_grouped(_named(n), t) for n, t in writes)))

    try:
        assert asyncio.run(main()) == ["done a", "done b", "done c", "done d"]
    finally:
        engine.dispose()
    assert sorted((table, names) for table, names, _ in groups) == [
        ("t1", ["a", "c"]),
        ("t2", ["b", "d"]),
    ]
    assert threading.get_ident() not in {thread for _, _, thread in groups}


class _ClockStatements:
    """The first word of each statement on the clock table sent from now on."""

    def __init__(self, app: Any) -> None:
        self._sent = sent_statements(app.state.tablesync.schema.engine)

    def _verbs(self) -> list[str]:
        return [sql.split()[0] for sql in self._sent if "tablesync_clock" in sql]

    def clear(self) -> None:
        self._sent.clear()

    def count(self, verb: str) -> int:
        return self._verbs().count(verb)

    def __eq__(self, other: object) -> bool:
        return self._verbs() == other

    def __repr__(self) -> str:
        return repr(self._verbs())


def _clock_statements(app: Any) -> _ClockStatements:
    return _ClockStatements(app)


def _clock_row(path: Path) -> int:
    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            return int(
                conn.exec_driver_sql(
                    "SELECT last_ms FROM tablesync_clock WHERE table_name = 'todo'"
                ).scalar_one()
            )
    finally:
        engine.dispose()


def _millis(stamp: str) -> int:
    from tablesync.protocol import parse_datetime, to_millis

    return to_millis(parse_datetime(stamp))


def test_a_group_advances_its_clock_row_once_and_stores_it_once(tmp_path: Path) -> None:
    path = tmp_path / "clock.db"
    app = _app(path)
    statements = _clock_statements(app)
    commits = _count_commits(app)

    replies = asyncio.run(_post_all(app, [{"id": f"w{n}", "n": n} for n in range(10)]))

    assert [reply.status_code for reply in replies] == [201] * 10
    assert commits[0] == 1
    assert statements == ["UPDATE", "INSERT"]  # the first stamp, then the write-back
    stamps = [_millis(reply.json()["updatedAt"]) for reply in replies]
    assert stamps == sorted(set(stamps))
    assert _clock_row(path) == stamps[-1]


def test_held_clocks_survive_a_rolled_back_first_write(tmp_path: Path) -> None:
    path = tmp_path / "rolled.db"
    app = _app(path)

    async def main() -> list[httpx.Response]:
        async with _client(app) as client:
            taken = await client.post("/tables/todo", json={"id": "taken", "n": 0}, headers=V3)
            assert taken.status_code == 201
        # The first write takes the group's first stamp from the row, then its savepoint
        # (and that UPDATE) is rolled back: the 409.
        bodies = [{"id": "taken", "n": 1}, {"id": "a", "n": 2}, {"id": "b", "n": 3}]
        replies = await _post_all(app, bodies)
        async with _client(app) as client:
            replies.append(await client.post("/tables/todo", json={"id": "c"}, headers=V3))
        return replies

    replies = asyncio.run(main())

    assert [reply.status_code for reply in replies] == [409, 201, 201, 201]
    stamps = [_millis(reply.json()["updatedAt"]) for reply in replies[1:]]
    assert stamps == sorted(set(stamps))
    assert stamps[0] > _millis(replies[0].json()["updatedAt"])
    assert _clock_row(path) == stamps[-1]


def _pg_app(url: str) -> Any:
    return create_app(url, tables=[Table("todo", columns={"n": "integer"})])


def _pg_stored(url: str) -> dict[str, int]:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT id, n FROM todo WHERE NOT deleted").all()
            clock = conn.exec_driver_sql(
                "SELECT last_ms FROM tablesync_clock WHERE table_name = 'todo'"
            ).scalar_one()
    finally:
        engine.dispose()
    return {**{row[0]: row[1] for row in rows}, "clock": int(clock)}


def _assert_stored_in_stamp_order(
    url: str, replies: Sequence[httpx.Response], stored: dict[str, int]
) -> None:
    """Each reply's stamp its own and in order; ``stored`` stored; the clock at the last."""
    stamps = [_millis(reply.json()["updatedAt"]) for reply in replies]
    assert stamps == sorted(set(stamps))
    assert _pg_stored(url) == {**stored, "clock": stamps[-1]}


def _pg_transactions(url: str, ids: Sequence[str]) -> int:
    """How many transactions wrote the rows ``ids`` last (PostgreSQL's ``xmin``)."""
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    sa.text("SELECT count(DISTINCT xmin::text) FROM todo WHERE id = ANY(:ids)"),
                    {"ids": list(ids)},
                ).scalar_one()
            )
    finally:
        engine.dispose()


def _record_queries(monkeypatch: pytest.MonkeyPatch, sender: Any = None) -> list[str]:
    """Every query sent by ``sender``'s ``execute``, past SQLAlchemy.

    By default psycopg's ``ClientCursor`` (values bound into the text); psycopg's
    ``Connection`` sends what was held back (``_engine.commit_deferred``).
    """
    import psycopg

    sender = sender or psycopg.ClientCursor
    sent: list[str] = []
    execute = sender.execute

    def recorded(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(str(query))
        return execute(self, query, *args, **kwargs)

    monkeypatch.setattr(sender, "execute", recorded)
    return sent


def _one_trip(query: str) -> bool:
    query = " ".join(query.split())
    return query.startswith("BEGIN; WITH tablesync_stamps AS (UPDATE tablesync_clock SET") and (
        query.endswith("; COMMIT")
    )


def test_postgres_inserts_of_a_group_go_with_their_begin_and_commit_in_one_query(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = _pg_app(postgres_url)
    commits = _count_commits(app)
    statements = _clock_statements(app)
    sent = _record_queries(monkeypatch)

    replies = _pg_group_after(app, sent.clear, _inserts(11))

    assert [reply.status_code for reply in replies] == [201] * 11
    groups = [query for query in sent if _one_trip(query)]
    assert 1 <= len(groups) < 11 / 2 and len(groups) == len(sent), sent
    # Nothing through SQLAlchemy: no transaction of its own, no clock statement of its own.
    assert commits[0] == 0 and statements == []
    assert _pg_transactions(postgres_url, [f"w{n}" for n in range(1, 12)]) == len(groups)
    _assert_stored_in_stamp_order(postgres_url, replies, {f"w{n}": n for n in range(12)})
    assert all(reply.headers["ETag"] == f'"{reply.json()["version"]}"' for reply in replies)


def _pg_execute(url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(url) as conn:
        conn.execute(sql)


def _pg_group_after(
    app: Any, between: Callable[[], object], bodies: Sequence[Any]
) -> list[httpx.Response]:
    """``w0`` inserted alone (which starts the pool); ``between()``; then ``bodies`` at once."""

    async def main() -> list[httpx.Response]:
        async with _client(app) as client:
            first = await client.post("/tables/todo", json={"id": "w0", "n": 0}, headers=V3)
            assert first.status_code == 201
        between()
        return await _post_all(app, bodies)

    try:
        return asyncio.run(main())
    finally:
        app.state.tablesync.schema.engine.dispose()


def _inserts(count: int) -> list[dict[str, Any]]:
    return [{"id": f"w{n}", "n": n} for n in range(1, count + 1)]


def test_postgres_inserts_in_one_query_stamp_past_a_clock_ahead_of_now(postgres_url: str) -> None:
    ahead = int(time.time() * 1000) + 3_600_000
    sql = f"UPDATE tablesync_clock SET last_ms = {ahead} WHERE table_name = 'todo'"
    replies = _pg_group_after(
        _pg_app(postgres_url), functools.partial(_pg_execute, postgres_url, sql), _inserts(4)
    )

    assert [reply.status_code for reply in replies] == [201] * 4
    stamps = [_millis(reply.json()["updatedAt"]) for reply in replies]
    assert stamps == [ahead + n for n in range(1, 5)]  # the clock's next four, in order
    assert _pg_stored(postgres_url)["clock"] == ahead + 4


def test_postgres_inserts_in_one_query_find_their_clock_row_missing(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = _record_queries(monkeypatch)
    sql = "DELETE FROM tablesync_clock WHERE table_name = 'todo'"
    replies = _pg_group_after(
        _pg_app(postgres_url), functools.partial(_pg_execute, postgres_url, sql), _inserts(4)
    )

    # The query stamped nothing (no clock row) and failed on the NULL stamps; the inserts
    # then ran in a transaction, which starts the clock row again.
    assert [reply.status_code for reply in replies] == [201] * 4
    assert any(_one_trip(query) for query in sent)
    _assert_stored_in_stamp_order(postgres_url, replies, {f"w{n}": n for n in range(5)})


def test_postgres_inserts_in_one_query_that_time_out_are_not_run_again(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg

    app = create_app(
        postgres_url,
        tables=[Table("todo", columns={"n": "integer"})],
        statement_timeout=dt.timedelta(milliseconds=300),
    )
    sent = _record_queries(monkeypatch)

    async def main() -> list[httpx.Response]:
        async with _client(app) as client:
            first = await client.post("/tables/todo", json={"id": "w0", "n": 0}, headers=V3)
            assert first.status_code == 201
            # Another process holds the clock row past the statement timeout.
            with psycopg.connect(postgres_url) as other:
                other.execute(
                    "SELECT last_ms FROM tablesync_clock WHERE table_name = 'todo' FOR UPDATE"
                )
                posts = [
                    client.post("/tables/todo", json={"id": f"w{n}", "n": n}, headers=V3)
                    for n in (1, 2, 3)
                ]
                replies = list(await asyncio.gather(*posts))
                other.commit()
            return replies

    try:
        replies = asyncio.run(main())
    finally:
        app.state.tablesync.schema.engine.dispose()

    # Cancelled, the query may or may not have committed, as far as the server can tell:
    # each insert answers 503, and none runs again (a run would wait and time out anew).
    assert [reply.status_code for reply in replies] == [503] * 3, [r.text for r in replies]
    groups = [query for query in sent if _one_trip(query)]
    assert all(sum(f"'w{n}'" in query for query in groups) == 1 for n in (1, 2, 3)), sent
    assert not any("SAVEPOINT" in query for query in sent), sent
    assert set(_pg_stored(postgres_url)) == {"w0", "clock"}


def test_postgres_inserts_whose_query_was_lost_after_its_commit_are_not_run_again(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = _pg_app(postgres_url)
    insert_committed = repo.insert_committed

    def lost_reply(*args: Any) -> Any:
        insert_committed(*args)  # committed; then the connection goes before the answer
        raise sa.exc.OperationalError("COMMIT", {}, Exception("server closed the connection"))

    def break_the_answer() -> None:
        monkeypatch.setattr(repo, "insert_committed", lost_reply)

    replies = _pg_group_after(app, break_the_answer, _inserts(3))

    # Run again, they would answer 409 with their own rows: the client would take its
    # write for a conflict. A 503 makes it retry, and the retry finds the row stored.
    assert [reply.status_code for reply in replies] == [503] * 3, [r.text for r in replies]
    assert _pg_stored(postgres_url) == {
        **{f"w{n}": n for n in range(4)},
        "clock": _pg_stored(postgres_url)["clock"],
    }


def test_postgres_updates_of_a_table_commit_together_under_its_clock_lock(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg

    app = _pg_app(postgres_url)
    commits = _count_commits(app)
    statements = _clock_statements(app)
    sent = _record_queries(monkeypatch, psycopg.Connection)

    async def main() -> list[httpx.Response]:
        async with _client(app) as client:
            for n in range(12):
                created = await client.post("/tables/todo", json={"id": f"w{n}"}, headers=V3)
                assert created.status_code == 201
            commits[0] = 0
            statements.clear()
            sent.clear()
            patches = [
                client.patch(f"/tables/todo/w{n}", json={"n": n}, headers=V3) for n in range(12)
            ]
            return list(await asyncio.gather(*patches))

    try:
        replies = asyncio.run(main())
    finally:
        app.state.tablesync.schema.engine.dispose()

    assert [reply.status_code for reply in replies] == [200] * 12
    assert 1 <= commits[0] < 12 / 2
    # Per group: the lock up front; no UPDATE per write; the write-back in the COMMIT's query.
    assert statements.count("SELECT") == commits[0] and statements.count("UPDATE") == 0
    commits_sent = [query for query in sent if query.endswith("COMMIT")]
    assert len(commits_sent) == commits[0], sent
    assert all(query.startswith("UPDATE tablesync_clock SET") for query in commits_sent), sent
    _assert_stored_in_stamp_order(postgres_url, replies, {f"w{n}": n for n in range(12)})


def test_postgres_group_whose_transaction_aborts_answers_503_and_stores_nothing(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = _pg_app(postgres_url)
    service = app.state.tablesync
    write, insert_together = service._write, service._insert_together

    def aborting_write(req: Any, state: Any, operation: Any, action: Any, batch: Any) -> Any:
        if req.body.get("id") == "aborts" and batch is not None:
            # A statement failing outside the write's savepoint aborts the transaction.
            batch.connection().exec_driver_sql("SELECT 1 / 0")
        return write(req, state, operation, action, batch)

    aborted: list[str] = []

    def aborting_insert_together(inserts: Any, batch: Any, outcomes: Any) -> Any:
        # The same, where the group's inserts share one statement.
        if any(insert.req.body.get("id") == "aborts" for insert in inserts):
            aborted.append("together")
            with contextlib.suppress(sa.exc.DBAPIError):
                batch.connection().exec_driver_sql("SELECT 1 / 0")
        return insert_together(inserts, batch, outcomes)

    def failing_insert_committed(*_args: Any) -> Any:
        # The database refuses the inserts' one query (nothing written): they run in a
        # transaction, to find whose value it was.
        raise sa.exc.IntegrityError("INSERT", {}, Exception("null value in column"))

    def break_the_writes() -> None:
        monkeypatch.setattr(service, "_write", aborting_write)
        monkeypatch.setattr(service, "_insert_together", aborting_insert_together)
        monkeypatch.setattr(repo, "insert_committed", failing_insert_committed)

    bodies = [{"id": "a", "n": 1}, {"id": "aborts", "n": 2}, {"id": "b", "n": 3}]
    replies = _pg_group_after(app, break_the_writes, bodies)

    # Without the check, PostgreSQL's COMMIT would silently roll back "a" after its 201.
    assert [reply.status_code for reply in replies] == [503, 503, 503]
    assert aborted  # the group's inserts ran in a transaction, which aborted
    stored = _pg_stored(postgres_url)
    assert {key for key in stored if key != "clock"} == {"w0"}


async def _while_clock_row_is_held(
    app: Any, url: str, send: Callable[[httpx.AsyncClient, int], Any]
) -> list[httpx.Response]:
    """``send(client, n)`` for n = 1..5, one by one, while another process holds the clock."""
    import psycopg

    async with _client(app) as client:
        first = await client.post("/tables/todo", json={"id": "w0", "n": 0}, headers=V3)
        with psycopg.connect(url) as other:
            other.execute(
                "SELECT last_ms FROM tablesync_clock WHERE table_name = 'todo' FOR UPDATE"
            )
            writes = []
            for n in range(1, 6):
                writes.append(asyncio.ensure_future(send(client, n)))
                await asyncio.sleep(0.02)  # arriving one by one, while the group waits
            other.commit()
        return [first, *[await write for write in writes]]


def test_postgres_inserts_arriving_while_a_group_waits_for_the_clock_form_the_next(
    postgres_url: str,
) -> None:
    app = _pg_app(postgres_url)

    def insert(client: httpx.AsyncClient, n: int) -> Any:
        return client.post("/tables/todo", json={"id": f"w{n}", "n": n}, headers=V3)

    try:
        replies = asyncio.run(_while_clock_row_is_held(app, postgres_url, insert))
    finally:
        app.state.tablesync.schema.engine.dispose()

    assert [reply.status_code for reply in replies] == [201] * 6
    # w1 waited for the clock row alone, in its one query; w2-w5 then went in one more.
    assert _pg_transactions(postgres_url, ["w1"]) == 1
    assert _pg_transactions(postgres_url, [f"w{n}" for n in range(1, 6)]) == 2
    _assert_stored_in_stamp_order(postgres_url, replies, {f"w{n}": n for n in range(6)})


def test_postgres_writes_arriving_while_a_group_waits_for_the_clock_join_it(
    postgres_url: str,
) -> None:
    app = _pg_app(postgres_url)
    commits = _count_commits(app)

    def update(client: httpx.AsyncClient, n: int) -> Any:
        if n == 1:
            commits[0] = 0
        return client.patch("/tables/todo/w0", json={"n": n}, headers=V3)

    try:
        replies = asyncio.run(_while_clock_row_is_held(app, postgres_url, update))
    finally:
        app.state.tablesync.schema.engine.dispose()

    assert [reply.status_code for reply in replies] == [201] + [200] * 5
    assert commits[0] == 1  # the first update waited for the clock row; the rest joined it
    _assert_stored_in_stamp_order(postgres_url, replies, {"w0": 5})


def test_replies_are_rendered_after_their_group_commits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rendering a reply holds no lock: the other processes' writers need not wait for it."""
    app = _app(tmp_path / "render.db")
    events: list[str] = []
    sa.event.listen(app.state.tablesync.schema.engine, "commit", lambda _: events.append("commit"))
    from tablesync.server import _replies

    render = _replies.render

    def recorded(*args: Any) -> Any:
        events.append("render")
        return render(*args)

    monkeypatch.setattr(_replies, "render", recorded)
    replies = asyncio.run(_post_all(app, [{"id": "a", "n": 1}, {"id": "b", "n": 2}]))

    assert [reply.status_code for reply in replies] == [201, 201]
    assert replies[1].json()["n"] == 2 and replies[1].headers["Location"].endswith("/todo/b")
    assert events == ["commit", "render", "render"]
