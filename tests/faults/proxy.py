"""A fault-injecting HTTP/1.1 proxy on 127.0.0.1, for reliability tests.

The proxy listens on a free port and forwards each request to one upstream server. For every
request it takes a :class:`Fault` from its :class:`FaultPlan` and applies it::

    with FaultProxy("127.0.0.1", server_port) as proxy:
        proxy.plan.push(DropResponse(), match=writes)   # the next write: handled, answer lost
        proxy.plan.push(Status(503, retry_after=0))     # then one 503
        client = Client(proxy.url, ...)

Faults:

* :class:`Pass` forwards the request untouched;
* :class:`Delay` waits, then forwards;
* :class:`Reset` resets the client's connection before anything reaches the server;
* :class:`DropResponse` lets the server handle the request, then resets the client's
  connection instead of answering: the classic "lost response";
* :class:`Truncate` sends the head and part of the body of the real response, then closes;
* :class:`Status` answers with an error status (e.g. 503 + ``Retry-After``) without
  forwarding.

The plan is a queue of scripted faults (each with an optional predicate on the request) with a
fallback: a seeded random choice (:meth:`FaultPlan.randomly`) or :class:`Pass`. ``proxy.down``
resets every connection, as a network that is down. Every request and the fault applied to it
is logged in ``proxy.log``.

Each request is forwarded on a fresh upstream connection and its response is re-framed with a
``Content-Length`` towards the client, so the client's own connection can stay alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

_MAX_HEAD = 64 * 1024


# -- requests and responses ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One parsed request as the proxy received it."""

    method: str
    target: str
    """The request target (path and query) as sent."""
    headers: list[tuple[str, str]]
    body: bytes

    @property
    def path(self) -> str:
        """The target without its query string."""
        return self.target.split("?", 1)[0]

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or ``None``."""
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def encode(self) -> bytes:
        """The request for the upstream, on a connection used only for it."""
        lines = [f"{self.method} {self.target} HTTP/1.1"]
        lines += [f"{k}: {v}" for k, v in self.headers if k.lower() not in _HOP_HEADERS]
        lines += [f"Content-Length: {len(self.body)}", "Connection: close"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """One complete response of the upstream."""

    status_line: str
    headers: list[tuple[str, str]]
    body: bytes

    @property
    def status(self) -> int:
        """The status code."""
        return int(self.status_line.split(" ", 2)[1])

    def head(self) -> bytes:
        """The status line and headers, framed by ``Content-Length``."""
        lines = [self.status_line]
        lines += [f"{k}: {v}" for k, v in self.headers if k.lower() not in _HOP_HEADERS]
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


_HOP_HEADERS = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection"}
)


def _parse_head(raw: bytes) -> tuple[str, list[tuple[str, str]]]:
    first, *rest = raw.decode("latin-1").split("\r\n")
    headers = []
    for line in rest:
        if line:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
    return first, headers


def _header(headers: Sequence[tuple[str, str]], name: str) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


async def _read_head(reader: asyncio.StreamReader) -> bytes | None:
    """The head up to the blank line (without it); ``None`` on a clean EOF before any byte."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise
    if len(raw) > _MAX_HEAD:
        raise ValueError("head too large")
    return raw[:-4]


async def read_request(reader: asyncio.StreamReader) -> HttpRequest | None:
    """Read one request (``Content-Length`` bodies only, as httpx sends them)."""
    raw = await _read_head(reader)
    if raw is None:
        return None
    first, headers = _parse_head(raw)
    method, target, _ = first.split(" ", 2)
    length = int(_header(headers, "content-length") or 0)
    body = await reader.readexactly(length) if length else b""
    return HttpRequest(method, target, headers, body)


