"""PostgreSQL inserts sent in one query with their savepoint (``_repository._OneTripInsert``).

A write of a group commit defers its savepoint (``_engine.defer``) and the insert sends it in
its own query, bound by psycopg on the client. These tests hold that path to what the
SQLAlchemy path gave: the same stored values and replies, and each write of a group keeping
its own outcome, whether its value is refused by psycopg before anything is sent (a NUL
character) or by PostgreSQL (a number out of range).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tablesync.server import Table, create_app
from tablesync.server import _repository as repo
from tablesync.server._service import _Savepoint

from .conftest import V3

pytestmark = pytest.mark.timeout(60)

COLUMNS = {
    "n": "integer",
    "text": "string",
    "price": "number",
    "done": "boolean",
    "due": "datetime",
    "extra": "json",
}


def _app(url: str) -> Any:
    return create_app(url, tables=[Table("todo", columns=COLUMNS)])  # type: ignore[arg-type]


def _client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def _stored(url: str) -> dict[str, Any]:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT id, n, text FROM todo").all()
    finally:
        engine.dispose()
    return {row[0]: (row[1], row[2]) for row in rows}


def _run(app: Any, bodies: Sequence[dict[str, Any]]) -> list[httpx.Response]:
    """POST ``bodies[0]`` alone, then the rest at once (one group), on one event loop."""

    async def main() -> list[httpx.Response]:
        async with _client(app) as client:
            first = await client.post("/tables/todo", json=bodies[0], headers=V3)
            posts = [client.post("/tables/todo", json=body, headers=V3) for body in bodies[1:]]
            return [first, *await asyncio.gather(*posts)]

    try:
        return asyncio.run(main())
    finally:
        app.state.tablesync.schema.engine.dispose()


def test_an_insert_answers_and_stores_what_a_read_gives_back(postgres_url: str) -> None:
    app = _app(postgres_url)
    body = {
        "id": "a%(n)s'; --",  # quoting and placeholders are psycopg's, not ours
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
            read = await client.get("/tables/todo/a%25(n)s'%3B%20--", headers=V3)
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


def test_the_smallest_and_largest_integers_are_stored(postgres_url: str) -> None:
    # Bound on the client, -2**63 became the literal -9223372036854775808::BIGINT: the cast
    # of 2**63, out of range, before the minus.
    bodies = [{"id": "low", "n": -(2**63)}, {"id": "high", "n": 2**63 - 1}, {"id": "n", "n": -1}]
    replies = _run(_app(postgres_url), bodies)

    assert [reply.status_code for reply in replies] == [201] * 3, [r.text for r in replies]
    assert [reply.json()["n"] for reply in replies] == [body["n"] for body in bodies]
    assert _stored(postgres_url) == {body["id"]: (body["n"], None) for body in bodies}


def test_each_insert_of_a_postgres_group_keeps_its_own_outcome(postgres_url: str) -> None:
    bodies = [
        {"id": "w0", "n": 0},
        {"id": "a", "n": 1},
        {"id": "w0", "n": 9},  # a duplicate: 409 with the stored item
        {"id": "bad", "n": "two"},  # refused before the database: 400
        {"id": "b", "n": 3},
    ]
    app = _app(postgres_url)
    through_sqlalchemy: list[str] = []

    @sa.event.listens_for(app.state.tablesync.schema.writer, "before_cursor_execute")
    def _on_execute(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        through_sqlalchemy.append(statement.split()[0])

    replies = _run(app, bodies)

    statuses = [reply.status_code for reply in replies]
    assert statuses == [201, 201, 409, 400, 201], [r.text for r in replies]
    # Each insert went with its savepoint in one query of psycopg's, not through SQLAlchemy.
    assert not {"INSERT", "SAVEPOINT", "RELEASE"} & set(through_sqlalchemy), through_sqlalchemy
    conflict = replies[2]
    assert conflict.json()["n"] == 0
    assert conflict.headers["ETag"] == replies[0].headers["ETag"]
    stamps = [replies[index].json()["updatedAt"] for index in (0, 1, 4)]
    assert stamps == sorted(set(stamps))
    assert _stored(postgres_url) == {"w0": (0, None), "a": (1, None), "b": (3, None)}


def test_values_refused_by_psycopg_or_postgres_leave_the_other_writes(postgres_url: str) -> None:
    # The HTTP layer refuses both values itself; below it, psycopg refuses a NUL character
    # on the client, before the query (and the savepoint held back for it) is sent, and
    # PostgreSQL refuses a number out of bigint's range after the savepoint was made. Either
    # way only the refused write is undone: not the one before it.
    app = _app(postgres_url)
    service = app.state.tablesync
    state = service.schema.get("todo")
    batch = service.batch(tables=("todo",))
    outcomes = []
    try:
        for values in [
            {"id": "a", "text": "fine"},
            {"id": "nul", "text": "a\x00b"},
            {"id": "b", "text": "fine"},
            {"id": "big", "n": 2**63},
            {"id": "c", "text": "fine"},
        ]:
            conn = batch.connection()
            try:
                with _Savepoint(conn):
                    repo.insert(conn, state, sa.true(), values, strict=True)
                outcomes.append("written")
            except sa.exc.DataError:
                outcomes.append("refused")
        batch.commit()
    finally:
        batch.close()
        service.schema.engine.dispose()

    assert outcomes == ["written", "refused", "written", "refused", "written"]
    assert _stored(postgres_url) == {key: (None, "fine") for key in ("a", "b", "c")}
