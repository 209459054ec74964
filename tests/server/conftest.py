"""Fixtures of the server's own tests: an app factory over a SQLite file and PostgreSQL."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

with warnings.catch_warnings():
    # starlette 1.x warns at import that it prefers httpx2; TestClient works with httpx.
    from starlette.exceptions import StarletteDeprecationWarning

    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

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


@pytest.fixture(scope="session")
def _server_pg_url(postgres_database_factory: Any) -> str:
    url: str = postgres_database_factory()
    return url


def _reset_postgres(url: str) -> None:
    # One database per session, emptied before each test: far cheaper than CREATE/DROP DATABASE.
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")


@pytest.fixture(
    params=[pytest.param("sqlite", id="sqlite"), pytest.param("postgres", id="postgres")]
)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: a SQLite file or the session's PostgreSQL database, emptied."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'server.db'}"
    url: str = request.getfixturevalue("_server_pg_url")
    _reset_postgres(url)
    return url


@pytest.fixture
def make_client(db_url: str) -> Iterator[MakeClient]:
    """Build apps on ``db_url`` (default: a ``todo`` table) and drive them in-process."""
    from tablesync.server import Table, create_app

    clients: list[TestClient] = []

    def make(tables: Any = None, **kwargs: Any) -> TestClient:
        if tables is None:
            tables = [Table("todo", columns=TODO_COLUMNS)]
        app = create_app(kwargs.pop("database", db_url), tables, **kwargs)
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


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
