"""tablesync's server on a real socket, for the peers to talk to, with a log of what it received.

Inside a test, ``tablesync_server_factory`` (conftest) serves the app through the project's
``running_server`` fixture; :func:`start_tablesync_server` does the same for module-scoped
fixtures, which cannot use a function-scoped one.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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
    """A running tablesync server: its base URL and the requests it has served."""

    url: str
    log: RequestLog
    _stop: Callable[[], None] = field(default=lambda: None, repr=False)

    @property
    def requests(self) -> list[tuple[str, str]]:
        """``(method, raw path?query)`` of every request served so far, in order."""
        return self.log.requests

    def stop(self) -> None:
        """Stop serving (a no-op when the ``running_server`` fixture owns the server)."""
        self._stop()


def default_tables(page_size: int | None = None) -> list[Any]:
    """``movies`` (typed) and ``todoitem`` (no declared columns; dynamic schema fills them)."""
    from tablesync.server import Table

    return [
        Table("movies", columns=MOVIE_COLUMNS, soft_delete=True, page_size=page_size),
        Table("todoitem", columns={}, soft_delete=True, page_size=page_size),
    ]


def build_app(
    *,
    database: str,
    tables: list[Any] | None = None,
    page_size: int | None = None,
    dynamic_schema: bool = True,
    **options: Any,
) -> RequestLog:
    """``create_app(...)`` with the interop tables, wrapped in a :class:`RequestLog`."""
    from tablesync.server import create_app

    app = create_app(
        database=database,
        tables=tables if tables is not None else default_tables(page_size),
        dynamic_schema=dynamic_schema,
        **options,
    )
    return RequestLog(app)


def start_tablesync_server(*, timeout: float = 20.0, **kwargs: Any) -> TablesyncServer:
    """Serve :func:`build_app` under uvicorn in a thread until ``stop()``.

    The socket is bound before uvicorn starts, so no other process can take the port between
    choosing and binding it.
    """
    import uvicorn

    log = build_app(**kwargs)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(log, log_level="warning", ws="none"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()

    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            stop()
            raise RuntimeError(f"tablesync's server did not start in {timeout} s")
        time.sleep(0.02)
    return TablesyncServer(f"http://127.0.0.1:{port}", log, stop)
