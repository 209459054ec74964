"""tablesync's server under uvicorn on a real socket, in a thread, for the peers to talk to."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from tests.interop.peers import free_port

MOVIE_COLUMNS = {
    "title": "string",
    "duration": "integer",
    "rating": "string",
    "releaseDate": "datetime",
    "bestPictureWinner": "boolean",
    "year": "integer",
}


class RequestLog:
    """ASGI middleware that records ``(method, path?query)`` of every HTTP request it passes on."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.requests: list[tuple[str, str]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            query = scope.get("query_string", b"").decode("latin-1")
            target = scope["path"] + (f"?{query}" if query else "")
            self.requests.append((scope["method"], target))
        await self.app(scope, receive, send)


@dataclass
class TablesyncServer:
    """A running tablesync server."""

    server: Any
    thread: threading.Thread
    port: int
    app: Any
    log: RequestLog

    @property
    def requests(self) -> list[tuple[str, str]]:
        """``(method, raw path?query)`` of every request served so far, in order."""
        return self.log.requests

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:8123``."""
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Ask uvicorn to exit and wait for its thread."""
        self.server.should_exit = True
        self.thread.join(timeout=10)


def default_tables(page_size: int | None = None) -> list[Any]:
    """``movies`` (typed) and ``todoitem`` (no declared columns; dynamic schema fills them)."""
    from tablesync.server import Table

    return [
        Table("movies", columns=MOVIE_COLUMNS, soft_delete=True, page_size=page_size),
        Table("todoitem", columns={}, soft_delete=True, page_size=page_size),
    ]


def start_tablesync_server(
    *,
    database: str,
    tables: list[Any] | None = None,
    page_size: int | None = None,
    dynamic_schema: bool = True,
    timeout: float = 20.0,
    **options: Any,
) -> TablesyncServer:
    """Build ``create_app(...)`` and serve it on a free port of 127.0.0.1 until ``stop()``."""
    from tablesync.server import create_app

    app = create_app(
        database=database,
        tables=tables if tables is not None else default_tables(page_size),
        dynamic_schema=dynamic_schema,
        **options,
    )
    log = RequestLog(app)
    for attempt in range(3):
        try:
            return _serve(app, log, timeout)
        except RuntimeError:
            # Another process may take the free port before uvicorn binds it: try another.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _serve(app: Any, log: RequestLog, timeout: float) -> TablesyncServer:
    import uvicorn

    port = free_port()
    config = uvicorn.Config(log, host="127.0.0.1", port=port, log_level="warning", ws="none")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(timeout=5)
            raise RuntimeError(f"tablesync's server did not start on port {port}")
        time.sleep(0.02)
    return TablesyncServer(server, thread, port, app, log)
