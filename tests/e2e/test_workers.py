"""``tablesync serve --workers 2``: two processes share one database and agree on its schema."""

from __future__ import annotations

import os
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
        yield base
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