async def read_response(reader: asyncio.StreamReader, method: str) -> HttpResponse:
    """Read one whole response: ``Content-Length``, chunked, or until the connection closes."""
    raw = await _read_head(reader)
    if raw is None:
        raise ConnectionError("the upstream closed the connection without answering")
    status_line, headers = _parse_head(raw)
    status = int(status_line.split(" ", 2)[1])
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return HttpResponse(status_line, headers, b"")
    if (_header(headers, "transfer-encoding") or "").lower() == "chunked":
        return HttpResponse(status_line, headers, await _read_chunked(reader))
    length = _header(headers, "content-length")
    if length is not None:
        return HttpResponse(status_line, headers, await reader.readexactly(int(length)))
    return HttpResponse(status_line, headers, await reader.read())


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass  # trailers
            return bytes(body)
        body += await reader.readexactly(size)
        await reader.readexactly(2)


# -- faults ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pass:
    """Forward the request and its response untouched."""


@dataclass(frozen=True, slots=True)
class Delay:
    """Wait ``seconds``, then forward (a slow network; with a short client timeout, a loss)."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Reset:
    """Reset the client's connection; the request never reaches the server."""


@dataclass(frozen=True, slots=True)
class DropResponse:
    """Forward the request (the server handles it), then reset instead of answering."""


@dataclass(frozen=True, slots=True)
class Truncate:
    """Forward, then send the head and only ``fraction`` of the body before closing.

    A response without a body (204) is cut inside its head: the client never gets it whole.
    """

    fraction: float = 0.5


@dataclass(frozen=True, slots=True)
class Status:
    """Answer ``status`` (with ``Retry-After`` when given) without forwarding."""

    status: int = 503
    retry_after: str | None = None


Fault = Pass | Delay | Reset | DropResponse | Truncate | Status
Predicate = Callable[[HttpRequest], bool]


def writes(request: HttpRequest) -> bool:
    """Matches POST, PUT, PATCH and DELETE requests."""
    return request.method in ("POST", "PUT", "PATCH", "DELETE")


def any_request(request: HttpRequest) -> bool:
    """Matches every request."""
    return True


#: Faults that mean the server handled the request but the client never learnt the answer.
HANDLED_AND_LOST = (DropResponse, Truncate)


@dataclass
class _RandomFaults:
    probability: float
    faults: Sequence[Fault]
    rng: random.Random
    match: Predicate


@dataclass
class FaultPlan:
    """Which fault each request gets: scripted ones first, then the random or default one."""

    _scripted: deque[tuple[Predicate, Fault]] = field(default_factory=deque)
    _random: _RandomFaults | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def push(self, *faults: Fault, match: Predicate = any_request) -> FaultPlan:
        """Queue ``faults`` for the next requests that ``match`` (in order, once each)."""
        with self._lock:
            self._scripted.extend((match, fault) for fault in faults)
        return self

    def randomly(
        self,
        probability: float,
        faults: Sequence[Fault],
        *,
        seed: int,
        match: Predicate = any_request,
    ) -> FaultPlan:
        """With ``probability``, give a matching request one of ``faults`` (seeded choice)."""
        if not 0 <= probability <= 1 or not faults:
            raise ValueError("probability must be in [0, 1] and faults non-empty")
        with self._lock:
            self._random = _RandomFaults(probability, tuple(faults), random.Random(seed), match)
        return self

    def clear(self) -> None:
        """Forget scripted and random faults: everything passes from now on."""
        with self._lock:
            self._scripted.clear()
            self._random = None

    @property
    def pending(self) -> int:
        """Scripted faults not yet used."""
        with self._lock:
            return len(self._scripted)

    def next_fault(self, request: HttpRequest) -> Fault:
        """Take the fault for ``request``."""
        with self._lock:
            for index, (match, fault) in enumerate(self._scripted):
                if match(request):
                    del self._scripted[index]
                    return fault
            chance = self._random
            hit = chance is not None and chance.match(request)
            if chance is not None and hit and chance.rng.random() < chance.probability:
                return chance.rng.choice(chance.faults)
        return Pass()


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One request seen by the proxy."""

    method: str
    target: str
    fault: Fault
    status: int | None
    """The upstream's status when the request was forwarded, else ``None``."""
    idempotency_key: str | None


