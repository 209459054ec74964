"""Compressed responses: zstd for clients that accept it, gzip (Starlette's) for the others.

A pull page is the largest thing the server sends and the client waits for it: gzip at level 1
cost the server 0.7 µs and the client 0.5 µs per row of a 5,000-row page, both on the pull's
critical path. zstd at level 3 compresses the same page about five times faster, decompresses
it about four times faster, and makes it smaller (docs/benchmarks.md). tablesync's client asks
for zstd first; the official clients ask for gzip and get it as before.
"""

from __future__ import annotations

import re
import threading

import anyio.to_thread
import zstandard
from starlette.datastructures import Headers
from starlette.middleware.gzip import GZipMiddleware, IdentityResponder
from starlette.types import ASGIApp, Receive, Scope, Send

#: zlib level of gzip responses. Level 1, as nginx's default: a 1,000-row page (193 KB of
#: JSON) compresses to 13.6 KB in 0.7 ms; Starlette's default, 9, gives 10.9 KB in 4.7 ms,
#: and was 44% of the server's time serving a pull (docs/benchmarks.md).
GZIP_LEVEL = 1
#: zstd's own default level: level 1 saved 0.02 µs per row of a page and compressed less.
ZSTD_LEVEL = 3
#: Responses this small are sent as they are.
MINIMUM_SIZE = 500
#: Bodies this large are compressed on a worker thread, as Starlette does for gzip, so that
#: the event loop keeps serving other requests meanwhile (zstandard releases the GIL).
THREAD_MINIMUM_SIZE = 256 * 1024

_REFUSED = re.compile(r"q\s*=\s*0(\.0{0,3})?", re.ASCII)


def accepts(accept_encoding: str, coding: str) -> bool:
    """Whether an ``Accept-Encoding`` value lists ``coding`` with a weight above zero."""
    for entry in accept_encoding.split(","):
        name, _, parameters = entry.partition(";")
        if name.strip().lower() == coding:
            return _REFUSED.fullmatch(parameters.strip()) is None
    return False


class CompressionMiddleware:
    """zstd when the request accepts it, else gzip when it accepts that, else nothing."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.gzip = GZipMiddleware(app, minimum_size=MINIMUM_SIZE, compresslevel=GZIP_LEVEL)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and accepts(
            Headers(scope=scope).get("accept-encoding", ""), "zstd"
        ):
            await ZstdResponder(self.app)(scope, receive, send)
        else:
            await self.gzip(scope, receive, send)


class ZstdResponder(IdentityResponder):
    """Starlette's responder (headers, small and excluded bodies) with zstd as its coding.

    A whole body becomes one zstd frame that records its size; a streamed body, one frame
    flushed block by block.
    """

    content_encoding = "zstd"

    def __init__(self, app: ASGIApp) -> None:
        super().__init__(app, MINIMUM_SIZE)
        self._stream: zstandard.ZstdCompressionObj | None = None

    async def apply_compression(self, body: bytes, *, more_body: bool) -> bytes:
        if len(body) >= THREAD_MINIMUM_SIZE:
            return await anyio.to_thread.run_sync(self._compress, body, more_body)
        return self._compress(body, more_body)

    def _compress(self, body: bytes, more_body: bool) -> bytes:
        if self._stream is None and not more_body:
            return _compressor().compress(body)
        if self._stream is None:
            self._stream = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compressobj()
        flush = (
            zstandard.COMPRESSOBJ_FLUSH_BLOCK if more_body else zstandard.COMPRESSOBJ_FLUSH_FINISH
        )
        return self._stream.compress(body) + self._stream.flush(flush)


_local = threading.local()


def _compressor() -> zstandard.ZstdCompressor:
    """This thread's compressor: making one costs 13 µs, a small response's compression 2."""
    compressor: zstandard.ZstdCompressor | None = getattr(_local, "compressor", None)
    if compressor is None:
        compressor = _local.compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    return compressor
