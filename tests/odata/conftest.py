"""The movies loaded into the three places a filter runs: server SQLite, server PostgreSQL, and
the client's JSON rows; plus ``run_filter``/``run_order`` helpers returning result ids.

Each movie gets a ``score`` (a float with halves, or null) so that fractions, rounding and
nulls in numeric columns are exercised too.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tablesync._exceptions import QueryError
from tablesync.odata._typing import is_too_complex_error
from tablesync.odata.ast import Expr, OrderBy
from tablesync.protocol.dates import parse_datetime

Runner = Callable[[Expr], list[str]]
OrderRunner = Callable[[tuple[OrderBy, ...]], list[str]]

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    pytest.param("local", id="local"),
]


def _score(index: int, duration: int) -> float | None:
    if index % 5 == 0:
        return None
    return (duration % 13) / 2 - 2.5  # halves, negatives and zero


@pytest.fixture(scope="session")
def rows(movies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The movies as the JSON store keeps them (dates as strings), with a ``score``."""
    return [{**movie, "score": _score(i, movie["duration"])} for i, movie in enumerate(movies)]


@pytest.fixture(scope="session")
def typed_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same rows with ``releaseDate`` as an aware datetime, for the reference evaluator."""
    return [{**row, "releaseDate": parse_datetime(row["releaseDate"])} for row in rows]


def movies_table() -> sa.Table:
    """The movies table as the server would declare it (text is byte-ordered on PostgreSQL)."""
    from tablesync.server._types import UtcDateTime

    text = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")
    return sa.Table(
        "movies",
        sa.MetaData(),
        sa.Column(
            "id",
            sa.String(64).with_variant(sa.String(64, collation="C"), "postgresql"),
            primary_key=True,
        ),
        sa.Column("title", text, nullable=False),
        sa.Column("duration", sa.BigInteger, nullable=False),
        sa.Column("rating", text),
        sa.Column("releaseDate", UtcDateTime(), nullable=False),
        sa.Column("bestPictureWinner", sa.Boolean, nullable=False),
        sa.Column("year", sa.BigInteger, nullable=False),
        sa.Column("score", sa.Double),
        sa.Column("extra", sa.JSON),
    )


def _load_engine(engine: sa.Engine, typed_rows: list[dict[str, Any]]) -> sa.Table:
    table = movies_table()
    table.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(table.insert(), [{**row, "extra": None} for row in typed_rows])
    return table


def _engine_runner(engine: sa.Engine, table: sa.Table) -> tuple[Runner, OrderRunner]:
    from tablesync.server._query import compile_filter, compile_order_by

    def run(expr: Expr) -> list[str]:
        query = sa.select(table.c.id).where(compile_filter(expr, table)).order_by(table.c.id)
        with engine.connect() as conn:
            try:
                return list(conn.scalars(query))
            except sa.exc.OperationalError as exc:
                if is_too_complex_error(exc):  # the server answers this 400 (see the local runner)
                    raise QueryError("the filter is too complex for the database") from exc
                raise

    def order(terms: tuple[OrderBy, ...]) -> list[str]:
        query = sa.select(table.c.id).order_by(*compile_order_by(terms, table), table.c.id)
        with engine.connect() as conn:
            return list(conn.scalars(query))

    return run, order


@pytest.fixture(scope="session")
def sqlite_backend(
    tmp_path_factory: pytest.TempPathFactory, typed_rows: list[dict[str, Any]]
) -> Iterator[tuple[Runner, OrderRunner]]:
    path = tmp_path_factory.mktemp("odata") / "server.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    table = _load_engine(engine, typed_rows)
    yield _engine_runner(engine, table)
    engine.dispose()


@pytest.fixture(scope="session")
def postgres_backend(
    postgres_database_factory: Any, typed_rows: list[dict[str, Any]]
) -> Iterator[tuple[Runner, OrderRunner]]:
    url = sa.make_url(postgres_database_factory()).set(drivername="postgresql+psycopg")
    engine = sa.create_engine(url)
    table = _load_engine(engine, typed_rows)
    yield _engine_runner(engine, table)
    engine.dispose()


@pytest.fixture(scope="session")
def local_backend(
    tmp_path_factory: pytest.TempPathFactory, rows: list[dict[str, Any]]
) -> Iterator[tuple[Runner, OrderRunner]]:
    from tablesync.client._sqlite_store import _store_error as store_error
    from tablesync.odata._sqlite import compile_order_by, compile_where

    path: Path = tmp_path_factory.mktemp("odata") / "local.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE movies (id TEXT PRIMARY KEY, data TEXT NOT NULL)")
    conn.executemany(
        "INSERT INTO movies VALUES (?, ?)", [(row["id"], json.dumps(row)) for row in rows]
    )
    conn.commit()

    def run(expr: Expr) -> list[str]:
        where, params = compile_where(expr)
        try:
            rows = conn.execute(f"SELECT id FROM movies WHERE {where} ORDER BY id", params)
        except sqlite3.OperationalError as exc:
            # As SQLiteStore reports it: a filter too deep for SQLite's parser that the
            # estimate let through (found once by the fuzz test) is a QueryError.
            raise store_error("read", exc) from exc
        return [r[0] for r in rows]

    def order(terms: tuple[OrderBy, ...]) -> list[str]:
        return [
            r[0]
            for r in conn.execute(f"SELECT id FROM movies ORDER BY {compile_order_by(terms)}, id")
        ]

    yield run, order
    conn.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> tuple[Runner, OrderRunner]:
    """Each place a filter runs, in turn."""
    runners: tuple[Runner, OrderRunner] = request.getfixturevalue(f"{request.param}_backend")
    return runners


@pytest.fixture
def run_filter(backend: tuple[Runner, OrderRunner]) -> Runner:
    """Run a filter on the current backend; the matching ids in id order."""
    return backend[0]


@pytest.fixture
def run_order(backend: tuple[Runner, OrderRunner]) -> OrderRunner:
    """Order all rows on the current backend (id breaks ties); the ids in that order."""
    return backend[1]
