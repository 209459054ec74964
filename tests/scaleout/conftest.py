"""Fixtures of the scale-out tests: several real server processes on one database."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

SERVER_SCRIPT = Path(__file__).with_name("server_process.py")
START_TIMEOUT_S = 60.0


def free_port() -> int:
    """A TCP port that was free a moment ago (callers retry if it is taken meanwhile)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env() -> dict[str, str]:
    """The environment without ``TABLESYNC_*`` variables (they would configure the server)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("TABLESYNC_")}


def wait_ready(process: subprocess.Popen[bytes], base: str, timeout: float) -> bool:
    """Poll ``/health/ready`` until 200 (True) or the process exits (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            if httpx.get(f"{base}/health/ready", timeout=2).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{base} was not ready within {timeout:.0f} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if the process has not exited within 20 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


ServerFactory = Callable[..., "list[str]"]


@pytest.fixture
def stress_servers(tmp_path: Path) -> Iterator[ServerFactory]:
    """Factory: ``(database, count, naive=False, max_sleep_ms=40)`` → base URLs of processes.

    Every process is stopped at teardown.
    """
    started: list[subprocess.Popen[bytes]] = []

    def start_one(database: str, naive: bool, max_sleep_ms: int) -> str:
        for _attempt in range(5):
            port = free_port()
            command = [sys.executable, str(SERVER_SCRIPT), "--database", database]
            command += ["--port", str(port), "--max-sleep-ms", str(max_sleep_ms)]
            if naive:
                command.append("--naive")
            process = subprocess.Popen(
                command, cwd=tmp_path, env=clean_env(), stdout=subprocess.DEVNULL
            )
            started.append(process)
            base = f"http://127.0.0.1:{port}"
            if wait_ready(process, base, START_TIMEOUT_S):
                return base
        raise AssertionError("no server process could start (ports kept being taken)")

    def start(
        database: str, count: int, *, naive: bool = False, max_sleep_ms: int = 40
    ) -> list[str]:
        # The first process creates the schema alone; the others then find it in place.
        first = start_one(database, naive, max_sleep_ms)
        return [first, *(start_one(database, naive, max_sleep_ms) for _ in range(count - 1))]

    yield start
    for process in started:
        stop(process)
