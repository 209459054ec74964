"""``tablesync serve``'s HTTP protocol: uvicorn's httptools protocol with a header deadline.

uvicorn closes a keep-alive connection that stays silent after a response, but not one that
never sends a request, nor one that sends part of its headers and stops: both were still open
after 24 s here (tests/cli/test_protocol.py). Holding many such connections open costs a
client nothing and the server a socket and memory each (a "slowloris" attack). Here a
connection must deliver a request's complete headers within :data:`HEADER_TIMEOUT_S` of
opening, or of the response before, or it is closed. Slow request bodies are not affected:
the deadline ends with the headers.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

#: Seconds a connection has to send a request's complete headers. Headers are a few hundred
#: bytes: even a slow mobile link sends them in well under a second.
HEADER_TIMEOUT_S = 10.0


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """:class:`HttpToolsProtocol` that closes connections slow to send a request's headers."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def on_headers_complete(self) -> None:
        self._disarm_header_deadline()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # uvicorn arms its keep-alive timer exactly when the connection now waits for a new
        # request (not when a pipelined one, headers already read, starts instead).
        if self.timeout_keep_alive_task is not None:
            self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)

    def _arm_header_deadline(self) -> None:
        self._disarm_header_deadline()
        self._header_deadline = self.loop.call_later(HEADER_TIMEOUT_S, self._headers_too_late)

    def _disarm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_late(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            self.transport.close()
