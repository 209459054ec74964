"""Run the official Azure Mobile Apps SDKs (npm) as test peers: Node server, JS client scripts.

Reusable outside pytest (the benchmarks import it)::

    from tests.interop.peers import start_node_server

    with start_node_server(page_size=50, db_path=tmp / "node.sqlite") as server:
        httpx.get(f"{server.url}/tables/todoitem", headers={"ZUMO-API-VERSION": "2.0.0"})

The packages are installed once by ``scripts/npm-peers`` into a cache outside the work tree;
:func:`node_modules` runs it (about 90 s the first time, instant afterwards) and
:class:`PeerUnavailableError` says why when Node.js or npm is missing or the install fails.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = Path(__file__).resolve().parent / "node"
NPM_PEERS = ROOT / "scripts" / "npm-peers"
INSTALL_TIMEOUT = 900.0


class PeerUnavailableError(RuntimeError):
    """Raised when Node.js/npm is missing or the pinned npm packages cannot be installed."""


def node_missing() -> str | None:
    """Say which of the `node`/`npm` executables is absent, or None when both are present."""
    missing = [name for name in ("node", "npm") if shutil.which(name) is None]
    return f"{' and '.join(missing)} not on PATH" if missing else None


@functools.cache
def node_modules() -> Path:
    """Install the pinned peers (once, cached) and return their ``node_modules`` directory."""
    reason = node_missing()
    if reason:
        raise PeerUnavailableError(reason)
    try:
        done = subprocess.run(
            [str(NPM_PEERS)], capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise PeerUnavailableError(f"scripts/npm-peers took over {INSTALL_TIMEOUT:.0f} s") from exc
    if done.returncode != 0:
        raise PeerUnavailableError(f"scripts/npm-peers failed:\n{done.stderr[-3000:]}")
    return Path(done.stdout.strip().splitlines()[-1]) / "node_modules"


def node_env() -> dict[str, str]:
    """The environment for a node process: NODE_PATH points at the cached packages."""
    env = dict(os.environ)
    env["NODE_PATH"] = str(node_modules())
    env.pop("NODE_OPTIONS", None)
    return env


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def stop_process_group(process: subprocess.Popen[Any], grace: float = 5.0) -> None:
    """Stop a process started with ``start_new_session=True`` and everything it spawned."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=grace)
    else:
        # The leader exited; children it left in the group must not outlive the test.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)


@dataclass
class NodeServer:
    """A running azure-mobile-apps server (see ``tests/interop/node/server.js``)."""

    process: subprocess.Popen[bytes]
    port: int
    db_path: Path
    log_path: Path
    page_size: int
    tables: tuple[str, ...] = field(default=())

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:8123``."""
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        """What the server printed so far (stdout and stderr)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        """Stop the server and its process group."""
        stop_process_group(self.process)

    def reset(self) -> None:
        """Drop and re-create every table: the state of a freshly started server."""
        response = httpx.post(f"{self.url}/_interop/reset", timeout=30)
        if response.status_code != 204:
            raise PeerUnavailableError(f"resetting the Node server failed: {response.text}")

    def __enter__(self) -> NodeServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _wait_ready(server: NodeServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # Match the whole line: "EADDRINUSE: address already in use" contains "ready" too.
        if any(line.startswith("ready ") for line in server.log().splitlines()):
            return
        if server.process.poll() is not None:
            raise PeerUnavailableError(f"the Node server exited early:\n{server.log()[-3000:]}")
        time.sleep(0.05)
    server.stop()
    raise PeerUnavailableError(f"the Node server was not ready in {timeout} s:\n{server.log()}")


def start_node_server(
    port: int | None = None,
    *,
    page_size: int = 50,
    db_path: Path | None = None,
    tables: Sequence[str] = ("todoitem",),
    timeout: float = 30.0,
) -> NodeServer:
    """Start the Node server on 127.0.0.1 and return once it accepts connections.

    Args:
        port: the port to listen on; a free one when None (retried if another process takes
            it between the check and the bind).
        page_size: the server's ``pageSize`` (its default is 50).
        db_path: the sqlite file; a new temporary file when None.
        tables: dynamic-schema, soft-delete tables to declare besides ``movies``.
        timeout: seconds to wait for readiness.
    """
    if db_path is None:
        db_path = Path(tempfile.mkdtemp(prefix="tablesync-node-")) / "node.sqlite"
    for attempt in range(3):
        try:
            return _start_once(port or free_port(), page_size, db_path, tuple(tables), timeout)
        except PeerUnavailableError as exc:
            if port is not None or "EADDRINUSE" not in str(exc) or attempt == 2:
                raise
    raise AssertionError("unreachable")


def _start_once(
    port: int, page_size: int, db_path: Path, tables: tuple[str, ...], timeout: float
) -> NodeServer:
    log_path = db_path.with_suffix(".log")
    argv = ["node", str(NODE_DIR / "server.js"), "--port", str(port), "--db", str(db_path)]
    argv += ["--page-size", str(page_size), "--tables", ",".join(tables)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=node_env(), start_new_session=True
        )
    server = NodeServer(process, port, db_path, log_path, page_size, tables)
    _wait_ready(server, timeout)
    return server


@contextlib.contextmanager
def node_server(**kwargs: Any) -> Iterator[NodeServer]:
    """`start_node_server` as a context manager that always stops the server."""
    server = start_node_server(**kwargs)
    try:
        yield server
    finally:
        server.stop()


class ScriptError(AssertionError):
    """Raised when a JS scenario script fails or prints no JSON result line."""


def run_js(script: str, url: str, params: Any = None, *, timeout: float = 60.0) -> Any:
    """Run ``tests/interop/node/<script>`` with node against ``url``; return its JSON result.

    The script prints one line ``{"ok": true, "result": ...}`` (or ``"ok": false`` and an
    ``error``); its sqlite files live in a temporary directory it receives as its cwd.
    """
    argv = ["node", str(NODE_DIR / script), url, json.dumps(params or {})]
    with tempfile.TemporaryDirectory(prefix="tablesync-js-") as cwd:
        process = subprocess.Popen(
            argv,
            cwd=cwd,
            env=node_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            stop_process_group(process)
            raise ScriptError(f"{script} did not finish in {timeout} s") from exc
        finally:
            stop_process_group(process)
    return _parse_result(script, out.decode(errors="replace"), err.decode(errors="replace"))


def _parse_result(script: str, out: str, err: str) -> Any:
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if not lines:
        raise ScriptError(f"{script} printed no result.\nstdout:\n{out}\nstderr:\n{err[-3000:]}")
    payload = json.loads(lines[-1])
    if not payload.get("ok"):
        raise ScriptError(f"{script} failed: {payload.get('error')}\nstderr:\n{err[-3000:]}")
    return payload["result"]
