"""The interop harness itself: the cached install, process cleanup, the sqlite shim."""

from __future__ import annotations

import os
import socket
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.interop.peers import (
    NPM_PEERS,
    ROOT,
    NodeServer,
    PeerUnavailableError,
    run_js,
    start_node_server,
)


def _run_installer() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(NPM_PEERS)], capture_output=True, text=True, timeout=600, check=False
    )


def test_installer_is_idempotent_under_a_race_and_outside_the_tree(npm_peers: Path) -> None:
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = list(pool.map(lambda _: _run_installer(), range(2)))
    assert [run.returncode for run in runs] == [0, 0], [run.stderr for run in runs]
    paths = {run.stdout.strip() for run in runs}
    assert paths == {str(npm_peers.parent)}
    assert ROOT not in npm_peers.parents, "node_modules must live outside the work tree"
    assert (npm_peers.parent / ".complete").exists()


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_node_server_stop_ends_its_process_group(node_server_factory: Any) -> None:
    server: NodeServer = node_server_factory(fresh=True)
    assert _port_open(server.port)
    pgid = os.getpgid(server.process.pid)
    assert pgid == server.process.pid, "the server leads its own process group"
    server.stop()
    assert server.process.poll() is not None
    assert not _port_open(server.port)
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)


def test_reset_gives_the_state_of_a_fresh_server(node_server_factory: Any) -> None:
    server: NodeServer = node_server_factory()
    headers = {"ZUMO-API-VERSION": "2.0.0"}
    url = f"{server.url}/tables/todoitem"
    assert httpx.post(url, json={"id": "a", "extra": 1}, headers=headers).status_code == 201
    assert httpx.patch(f"{url}/a", json={"extra": 2}, headers=headers).status_code == 200
    again = node_server_factory()
    assert again is server, "the pooled server is reused"
    assert httpx.get(url, headers=headers).json() == []
    row = httpx.post(url, json={"id": "a", "text": "t"}, headers=headers).json()
    # The version counter restarts and the learned column "extra" is gone.
    assert row["version"] == "MQ=="
    assert "extra" not in row


def test_sqlite_plugin_shim_commits_and_rolls_back(npm_peers: Path, tmp_path: Path) -> None:
    result = run_js("shim_check.js", "http://unused", {"db": str(tmp_path / "shim.sqlite")})
    assert result == {
        "afterCommit": [{"id": "a", "n": 1}, {"id": "b", "n": 2}],
        "afterRollback": [{"id": "a", "n": 1}, {"id": "b", "n": 2}],
        "rollbackError": True,
        "handledErrorContinues": [{"id": "a", "n": 1}, {"id": "b", "n": 2}, {"id": "c", "n": 3}],
        "batch": 5,
        "insertId": 1,
    }


def test_a_server_that_cannot_start_is_reported_with_its_log(
    npm_peers: Path, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(PeerUnavailableError, match="EADDRINUSE"):
            start_node_server(port, db_path=tmp_path / "x.sqlite", timeout=20)