# -- the proxy -------------------------------------------------------------------------------


class FaultProxy:
    """A fault-injecting proxy in a background thread (its own asyncio loop).

    Args:
        upstream_host: where requests are forwarded.
        upstream_port: the upstream's port.
        plan: the faults to apply (a fresh, all-pass plan by default).
    """

    def __init__(self, upstream_host: str, upstream_port: int, plan: FaultPlan | None = None):
        self.upstream = (upstream_host, upstream_port)
        self.plan = plan or FaultPlan()
        self.log: list[LogEntry] = []
        self.down = False
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FaultProxy:
        """Start listening on a free port of 127.0.0.1."""
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        self.port = future.result(timeout=10)
        return self

    async def _listen(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def stop(self) -> None:
        """Close every connection and stop the thread."""
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            _reset(writer)
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- figures -------------------------------------------------------------------------
    def faults_injected(self) -> int:
        """How many requests got a fault other than :class:`Pass`."""
        return sum(not isinstance(entry.fault, Pass) for entry in self.log)

    def lost_after_handling(self) -> int:
        """How many requests the server handled but whose answer the client never got."""
        return sum(isinstance(e.fault, HANDLED_AND_LOST) for e in self.log if e.status)

    # -- one client connection -----------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while not self.down:
                request = await read_request(reader)
                if request is None or not await self._handle(request, writer):
                    break
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        except asyncio.CancelledError:
            # Stopping the proxy: end quietly (asyncio logs an error for a cancelled
            # connection task of start_server on Python 3.11).
            pass
        finally:
            self._writers.discard(writer)
            _reset(writer) if self.down else _close(writer)

    async def _handle(self, request: HttpRequest, writer: asyncio.StreamWriter) -> bool:
        """Apply the request's fault; False when the client connection is done."""
        fault = self.plan.next_fault(request)
        key = request.header("Idempotency-Key")
        if isinstance(fault, Reset):
            self.log.append(LogEntry(request.method, request.target, fault, None, key))
            _reset(writer)
            return False
        if isinstance(fault, Status):
            self.log.append(LogEntry(request.method, request.target, fault, None, key))
            writer.write(_status_response(fault))
            await writer.drain()
            return True
        if isinstance(fault, Delay):
            await asyncio.sleep(fault.seconds)
        response = await self._forward(request)
        self.log.append(LogEntry(request.method, request.target, fault, response.status, key))
        return await _answer(writer, response, fault)

    async def _forward(self, request: HttpRequest) -> HttpResponse:
        reader, writer = await asyncio.open_connection(*self.upstream)
        try:
            writer.write(request.encode())
            await writer.drain()
            return await read_response(reader, request.method)
        finally:
            _close(writer)


async def _answer(writer: asyncio.StreamWriter, response: HttpResponse, fault: Fault) -> bool:
    if isinstance(fault, DropResponse):
        _reset(writer)
        return False
    if isinstance(fault, Truncate):
        head = response.head()
        # Cut the body; a response without one (204) loses the end of its head instead.
        whole = head + response.body
        part = response.body if response.body else head
        cut = len(whole) - len(part) + int(len(part) * fault.fraction)
        writer.write(whole[: min(cut, len(whole) - 1)])
        await writer.drain()
        _reset(writer)
        return False
    writer.write(response.head() + response.body)
    await writer.drain()
    return True


def _status_response(fault: Status) -> bytes:
    body = b'{"error":"injected by the fault proxy"}'
    lines = [f"HTTP/1.1 {fault.status} Injected", "Content-Type: application/json"]
    if fault.retry_after is not None:
        lines.append(f"Retry-After: {fault.retry_after}")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (SO_LINGER 0), as a dropped connection looks to the peer."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def _close(writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(Exception):
        writer.close()
