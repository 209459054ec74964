"""Fixtures shared by every test directory: the movies data set, the databases, ``keep_open``."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parent.parent


def _shared_dir() -> Path:
    """The team's ``shared`` folder: beside the project, or beside the repository it was
    cloned from (a clone made elsewhere, e.g. CI's fresh clone in a temporary directory).
    ``TABLESYNC_SHARED`` names it outright.
    """
    named = os.environ.get("TABLESYNC_SHARED")
    if named:
        return Path(named)
    beside = ROOT.parent / "shared"
    if beside.exists():
        return beside
    try:
        origin = subprocess.run(
            ["git", "-C", str(ROOT), "remote", "get-url", "origin"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return beside
    source = Path(origin)
    return source.parent / "shared" if source.is_absolute() else beside


MOVIES_PATH = _shared_dir() / "data" / "movies.json"
IN_CI = os.environ.get("CI", "").lower() == "true"
POSTGRES_ADMIN_URL = os.environ.get(
    "TABLESYNC_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)

# Locally, property tests draw new examples on every run and so keep finding new bugs; under CI
# they replay a fixed set, so a landing is judged on the same examples every time.
settings.register_profile("ci", derandomize=True, print_blob=True)
if IN_CI:
    settings.load_profile("ci")


def skip_or_fail(reason: str) -> None:
    """Skip locally; under CI a missing prerequisite is a failure, never a skip."""
    if IN_CI:
        pytest.fail(f"required under CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def movies() -> list[dict[str, Any]]:
    """The 248 movies of the Datasync query suites, read in place from ../shared/data."""
    if not MOVIES_PATH.exists():
        skip_or_fail(f"{MOVIES_PATH} is absent (the shared data set is laid beside the project)")
    data: list[dict[str, Any]] = json.loads(MOVIES_PATH.read_text())
    return data


def _admin_connect() -> Any:
    import psycopg

    try:
        return psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        skip_or_fail(f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}: {exc}")
        raise


@pytest.fixture(scope="session")
def postgres_database_factory() -> Iterator[Any]:
    """Make fresh, empty PostgreSQL databases; each is dropped at the end of the session."""
    admin = _admin_connect()
    created: list[str] = []

    def make() -> str:
        name = f"tablesync_test_{uuid.uuid4().hex[:12]}"
        admin.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
        return f"{base}/{name}"

    yield make
    for name in created:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture
def postgres_url(postgres_database_factory: Any) -> str:
    """The URL of a fresh, empty PostgreSQL database for one test."""
    url: str = postgres_database_factory()
    return url


@pytest.fixture(scope="session")
def _session_postgres_url(postgres_database_factory: Any) -> str:
    """The session's PostgreSQL database behind ``db_url``."""
    url: str = postgres_database_factory()
    return url


def _empty_postgres(url: str) -> None:
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
    url: str = request.getfixturevalue("_session_postgres_url")
    _empty_postgres(url)
    return url


@pytest.fixture
def keep_open() -> Iterator[Callable[[Any], Any]]:
    """``keep_open(cm)``: ``cm`` entered now, and exited when the test ends.

    For in-process ``TestClient``s: their app's lifespan runs once, around the test.
    """
    with contextlib.ExitStack() as stack:
        yield stack.enter_context


@pytest.fixture
def running_server() -> Iterator[Any]:
    """Factory: serve an app with a real uvicorn on 127.0.0.1 (free port); returns the base URL.

    ``running_server(app=None, uvicorn_options=None, **create_app_kwargs) ->
    "http://127.0.0.1:<port>"``: pass a ready ASGI app, or keyword arguments for
    ``tablesync.server.create_app``; ``uvicorn_options`` go to ``uvicorn.Config``. Every server
    is stopped (in-flight requests finished) at the end of the test.
    """
    import socket
    import threading
    import time

    import uvicorn

    started: list[tuple[Any, threading.Thread]] = []

    def start(
        app: Any = None, uvicorn_options: dict[str, Any] | None = None, **create_app_kwargs: Any
    ) -> str:
        if app is None:
            from tablesync.server import create_app

            app = create_app(**create_app_kwargs)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        options = {
            "log_level": "warning",
            "timeout_graceful_shutdown": 10,
            **(uvicorn_options or {}),
        }
        config = uvicorn.Config(app, **options)
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        started.append((server, thread))
        deadline = time.monotonic() + 15
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start within 15 s")
            time.sleep(0.01)
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in started:
        server.should_exit = True
        thread.join(timeout=15)
