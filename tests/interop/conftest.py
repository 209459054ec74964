"""Fixtures for the interop tests: the official Node server, JS client scripts, tablesync's server.

Every test here carries the ``interop`` marker. Without node/npm the tests skip with the reason,
except under CI (``CI=true``), where a missing peer is a failure.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import skip_or_fail
from tests.interop.peers import (
    NodeServer,
    PeerUnavailableError,
    node_missing,
    node_modules,
    run_js,
    start_node_server,
)
from tests.interop.tablesync_server import TablesyncServer, build_app

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.interop)
            # A peer process that hangs must not hang the suite.
            if item.get_closest_marker("timeout") is None:
                item.add_marker(pytest.mark.timeout(120))


def pytest_collection_finish(session: pytest.Session) -> None:
    # Install the peers (about 90 s the first time) before any test starts, so the install
    # does not eat into the per-test timeout. A failure is reported by the npm_peers fixture.
    if any(item.get_closest_marker("interop") for item in session.items) and not node_missing():
        with contextlib.suppress(PeerUnavailableError):
            node_modules()


@pytest.fixture(scope="session")
def npm_peers() -> Path:
    """The cached node_modules of the pinned peers (installed on first use)."""
    reason = node_missing()
    if reason:
        skip_or_fail(f"interop tests need Node.js and npm: {reason}")
    try:
        return node_modules()
    except PeerUnavailableError as exc:
        # Node and npm are here, so a failed install is a real failure, never a skip.
        pytest.fail(f"the npm peers could not be installed: {exc}")


NodeServerFactory = Callable[..., NodeServer]


@pytest.fixture(scope="session")
def _node_pool(
    npm_peers: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[tuple[int, tuple[str, ...]], NodeServer]]:
    """Node servers kept for the session, one per (page size, tables); reset between tests."""
    pool: dict[tuple[int, tuple[str, ...]], NodeServer] = {}
    yield pool
    for server in pool.values():
        server.stop()


@pytest.fixture
def node_server_factory(
    _node_pool: dict[tuple[int, tuple[str, ...]], NodeServer],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[NodeServerFactory]:
    """Node servers in the state of a fresh start (tables dropped and re-created).

    Starting Node costs seconds, so servers are pooled per configuration and reset for each
    test; ``fresh=True`` starts a private one instead (stopped at teardown).
    """
    started: list[NodeServer] = []

    def make(
        *, page_size: int = 50, tables: tuple[str, ...] = ("todoitem",), fresh: bool = False
    ) -> NodeServer:
        key = (page_size, tables)
        if not fresh and key in _node_pool and _node_pool[key].process.poll() is None:
            _node_pool[key].reset()
            return _node_pool[key]
        db_path = tmp_path_factory.mktemp("node") / "node.sqlite"
        server = start_node_server(page_size=page_size, db_path=db_path, tables=tables)
        if fresh:
            started.append(server)
        else:
            _node_pool[key] = server
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def node_server(node_server_factory: NodeServerFactory) -> NodeServer:
    """A fresh Node server (page size 50, tables ``todoitem`` and ``movies``)."""
    return node_server_factory()


@pytest.fixture
def js(npm_peers: Path) -> Callable[..., Any]:
    """Run a JS client scenario script: ``js("script.js", url, params) -> result``."""
    return run_js


TablesyncServerFactory = Callable[..., TablesyncServer]


@pytest.fixture
def tablesync_server_factory(
    running_server: Callable[..., str], tmp_path: Path
) -> TablesyncServerFactory:
    """Serve tablesync apps (uvicorn, real sockets) on fresh SQLite files.

    Keyword arguments go to :func:`build_app` (``page_size``, ``tables``, ``database``...).
    The project's ``running_server`` fixture owns and stops the servers.
    """
    count = 0

    def make(**kwargs: Any) -> TablesyncServer:
        nonlocal count
        count += 1
        kwargs.setdefault("database", f"sqlite:///{tmp_path / f'ts-{count}.db'}")
        log = build_app(**kwargs)
        return TablesyncServer(running_server(log), log)

    return make
