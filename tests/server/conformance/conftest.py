"""Fixtures of the conformance suite: one app per backend (SQLite file, PostgreSQL), loaded once.

Every test that takes ``server`` runs twice, with ids ``sqlite`` and ``postgres``. The query
tables are loaded once per backend and never written afterwards; tests that write use the
``items`` / ``hard_items`` tables with ids of their own (``_wire.new_id``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests._testclient import TestClient

from ._wire import assert_status, call, item_url

MOVIE_COLUMNS: dict[str, Any] = {
    "title": "string",
    "duration": "integer",
    "rating": "string",
    "releaseDate": "datetime",
    "bestPictureWinner": "boolean",
    "year": "integer",
}
ITEM_COLUMNS: dict[str, Any] = {
    "title": "string",
    "count": "integer",
    "price": "number",
    "done": "boolean",
    "due": "datetime",
    "meta": "json",
}


@dataclass(frozen=True)
class Server:
    """A running app (in-process) and the backend it stores into."""

    http: httpx.Client
    backend: str
    movies: list[dict[str, Any]]

    @property
    def soft_visible(self) -> list[dict[str, Any]]:
        """The rows of ``soft_movies`` a query shows by default: every ``R`` movie is deleted."""
        return [movie for movie in self.movies if movie["rating"] != "R"]


def _tables() -> list[Any]:
    from tablesync.server import Table

    return [
        Table("movies", columns=MOVIE_COLUMNS, soft_delete=False),
        Table("soft_movies", columns=MOVIE_COLUMNS, soft_delete=True),
        Table("items", columns=ITEM_COLUMNS, soft_delete=True),
        Table("hard_items", columns=ITEM_COLUMNS, soft_delete=False),
    ]


def _load(http: httpx.Client, movies: list[dict[str, Any]]) -> None:
    """POST every movie into both movie tables, then delete the R movies of soft_movies."""
    for table in ("movies", "soft_movies"):
        for movie in movies:
            assert_status(call(http, "POST", f"/tables/{table}", "3", json=dict(movie)), 201)
    for movie in movies:
        if movie["rating"] == "R":
            response = call(http, "DELETE", item_url("soft_movies", movie["id"]), "3")
            assert_status(response, 200, 204)


@pytest.fixture(
    scope="session",
    params=[pytest.param("sqlite", id="sqlite"), pytest.param("postgres", id="postgres")],
)
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A fresh database per backend: a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        path: Path = tmp_path_factory.mktemp("conformance") / "conformance.db"
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("postgres_database_factory")()
    _skip_commit_flush(url)
    return url


def _skip_commit_flush(url: str) -> None:
    """Let commits of this throwaway database return before the WAL reaches the disk.

    Only durability across a PostgreSQL crash is given up; what every other session sees is
    unchanged. Loading the movies row by row gets markedly faster (8 s to 5 s here).
    """
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')


@pytest.fixture(scope="session")
def server(database_url: str, movies: list[dict[str, Any]]) -> Iterator[Server]:
    """The app on ``database_url``, movies loaded, driven in-process through TestClient."""
    from tablesync.server import create_app

    app = create_app(database=database_url, tables=_tables())
    backend = "sqlite" if database_url.startswith("sqlite") else "postgres"
    # raise_server_exceptions=False: the suite sees what a client sees (a 500 is a failure
    # with its status and body in the message, not a traceback from inside the app).
    with TestClient(app, raise_server_exceptions=False) as http:
        _load(http, movies)
        yield Server(http=http, backend=backend, movies=movies)


@pytest.fixture(params=[pytest.param("2", id="v2"), pytest.param("3", id="v3")])
def version(request: pytest.FixtureRequest) -> str:
    """Protocol generation of a test that applies to both: ``"2"`` or ``"3"``."""
    value: str = request.param
    return value
