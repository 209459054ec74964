"""serve's HTTP protocol closes connections slow to send a request's headers, and no other."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tablesync.cli import _protocol

DEADLINE_S = 0.5


@pytest.fixture
def address(
    monkeypatch: pytest.MonkeyPatch, running_server: Callable[..., str], tmp_path: Path
) -> tuple[str, int]:
    """A tablesync server on the header-deadline protocol, with a short deadline."""
    monkeypatch.setattr(_protocol, "HEADER_TIMEOUT_S", DEADLINE_S)
    url = running_server(
        uvicorn_options={"http": _protocol.HeaderDeadlineProtocol, "timeout_keep_alive": 30},
        database=f"sqlite:///{tmp_path / 'protocol.db'}",
        dynamic_schema=True,
    )
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def closed_after(sock: socket.socket, limit: float = 10.0) -> float:
    """Seconds until the server closes ``sock`` (reading whatever it sends until then)."""
    start = time.monotonic()
    sock.settimeout(limit)
    while sock.recv(65536):
        pass
    return time.monotonic() - start


def request(path: str, body: bytes = b"", method: str = "GET") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: t\r\nZUMO-API-VERSION: 3.0.0\r\n"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n"


def response(sock: socket.socket) -> bytes:
    sock.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, rest = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    while len(rest) < length:
        rest += sock.recv(65536)
    return head.split(b"\r\n")[0]


@pytest.mark.parametrize(
    "sent", [b"", b"GET /health HTTP/1.1\r\nHost: t\r\n"], ids=["silent", "partial"]
)
def test_a_connection_without_complete_headers_is_closed(address: Any, sent: bytes) -> None:
    with socket.create_connection(address) as sock:
        sock.sendall(sent)
        waited = closed_after(sock)
    assert DEADLINE_S * 0.8 <= waited < DEADLINE_S + 5


def test_a_keep_alive_connection_gets_a_new_deadline_for_each_request(address: Any) -> None:
    with socket.create_connection(address) as sock:
        for _ in range(4):  # longer in all than the deadline, each gap well inside it
            time.sleep(DEADLINE_S / 3)
            sock.sendall(request("/health"))
            assert response(sock) == b"HTTP/1.1 200 OK"
        sock.sendall(b"GET /health HTTP/1.1\r\n")  # then stops mid-headers
        assert closed_after(sock) < DEADLINE_S + 5


def test_a_slow_body_is_not_cut_off(address: Any) -> None:
    body = b'{"id": "slow", "text": "arrives in pieces"}'
    with socket.create_connection(address) as sock:
        sock.sendall(request("/tables/todo", body, method="POST"))
        for piece in (body[:10], body[10:20], body[20:]):
            time.sleep(DEADLINE_S * 0.7)  # 2.1 deadlines in all, after the headers
            sock.sendall(piece)
        assert response(sock) == b"HTTP/1.1 201 Created"
