"""Graceful shutdown: a request in flight when the server is told to stop still completes."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
import uvicorn

from tablesync.server import Table, create_app


def test_in_flight_request_finishes_during_shutdown(tmp_path: Path) -> None:
    entered = threading.Event()

    def slow_view(_request: Any, _table: sa.Table) -> Any:
        entered.set()
        time.sleep(1.0)  # the request is in flight while shutdown starts
        return sa.true()

    app = create_app(f"sqlite:///{tmp_path / 's.db'}", [Table("slow", view=slow_view)])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=10))
    serving = threading.Thread(target=server.run, kwargs={"sockets": [sock]})
    serving.start()
    try:
        deadline = time.monotonic() + 15
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        result: list[httpx.Response] = []
        url = f"http://127.0.0.1:{port}/tables/slow"

        def query() -> None:
            result.append(httpx.get(url, headers={"ZUMO-API-VERSION": "3.0.0"}, timeout=20))

        client = threading.Thread(target=query)
        client.start()
        assert entered.wait(10), "the request never reached the database layer"
        server.should_exit = True
        client.join(20)
        assert result and result[0].status_code == 200
        assert result[0].json() == {"items": [], "count": None, "nextLink": None}
    finally:
        server.should_exit = True
        serving.join(20)
    assert not serving.is_alive()
