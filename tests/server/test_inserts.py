"""Inserts of a group commit, sent past SQLAlchemy on SQLite and PostgreSQL.

SQLite: the group's transaction is the turn every other process's writers wait for, so an
insert's validation and binding run before it joins its group
(``TableService.prepare_insert``), and its SAVEPOINT and INSERT go to the driver's cursor
(``_repository._SQLiteInsert``, ``_engine.execute_on_driver``). PostgreSQL: a write defers
its savepoint (``_engine.defer``) and the insert sends it in its own query, bound by psycopg
on the client (``_repository._OneTripInsert``).

The inserts of one group that need no more than their own row (no idempotency key, no hooks)
share one statement (``_repository.insert_rows``, ``TableService._insert_together``): one
INSERT for the group, on PostgreSQL in one round trip; a statement that fails is undone and
each insert runs alone.

These tests hold both paths to what SQLAlchemy's gave: the same stored values and replies,
and each write of a group keeping its own outcome, whether the driver or the database
refuses its value. On SQLite also: the statement timeout's clock started for each
statement, and tables whose state may change (dynamic schema) still validated inside the
transaction.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tablesync.server import Table, _engine, _service, create_app
from tablesync.server import _repository as repo
from tablesync.server._runner import DatabaseRunner

from .conftest import V3, sent_statements

pytestmark = pytest.mark.timeout(60)

COLUMNS = {
    "n": "integer",
    "text": "string",
    "price": "number",
    "done": "boolean",
    "due": "datetime",
    "extra": "json",
}
#: The statements the insert path sends itself, past SQLAlchemy.
OURS = ("INSERT INTO todo", "SAVEPOINT", "RELEASE")


def _app(url: str, **kwargs: Any) -> Any:
    tables = [Table("todo", columns=COLUMNS), Table("loose", dynamic_schema=True)]
    return create_app(url, tables=tables, **kwargs)  # type: ignore[arg-type]


def _sqlite_app(path: Path, **kwargs: Any) -> Any:
    return _app(f"sqlite:///{path}", **kwargs)


def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def _run(app: Any, table: str, bodies: Sequence[Any]) -> list[httpx.Response]:
    """POST ``bodies[0]`` alone, then the rest at once (one group), on one event loop."""

    async def main() -> list[httpx.Response]:
        async with _client(app) as client:
            first = await client.post(f"/tables/{table}", json=bodies[0], headers=V3)
            posts = [client.post(f"/tables/{table}", json=body, headers=V3) for body in bodies[1:]]
            return [first, *await asyncio.gather(*posts)]

    try:
        return asyncio.run(main())
    finally:
        app.state.tablesync.schema.engine.dispose()


def _through_sqlalchemy(app: Any) -> list[str]:
    """Every statement SQLAlchemy executes on the app's writer engine."""
    statements: list[str] = []

    @sa.event.listens_for(app.state.tablesync.schema.writer, "before_cursor_execute")
    def _on_execute(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    return statements


def _stored(url: str) -> dict[str, Any]:
    """The stored ``todo`` rows: ``(n, text)`` by id."""
    engine = sa.create_engine(_engine.normalize_url(url))
    try:
        with engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT id, n, text FROM todo").all()
    finally:
        engine.dispose()
    return {row[0]: (row[1], row[2]) for row in rows}


def _insert_each(app: Any, rows: Sequence[dict[str, Any]], refused: type[Exception]) -> list[Any]:
    """Insert each of ``rows`` in its own savepoint of one transaction, then commit.

    Each row's outcome: ``"written"``, or the ``refused`` error its insert raised.
    """
    service = app.state.tablesync
    state = service.schema.get("todo")
    batch = service.batch(tables=("todo",))
    outcomes: list[Any] = []
    try:
        for values in rows:
            conn = batch.connection()
            try:
                with _service._Savepoint(conn):
                    repo.insert(conn, state, sa.true(), values, strict=True)
                outcomes.append("written")
            except refused as exc:
                outcomes.append(exc)
        batch.commit()
    finally:
        batch.close()
        service.schema.engine.dispose()
    return outcomes


@pytest.fixture
def running(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """``[True]`` while a group's transaction runs."""
    flag = [False]
    run_together = DatabaseRunner._run_together

    def flagged(self: Any, *args: Any) -> Any:
        flag[0] = True
        try:
            return run_together(self, *args)
        finally:
            flag[0] = False

    monkeypatch.setattr(DatabaseRunner, "_run_together", flagged)
    return flag


@pytest.fixture
def in_group(monkeypatch: pytest.MonkeyPatch, running: list[bool]) -> Iterator[list[bool]]:
    """Whether each ``parse_item`` call ran inside a group's transaction."""
    calls: list[bool] = []
    parse_item = _service.parse_item

    def parse(*args: Any, **kwargs: Any) -> Any:
        calls.append(running[0])
        return parse_item(*args, **kwargs)

    monkeypatch.setattr(_service, "parse_item", parse)
    yield calls


def test_an_insert_answers_and_stores_what_a_read_gives_back(db_url: str) -> None:
    app = _app(db_url)
    through_sqlalchemy = _through_sqlalchemy(app)
    sent = sent_statements(app.state.tablesync.schema.engine)
    body = {
        # Placeholders of either driver and quoting are the driver's business, not ours.
        "id": "a:b%(n)s'; --",
        "n": -(2**62),
        "text": 'it\'s 100% \\ "quoted" é ✓',
        "price": 12.5,
        "done": True,
        "due": "2024-02-29T23:59:59.123Z",
        "extra": {"tags": ["x", "it's"], "nested": {"a": 1.5, "b": None}},
    }

    async def main() -> tuple[httpx.Response, httpx.Response]:
        async with _client(app) as client:
            created = await client.post("/tables/todo", json=body, headers=V3)
            read = await client.get("/tables/todo/a%3Ab%25(n)s'%3B%20--", headers=V3)
            return created, read

    try:
        created, read = asyncio.run(main())
    finally:
        app.state.tablesync.schema.engine.dispose()

    assert created.status_code == 201, created.text
    assert read.status_code == 200, read.text
    assert created.json() == read.json()
    assert {key: created.json()[key] for key in body} == body
    assert created.headers["ETag"] == read.headers["ETag"]
    assert created.headers["Last-Modified"] == read.headers["Last-Modified"]
    # The item's insert and its savepoint went past SQLAlchemy...
    assert not [sql for sql in through_sqlalchemy if sql.startswith(OURS)], through_sqlalchemy
    if db_url.startswith("sqlite"):  # ...to the driver, whose own trace shows them
        sent_by_us = [sql.split()[0] for sql in sent if sql.startswith(OURS)]
        assert sent_by_us == ["SAVEPOINT", "INSERT"]


def test_the_smallest_and_largest_integers_are_stored(postgres_url: str) -> None:
    # Bound on the client, -2**63 became the literal -9223372036854775808::BIGINT: the cast
    # of 2**63, out of range, before the minus.
    bodies = [{"id": "low", "n": -(2**63)}, {"id": "high", "n": 2**63 - 1}, {"id": "n", "n": -1}]
    replies = _run(_app(postgres_url), "todo", bodies)

    assert [reply.status_code for reply in replies] == [201] * 3, [r.text for r in replies]
    assert [reply.json()["n"] for reply in replies] == [body["n"] for body in bodies]
    assert _stored(postgres_url) == {body["id"]: (body["n"], None) for body in bodies}


def test_each_insert_of_a_group_keeps_its_own_outcome(db_url: str, in_group: list[bool]) -> None:
    bodies: list[Any] = [
        {"id": "w0", "n": 0},
        {"id": "a", "n": 1},
        {"id": "w0", "n": 9},  # a duplicate: 409 with the stored item
        {"id": "bad", "n": "two"},  # refused before the database: 400
        {"id": "gone", "deleted": True},  # 400
        {"id": "b", "n": 3},
    ]
    app = _app(db_url)
    through_sqlalchemy = _through_sqlalchemy(app)

    replies = _run(app, "todo", bodies)

    statuses = [reply.status_code for reply in replies]
    assert statuses == [201, 201, 409, 400, 400, 201], [r.text for r in replies]
    assert not [sql for sql in through_sqlalchemy if sql.startswith(OURS)], through_sqlalchemy
    conflict = replies[2]
    assert conflict.json()["n"] == 0
    assert conflict.headers["ETag"] == replies[0].headers["ETag"]
    stamps = [replies[index].json()["updatedAt"] for index in (0, 1, 5)]
    assert stamps == sorted(set(stamps))
    assert _stored(db_url) == {"w0": (0, None), "a": (1, None), "b": (3, None)}
    if db_url.startswith("sqlite"):  # (PostgreSQL's groups run on a thread, beside the loop)
        # Every body was validated before its group's transaction, none inside it.
        assert in_group == [False] * len(bodies)


def test_a_dynamic_table_is_validated_inside_the_transaction(
    tmp_path: Path, in_group: list[bool]
) -> None:
    # Its columns may grow with any write (of any process): its state is read in the write's
    # transaction, and a new column commits the group's writes before it first.
    bodies = [{"id": "a", "n": 1}, {"id": "b", "n": 2, "colour": "red"}, {"id": "c", "n": 3}]

    replies = _run(_sqlite_app(tmp_path / "dynamic.db"), "loose", bodies)

    assert [reply.status_code for reply in replies] == [201, 201, 201]
    assert replies[1].json()["colour"] == "red"
    assert in_group == [True] * len(bodies)


def test_a_tables_own_view_function_runs_with_the_write(
    tmp_path: Path, running: list[bool]
) -> None:
    # Application code: it runs where it ran before, in the write (on PostgreSQL, on a
    # worker thread), not on the event loop before the insert joins its group.
    calls: list[bool] = []

    def view(_request: Any, _table: sa.Table) -> Any:
        calls.append(running[0])
        return sa.true()

    table = Table("mine", columns={"n": "integer"}, view=view)
    app = create_app(f"sqlite:///{tmp_path / 'view.db'}", tables=[table])
    bodies = [{"id": "a", "n": 1}, {"id": "b", "n": 2}, {"id": "a", "n": 3}]

    replies = _run(app, "mine", bodies)

    assert [reply.status_code for reply in replies] == [201, 201, 409]
    assert replies[2].json()["n"] == 1  # the conflict's row, read inside the view
    assert calls and all(calls), calls


def test_the_drivers_insert_starts_the_statement_clock(tmp_path: Path) -> None:
    app = _sqlite_app(tmp_path / "timeout.db", statement_timeout=dt.timedelta(seconds=5))
    service = app.state.tablesync
    state = service.schema.get("todo")
    batch = service.batch(tables=("todo",))
    try:
        conn = batch.connection()
        deadline = conn.info[_engine._DEADLINE]
        deadline.at = 0.0  # the previous statement's deadline, long past
        with _service._Savepoint(conn):
            assert deadline.at > time.monotonic()  # the savepoint's own clock
            deadline.at = 0.0
            repo.insert(conn, state, sa.true(), {"id": "a", "n": 1}, strict=True)
        assert deadline.at > time.monotonic()  # the insert's own clock
        batch.commit()
    finally:
        batch.close()
        service.schema.engine.dispose()


def test_a_sqlite_driver_error_is_raised_as_sqlalchemy_raises_it(tmp_path: Path) -> None:
    path = tmp_path / "errors.db"
    app = _sqlite_app(path)
    with app.state.tablesync.schema.writer.connect() as conn:
        conn.exec_driver_sql("CREATE TRIGGER no_b BEFORE INSERT ON todo WHEN NEW.id = 'b' "
                             "BEGIN SELECT RAISE(ABORT, 'no b'); END")  # fmt: skip
        conn.commit()

    rows = [{"id": "a"}, {"id": "b"}, {"id": "c"}]
    outcomes = _insert_each(app, rows, sa.exc.IntegrityError)

    assert [str(o.orig) if o != "written" else o for o in outcomes] == [
        "written",
        "no b",
        "written",
    ]
    assert _stored(f"sqlite:///{path}") == {"a": (None, None), "c": (None, None)}


def test_values_refused_by_psycopg_or_postgres_leave_the_other_writes(postgres_url: str) -> None:
    # The HTTP layer refuses both values itself; below it, psycopg refuses a NUL character
    # on the client, before the query (and the savepoint held back for it) is sent, and
    # PostgreSQL refuses a number out of bigint's range after the savepoint was made. Either
    # way only the refused write is undone: not the one before it.
    rows = [
        {"id": "a", "text": "fine"},
        {"id": "nul", "text": "a\x00b"},
        {"id": "b", "text": "fine"},
        {"id": "big", "n": 2**63},
        {"id": "c", "text": "fine"},
    ]
    outcomes = _insert_each(_app(postgres_url), rows, sa.exc.DataError)

    assert [o if o == "written" else "refused" for o in outcomes] == [
        "written", "refused", "written", "refused", "written"
    ]  # fmt: skip
    assert _stored(postgres_url) == {key: (None, "fine") for key in ("a", "b", "c")}


def _insert_statements(app: Any, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The item inserts the app sends from now on, on either database (past SQLAlchemy)."""
    engine = app.state.tablesync.schema.engine
    if engine.dialect.name == "sqlite":
        sent = sent_statements(engine)
        return _Filtered(sent)
    import psycopg

    queries: list[str] = []
    execute = psycopg.ClientCursor.execute

    def recorded(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        queries.extend(part.strip() for part in str(query).split("; "))
        return execute(self, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.ClientCursor, "execute", recorded)
    return _Filtered(queries, own_queries=True)


class _Filtered(list[str]):
    """A view of the statements recorded in ``source`` that insert into ``todo``."""

    def __init__(self, source: list[str], *, own_queries: bool = False) -> None:
        super().__init__()
        self.source = source
        #: ``source`` holds only the queries the insert path sends itself (PostgreSQL).
        self.own_queries = own_queries

    def inserts(self) -> list[str]:
        """Inserts into ``todo``, with the clock's CTE before them or not (PostgreSQL)."""
        return [
            sql
            for sql in self.source
            if sql.startswith("INSERT INTO todo")
            or (sql.startswith("WITH tablesync_stamps AS") and "INSERT INTO todo" in sql)
        ]

    def commits(self) -> int:
        """The COMMITs sent in the inserts' own queries (PostgreSQL's one round trip)."""
        return self.source.count("COMMIT") if self.own_queries else 0


def _in_one_batch(app: Any, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``repo.insert_rows`` of ``rows`` in one transaction, committed; what it returned."""
    service = app.state.tablesync
    state = service.schema.get("todo")
    batch = service.batch(tables=("todo",))
    try:
        stored = repo.insert_rows(batch.connection(), state.table, rows)
        batch.commit()
    finally:
        batch.close()
    return dict(stored)


def test_rows_of_one_set_of_columns_go_in_one_statement(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = _app(db_url)
    sent = _insert_statements(app, monkeypatch)
    stamp = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    same = [repo.new_row({"id": f"s{n}", "n": n, "text": f"t{n}"}, stamp) for n in range(5)]
    other = [repo.new_row({"id": f"o{n}", "n": n}, stamp) for n in range(2)]
    try:
        first = _in_one_batch(app, [same[0]])
        stored = _in_one_batch(app, [*same[1:], *other, same[0]])  # s0: taken already
    finally:
        app.state.tablesync.schema.engine.dispose()

    assert list(first) == ["s0"]
    assert sorted(stored) == ["o0", "o1", "s1", "s2", "s3", "s4"]
    assert stored["s3"]["text"] == "t3" and stored["o1"]["text"] is None
    assert stored["s2"]["updatedAt"] == stamp
    # One statement for s0 alone; then s1-s4, o0-o1 and s0 again: three sets of rows in turn.
    assert len(sent.inserts()) == 4, sent.inserts()
    assert _stored(db_url) == {
        **{f"s{n}": (n, f"t{n}") for n in range(5)},
        **{f"o{n}": (n, None) for n in range(2)},
    }


def test_an_id_twice_in_one_statement_is_stored_once(db_url: str) -> None:
    app = _app(db_url)
    stamp = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    rows = [repo.new_row({"id": "twice", "n": n}, stamp) for n in (1, 2)]
    try:
        stored = _in_one_batch(app, rows)
    finally:
        app.state.tablesync.schema.engine.dispose()

    assert list(stored) == ["twice"] and stored["twice"]["n"] == 1
    assert _stored(db_url) == {"twice": (1, None)}


def test_sqlite_rows_past_the_parameter_limit_are_split(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    columns = {f"c{n}": "integer" for n in range(60)}
    url = f"sqlite:///{tmp_path / 'wide.db'}"
    app = create_app(url, tables=[Table("todo", columns=columns)])  # type: ignore[arg-type]
    sent = _insert_statements(app, monkeypatch)
    stamp = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    rows = [repo.new_row({"id": f"w{n}", **dict.fromkeys(columns, n)}, stamp) for n in range(40)]
    try:
        stored = _in_one_batch(app, rows)
    finally:
        app.state.tablesync.schema.engine.dispose()

    assert sorted(stored) == sorted(row["id"] for row in rows)
    assert stored["w39"]["c59"] == 39
    # 65 parameters a row: 15 rows a statement under SQLite's 999.
    assert len(sent.inserts()) == 3, sent.inserts()


def test_a_group_of_inserts_sends_one_insert_and_keeps_each_outcome(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = _app(db_url)
    commits = [0]
    sa.event.listen(
        app.state.tablesync.schema.engine,
        "commit",
        lambda _c: commits.__setitem__(0, commits[0] + 1),
    )
    sent = _insert_statements(app, monkeypatch)
    bodies: list[Any] = [
        {"id": "w0", "n": 0},
        *({"id": f"g{n}", "n": n} for n in range(6)),
        {"id": "g2", "n": 99},  # an id taken earlier in its own group: 409 with that row
        {"id": "w0", "n": 98},  # taken before: 409 with the stored row
    ]

    replies = _run(app, "todo", bodies)

    statuses = [reply.status_code for reply in replies]
    assert statuses == [201] * 7 + [409, 409], [r.text for r in replies]
    assert replies[7].json() == replies[3].json()
    assert replies[7].headers["ETag"] == replies[3].headers["ETag"]
    assert replies[8].json() == replies[0].json()
    stamps = [reply.json()["updatedAt"] for reply in replies[:7]]
    assert stamps == sorted(set(stamps))  # stamped in arrival order, each its own
    # One INSERT per group; on PostgreSQL with the group's BEGIN and COMMIT, in one query.
    assert 1 <= len(sent.inserts()) == commits[0] + sent.commits() < len(bodies) - 1
    assert _stored(db_url) == {"w0": (0, None), **{f"g{n}": (n, None) for n in range(6)}}


def test_a_value_postgres_refuses_fails_only_its_own_insert_of_a_group(postgres_url: str) -> None:
    # The group's shared statement fails as a whole; undone, each insert then runs alone.
    app = _app(postgres_url)
    with app.state.tablesync.schema.writer.connect() as conn:
        conn.exec_driver_sql(
            "CREATE FUNCTION no_13() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.n = 13 THEN RAISE EXCEPTION 'no 13' USING ERRCODE = '22023'; END IF; "
            "RETURN NEW; END $$"
        )
        conn.exec_driver_sql(
            "CREATE TRIGGER no_13 BEFORE INSERT ON todo FOR EACH ROW EXECUTE FUNCTION no_13()"
        )
        conn.commit()

    _assert_only_13_refused(app, postgres_url, "no 13")


def _assert_only_13_refused(app: Any, url: str, message: str) -> None:
    """In one group, the insert of ``n`` 13 is a 400 saying ``message``; the others stored."""
    bodies = [{"id": "w0", "n": 0}, {"id": "a", "n": 1}, {"id": "b", "n": 13}, {"id": "c", "n": 3}]

    replies = _run(app, "todo", bodies)

    assert [reply.status_code for reply in replies] == [201, 201, 400, 201]
    assert message in replies[2].json()["error"]
    assert _stored(url) == {"w0": (0, None), "a": (1, None), "c": (3, None)}


def _refuse_13(app: Any) -> None:
    """An application's own rule on ``todo``: no ``n`` of 13 (IntegrityError either way)."""
    with app.state.tablesync.schema.writer.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql(
                "CREATE TRIGGER no_13 BEFORE INSERT ON todo WHEN NEW.n = 13 "
                "BEGIN SELECT RAISE(ABORT, 'no 13'); END"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER no_13_update BEFORE UPDATE ON todo WHEN NEW.n = 13 "
                "BEGIN SELECT RAISE(ABORT, 'no 13'); END"
            )
        else:
            conn.exec_driver_sql("ALTER TABLE todo ADD CONSTRAINT no_13 CHECK (n <> 13)")
        conn.commit()


def test_a_constraint_of_the_application_refusing_an_item_is_a_400(db_url: str) -> None:
    # Not a 500: the client's value is refused, and the writes beside it in its group keep
    # their own outcomes.
    app = _app(db_url)
    _refuse_13(app)

    _assert_only_13_refused(app, db_url, "The database rejected the item")


def test_a_constraint_of_the_application_refusing_an_update_is_a_400(db_url: str) -> None:
    app = _app(db_url)
    _refuse_13(app)

    async def main() -> list[httpx.Response]:
        async with _client(app) as client:
            created = await client.post("/tables/todo", json={"id": "a", "n": 1}, headers=V3)
            refused = await client.patch("/tables/todo/a", json={"n": 13}, headers=V3)
            patch = {"method": "PATCH", "table": "todo", "id": "a", "body": {"n": 13}}
            batch = await client.post("/tables/$batch", json={"operations": [patch]}, headers=V3)
            read = await client.get("/tables/todo/a", headers=V3)
            return [created, refused, batch, read]

    try:
        created, refused, batch, read = asyncio.run(main())
    finally:
        app.state.tablesync.schema.engine.dispose()

    assert created.status_code == 201
    assert refused.status_code == 400, refused.text
    assert "no 13" in refused.json()["error"] or "no_13" in refused.json()["error"]
    assert batch.status_code == 200, batch.text
    assert [result["status"] for result in batch.json()["results"]] == [400]
    assert read.json() == created.json()
