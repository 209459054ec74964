"""Fixtures of the server's own tests: an app factory over ``db_url`` (SQLite or PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests._testclient import TestClient

V2 = {"ZUMO-API-VERSION": "2.0.0"}
V3 = {"ZUMO-API-VERSION": "3.0.0"}
TODO_COLUMNS = {
    "text": "string",
    "count": "integer",
    "price": "number",
    "done": "boolean",
    "due": "datetime",
    "extra": "json",
}

MakeClient = Callable[..., TestClient]


@pytest.fixture
def make_client(db_url: str, keep_open: Any) -> MakeClient:
    """Build apps on ``db_url`` (default: a ``todo`` table) and drive them in-process."""
    from tablesync.server import Table, create_app

    def make(tables: Any = None, **kwargs: Any) -> TestClient:
        if tables is None:
            tables = [Table("todo", columns=TODO_COLUMNS)]
        app = create_app(kwargs.pop("database", db_url), tables, **kwargs)
        client: TestClient = keep_open(TestClient(app, raise_server_exceptions=False))
        return client

    return make


@pytest.fixture
def client(make_client: MakeClient) -> TestClient:
    """An app with the ``todo`` table (soft delete on)."""
    return make_client()


def sent_statements(engine: Any) -> list[str]:
    """Every statement ``engine`` sends from now on, also those sent past SQLAlchemy.

    SQLite: traced by the driver connection itself (a group commit's SAVEPOINT, INSERT and
    clock statements go to the driver, ``_engine.execute_on_driver``). Elsewhere: what
    SQLAlchemy executes.
    """
    import sqlalchemy as sa

    statements: list[str] = []
    if engine.dialect.name == "sqlite":

        def trace(dbapi_connection: Any, *_: Any) -> None:
            dbapi_connection.set_trace_callback(statements.append)

        sa.event.listen(engine, "checkout", trace)
    else:
        sa.event.listen(
            engine, "before_cursor_execute", lambda _c, _cur, sql, *_: statements.append(sql)
        )
    return statements
