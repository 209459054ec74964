"""Fixtures of the reliability tests: servers (tablesync's and the official Node one) behind a
fault proxy, and clients wired to the proxy with fast retries."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tablesync import Client, RetryPolicy, SQLiteStore
from tests.conftest import skip_or_fail
from tests.faults.proxy import FaultProxy

TODO_COLUMNS: dict[str, Any] = {"text": "string", "n": "integer", "done": "boolean"}
#: Fast, deterministic retries: a test waits milliseconds, not the production backoff.
FAST_RETRY = RetryPolicy(max_attempts=3, backoff_base=0.01, backoff_max=0.05, jitter=False)


@dataclass(frozen=True)
class Peer:
    """A server the client talks to (directly at ``url``; the tests go through a proxy)."""

    name: str
    url: str
    api_version: str

    @property
    def headers(self) -> dict[str, str]:
        """The API version header of direct requests."""
        return {"ZUMO-API-VERSION": self.api_version}

    def server_rows(self, table: str = "todoitem") -> list[dict[str, Any]]:
        """Every row of ``table``, tombstones included, read directly (no proxy)."""
        rows: list[dict[str, Any]] = []
        with httpx.Client(base_url=self.url, headers=self.headers, timeout=10) as http:
            while True:
                params = {
                    "$orderby": "id",
                    "$skip": str(len(rows)),
                    "$top": "50",
                    "__includedeleted": "true",
                    "__includeDeleted": "true",
                }
                response = http.get(f"/tables/{table}", params=params)
                response.raise_for_status()
                body = response.json()
                page = body if isinstance(body, list) else body.get("items", body.get("results"))
                if not page:
                    return rows
                rows.extend(page)


@pytest.fixture(scope="module")
def tablesync_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """tablesync's server (uvicorn, SQLite file, table ``todoitem``), one per module."""
    from tablesync.server import Table
    from tests.interop.tablesync_server import start_tablesync_server

    path = tmp_path_factory.mktemp("server") / "server.db"
    # These fault plans count one request per operation, so no batch push here; the batched
    # push meets faults in test_model.py (its own server) and tests/client/test_batch_push.py.
    server = start_tablesync_server(
        database=f"sqlite:///{path}",
        tables=[Table("todoitem", columns=TODO_COLUMNS)],
        max_batch_operations=0,
    )
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def node_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The official Node server (azure-mobile-apps 4.0.2), one per module."""
    from tests.interop.peers import (
        PeerUnavailableError,
        node_missing,
        node_modules,
        start_node_server,
    )

    reason = node_missing()
    if reason:
        skip_or_fail(f"the Node peer needs Node.js and npm: {reason}")
    try:
        node_modules()
        server = start_node_server(db_path=tmp_path_factory.mktemp("node") / "node.sqlite")
    except PeerUnavailableError as exc:
        skip_or_fail(f"the Node server cannot run: {exc}")
        raise
    yield server.url
    server.stop()


@pytest.fixture(params=["tablesync-v3", "tablesync-v2", "node-v2"])
def peer(request: pytest.FixtureRequest) -> Peer:
    """Each server under test: tablesync's (v3 and v2) and the official Node server (v2)."""
    name: str = request.param
    server, version = name.split("-")
    url = request.getfixturevalue("node_url" if server == "node" else "tablesync_url")
    return Peer(name, url, "2.0.0" if version == "v2" else "3.0.0")


@pytest.fixture
def proxy_for() -> Iterator[Callable[[str], FaultProxy]]:
    """Factory: a fault proxy in front of a base URL; all are stopped at teardown."""
    started: list[FaultProxy] = []

    def make(url: str) -> FaultProxy:
        target = httpx.URL(url)
        proxy = FaultProxy(target.host, target.port or 80).start()
        started.append(proxy)
        return proxy

    yield make
    for proxy in started:
        proxy.stop()


@pytest.fixture
def client_for(tmp_path: Path) -> Iterator[Callable[..., Client]]:
    """Factory: a client with its own SQLite store; closed at teardown."""
    made: list[tuple[Client, SQLiteStore]] = []

    def make(url: str, api_version: str, **kwargs: Any) -> Client:
        store = SQLiteStore(tmp_path / f"device-{len(made)}.db")
        kwargs.setdefault("retry", FAST_RETRY)
        client = Client(url, store=store, api_version=api_version, **kwargs)
        made.append((client, store))
        return client

    yield make
    for client, store in made:
        client.close()
        store.close()
