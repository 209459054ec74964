"""``tablesync serve --workers 2``: two processes share one database and agree on its schema.

On Linux each worker listens on a socket of its own (``SO_REUSEPORT``): a burst of new
connections is spread over the workers, and a worker that dies is replaced on its socket.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

V3 = {"ZUMO-API-VERSION": "3.0.0", "Connection": "close"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(
    params=[pytest.param("sqlite", id="sqlite"), pytest.param("postgres", id="postgres")]
)
def two_workers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        database = f"sqlite:///{tmp_path / 'workers.db'}"
    else:
        database = request.getfixturevalue("postgres_url")
    with _serving(database, tmp_path) as (base, _process):
        yield base


@contextlib.contextmanager
def _serving(database: str, tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TABLESYNC_")}
    command = [sys.executable, "-m", "tablesync", "serve", "--workers", "2", "--port", str(port)]
    command += ["--database", database, "--dynamic-schema", "--shutdown-timeout", "5"]
    process = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, "tablesync serve exited early"
            assert time.monotonic() < deadline, "workers did not start within 30 s"
            time.sleep(0.1)
        yield base, process
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_two_workers_share_data_columns_and_clock(two_workers: str) -> None:
    # Connection: close gives every request its own connection, spread over both workers.
    for n in range(12):
        body = {"id": f"r{n:02d}", f"field{n % 4}": n}
        response = httpx.post(f"{two_workers}/tables/shared", json=body, headers=V3, timeout=10)
        assert response.status_code == 201, response.text
    for n in range(12):
        item = httpx.get(f"{two_workers}/tables/shared/r{n:02d}", headers=V3, timeout=10).json()
        assert item[f"field{n % 4}"] == n
        assert {f"field{k}" for k in range(4)} <= set(item), "every worker must see every column"
    page = httpx.get(f"{two_workers}/tables/shared?$orderby=updatedAt", headers=V3, timeout=10)
    stamps = [item["updatedAt"] for item in page.json()["items"]]
    assert [item["id"] for item in page.json()["items"]] == [f"r{n:02d}" for n in range(12)]
    assert len(set(stamps)) == 12


linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="SO_REUSEPORT balancing is Linux's"
)


@linux_only
def test_each_worker_has_its_own_socket_and_a_share_of_a_burst(tmp_path: Path) -> None:
    with _serving(f"sqlite:///{tmp_path / 'burst.db'}", tmp_path) as (base, process):
        port = int(base.rsplit(":", 1)[1])
        _wait_until_both_listen(process.pid, port)
        # 16 connections at once, as a load balancer's pool or wrk opens them. With one
        # shared socket they split 15 to 1 or 13 to 3; hashed over two sockets, all 16 land
        # on one worker once in 32,768 runs.
        connections = [socket.create_connection(("127.0.0.1", port)) for _ in range(16)]
        try:
            for connection in connections:
                connection.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
            for connection in connections:
                assert connection.recv(4096).startswith(b"HTTP/1.1 200")
            sockets = {pid: _tcp_sockets(pid, port) for pid in _workers_of(process.pid)}
        finally:
            for connection in connections:
                connection.close()
    assert len(sockets) == 2
    listening = [found["listen"] for found in sockets.values()]
    assert all(len(inodes) == 1 for inodes in listening)
    assert listening[0] != listening[1]  # not one socket shared
    assert all(found["established"] for found in sockets.values()), sockets


@linux_only
def test_a_worker_that_dies_is_replaced(tmp_path: Path) -> None:
    with _serving(f"sqlite:///{tmp_path / 'respawn.db'}", tmp_path) as (base, process):
        first, second = _workers_of(process.pid)
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while (workers := _workers_of(process.pid)) == [first, second] or len(workers) < 2:
            assert time.monotonic() < deadline, "no worker replaced the dead one in 30 s"
            time.sleep(0.1)
        assert second in workers and first not in workers
        for _ in range(8):  # new connections, hashed over both sockets, are all answered
            response = httpx.get(f"{base}/health/ready", headers={"Connection": "close"})
            assert response.status_code == 200


def _wait_until_both_listen(parent: int, port: int) -> None:
    """Ready means one worker answers; a worker listens only once it can accept."""
    deadline = time.monotonic() + 30
    while True:
        workers = _workers_of(parent)
        if len(workers) == 2 and all(_tcp_sockets(pid, port)["listen"] for pid in workers):
            return
        assert time.monotonic() < deadline, "both workers did not listen within 30 s"
        time.sleep(0.1)


def _workers_of(parent: int) -> list[int]:
    """The server processes started by ``parent``: its children that listen on a socket."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == parent and _socket_inodes(int(stat.parent.name)):
                children.append(int(stat.parent.name))
    return sorted(children)


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    return inodes


def _tcp_sockets(pid: int, port: int) -> dict[str, set[str]]:
    """The process's TCP sockets on local ``port``: inodes listening and established."""
    owned = _socket_inodes(pid)
    found: dict[str, set[str]] = {"listen": set(), "established": set()}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port, state, inode = int(fields[1].split(":")[1], 16), fields[3], fields[9]
        if local_port == port and inode in owned:
            if state == "0A":
                found["listen"].add(inode)
            elif state == "01":
                found["established"].add(inode)
    return found
