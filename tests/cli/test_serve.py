"""The ``tablesync`` command line: help, version, serve (CliRunner and a real subprocess)."""

from __future__ import annotations

import gc
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from tablesync import __version__
from tablesync.cli._commands import cli, parse_duration
from tablesync.cli._protocol import HeaderDeadlineProtocol


def test_version_and_help() -> None:
    runner = CliRunner()
    version = runner.invoke(cli, ["--version"])
    assert version.exit_code == 0 and __version__ in version.output
    for args in (["-h"], ["--help"], ["serve", "-h"], ["purge-tombstones", "--help"]):
        result = runner.invoke(cli, args)
        assert result.exit_code == 0 and "Usage:" in result.output, args


def test_every_command_has_help_text() -> None:
    for name, command in cli.commands.items():
        assert command.help and len(command.help) > 20, name


def test_serve_passes_settings_to_uvicorn(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import uvicorn

    from tablesync.cli import _workers

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append({"app": app, **kw}))
    served: list[uvicorn.Config] = []
    monkeypatch.setattr(_workers, "run_server", served.append)
    pools: list[tuple[uvicorn.Config, int]] = []
    monkeypatch.setattr(_workers, "serve_workers", lambda config, n: pools.append((config, n)))
    monkeypatch.chdir(tmp_path)
    for var in ("TABLESYNC_DATABASE", "TABLESYNC_CONFIG", "TABLESYNC_DYNAMIC_SCHEMA"):
        monkeypatch.delenv(var, raising=False)
    result = CliRunner().invoke(cli, ["serve", "--port", "8123"])
    assert result.exit_code == 0, result.output
    assert "Development mode" in result.output and "dynamic schema on" in result.output
    assert (tmp_path / "tablesync.db").exists()
    (config,) = served
    assert config.factory is True and config.workers == 1 and config.port == 8123
    assert config.access_log is True
    assert config.http is HeaderDeadlineProtocol  # a deadline for each request's headers
    assert config.app == "tablesync.server._factory:app_from_environment"
    assert os.environ["TABLESYNC_DATABASE"] == "sqlite:///tablesync.db"
    assert os.environ["TABLESYNC_DYNAMIC_SCHEMA"] == "true"
    CliRunner().invoke(cli, ["serve", "--no-access-log"])
    assert served[-1].access_log is False
    result = CliRunner().invoke(cli, ["serve", "--workers", "3", "--shutdown-timeout", "7"])
    assert result.exit_code == 0, result.output
    if _workers.supported():  # Linux: a socket per worker
        ((config, workers),) = pools
        assert workers == 3 and config.factory and config.port == 8000
        assert config.app == served[0].app and config.timeout_graceful_shutdown == 7
        assert not calls
    else:
        assert calls[-1]["workers"] == 3 and not pools


def test_serve_with_a_bad_config_fails_clearly(tmp_path: Path) -> None:
    config = tmp_path / "tables.toml"
    config.write_text('[tables.movies.columns]\ntitle = "text"\n')
    result = CliRunner().invoke(cli, ["serve", "--config", str(config)])
    assert result.exit_code == 1
    assert "unknown type 'text'" in result.output


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        pytest.param("30d", 30 * 86400, id="days"),
        pytest.param("12h", 12 * 3600, id="hours"),
        pytest.param("90m", 5400, id="minutes"),
        pytest.param("2w", 14 * 86400, id="weeks"),
    ],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text).total_seconds() == seconds


def test_purge_tombstones_command(tmp_path: Path) -> None:
    import warnings

    from tablesync.server import Table, create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # starlette 1.x prefers httpx2 for TestClient
        from starlette.testclient import TestClient

    url = f"sqlite:///{tmp_path / 'p.db'}"
    app = create_app(url, [Table("todo", columns={"text": "string"})])
    with TestClient(app) as http:
        headers = {"ZUMO-API-VERSION": "3.0.0"}
        for n in range(3):
            http.post("/tables/todo", json={"id": str(n)}, headers=headers)
        http.delete("/tables/todo/0", headers=headers)
        http.delete("/tables/todo/1", headers=headers)
    runner = CliRunner()
    kept = runner.invoke(
        cli, ["purge-tombstones", "--database", url, "--table", "todo", "--older-than", "1d"]
    )
    assert kept.exit_code == 0 and "todo: 0 tombstone(s) removed" in kept.output
    time.sleep(0.01)
    args = ["purge-tombstones", "--database", url, "--table", "TODO", "--older-than", "0s"]
    purged = runner.invoke(cli, args)
    assert purged.exit_code == 0 and "TODO: 2 tombstone(s) removed" in purged.output
    missing = runner.invoke(cli, [*args[:-3], "nosuch", "--older-than", "1d"])
    assert missing.exit_code == 1 and "no table 'nosuch'" in missing.output


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_real_serve_subprocess_smoke(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TABLESYNC_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "tablesync", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                assert httpx.get(f"{base}/health", timeout=1).json() == {"status": "ok"}
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stdout.read() if process.stdout else ""
                assert time.monotonic() < deadline, "server did not start within 20 s"
                time.sleep(0.1)
        headers = {"ZUMO-API-VERSION": "3.0.0"}
        created = httpx.post(
            f"{base}/tables/notes", json={"id": "n1", "text": "hi"}, headers=headers
        )
        assert created.status_code == 201 and created.json()["text"] == "hi"
    finally:
        process.terminate()
        output = process.communicate(timeout=20)[0].decode()
    # uvicorn re-raises the SIGTERM it handled, after a graceful shutdown.
    assert process.returncode in (0, -15)
    assert "Development mode" in output and "Application shutdown complete" in output


def _in_memory_app(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TABLESYNC_DATABASE", "sqlite://")
    for var in ("TABLESYNC_CONFIG", "TABLESYNC_DYNAMIC_SCHEMA"):
        monkeypatch.delenv(var, raising=False)


class _Server:
    """Stands in for ``uvicorn.Server``: records what the process looked like when it ran."""

    def __init__(self, config: Any, *, starts: bool = True) -> None:
        self.config, self.starts, self.started = config, starts, False
        self.frozen_at_run = -1

    def run(self, sockets: Any = None) -> None:
        self.frozen_at_run = gc.get_freeze_count()
        self.started = self.starts


def test_run_server_sets_start_up_objects_aside_before_serving(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import uvicorn

    from tablesync.cli import _workers

    servers: list[_Server] = []
    monkeypatch.setattr(
        uvicorn, "Server", lambda config: servers.append(_Server(config)) or servers[-1]
    )
    config = uvicorn.Config("tablesync.server._factory:app_from_environment", factory=True)
    _in_memory_app(monkeypatch)
    try:
        _workers.run_server(config)
    finally:
        gc.unfreeze()
    (server,) = servers
    assert config.loaded and server.frozen_at_run > 0


def test_run_server_exits_3_when_the_server_never_started(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    from tablesync.cli import _workers

    monkeypatch.setattr(uvicorn, "Server", lambda config: _Server(config, starts=False))
    _in_memory_app(monkeypatch)
    config = uvicorn.Config("tablesync.server._factory:app_from_environment", factory=True)
    try:
        with pytest.raises(SystemExit) as exited:
            _workers.run_server(config)
    finally:
        gc.unfreeze()
    assert exited.value.code == 3
