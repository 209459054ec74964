"""``tablesync serve``'s processes: N uvicorn servers on Linux, each on a socket of its own.

uvicorn's own workers share one listening socket, and whichever process wakes first accepts
every connection waiting. A burst of new connections (a proxy opening its pool, a load
generator) then lands on one process: 16 connections split 15 to 1, 13 to 3 or 12 to 4 between
two workers here, and one of them did nearly all the work (two workers inserted no faster than
one, docs/benchmarks.md). Here each worker listens on its own socket, bound to the same address
with ``SO_REUSEPORT``, and the kernel spreads new connections over the sockets.

The parent binds every socket, so a port in use fails at once and in the parent, and keeps
them open: a worker that dies is started again on the same socket, and the connections
waiting in its queue are served by its successor instead of being reset. Each worker starts
listening on its socket only when it is ready to accept (uvicorn does that): the kernel sends
connections to listening sockets only, so none waits in the queue of a worker still starting,
where a shutdown before that worker's first accept would reset it.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import multiprocessing
import signal
import socket
import sys
import threading
from collections.abc import Callable
from multiprocessing.process import BaseProcess

import uvicorn

logger = logging.getLogger("uvicorn.error")

#: uvicorn's exit status for a server that never started.
_STARTUP_FAILURE = 3
#: How often the parent checks that its workers are alive.
_CHECK_S = 0.5


def supported() -> bool:
    """Whether the kernel balances connections over ``SO_REUSEPORT`` sockets (Linux does)."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def serve_workers(config: uvicorn.Config, workers: int) -> None:
    """Run ``workers`` server processes until SIGINT or SIGTERM, restarting any that dies."""
    first = _bound_socket(config.host, config.port)
    host, port = first.getsockname()[:2]  # port 0: the one the kernel picked, for them all
    sockets = [first, *(_bound_socket(config.host, port) for _ in range(workers - 1))]
    logger.info("Uvicorn running on http://%s:%d with %d workers", host, port, workers)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in _STOP_SIGNALS}
    processes = [_start(config, sock) for sock in sockets]
    try:
        while not stop.wait(_CHECK_S):
            for index, process in enumerate(processes):
                if not process.is_alive():
                    logger.warning(
                        "Worker [%s] exited with code %s; starting another",
                        process.pid,
                        process.exitcode,
                    )
                    processes[index] = _start(config, sockets[index])
    finally:
        _stop_all(processes, grace=(config.timeout_graceful_shutdown or 0) + 5)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sock in sockets:
            sock.close()


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _bound_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` beside the others (its worker will listen on it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SystemExit(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.set_inheritable(True)
    return sock


def _start(config: uvicorn.Config, sock: socket.socket) -> BaseProcess:
    context = multiprocessing.get_context("spawn")
    target: Callable[..., None] = _run_worker
    process = context.Process(target=target, args=(config, sock), name="tablesync-worker")
    process.start()
    return process


def _run_worker(config: uvicorn.Config, sock: socket.socket) -> None:  # pragma: no cover - child
    config.configure_logging()
    run_server(config, [sock])


def run_server(config: uvicorn.Config, sockets: list[socket.socket] | None = None) -> None:
    """Load the app, set the garbage collector's start-up objects aside, and serve.

    A full collection of Python's cyclic garbage collector visits every object the process
    holds, most of them the modules and the app built at start-up, which live as long as the
    process: 13 ms each here, every request in flight waiting. ``gc.freeze`` leaves them out
    of every later collection: the insert p99 fell from 21-29 ms to 9-10 ms at the same
    throughput (docs/benchmarks.md).
    """
    config.load()
    gc.collect()
    gc.freeze()
    server = uvicorn.Server(config)
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=sockets)
    if not server.started:
        sys.exit(_STARTUP_FAILURE)  # as uvicorn.run exits: the app or the socket failed


def _stop_all(processes: list[BaseProcess], grace: float) -> None:
    """SIGTERM each worker (uvicorn then finishes in-flight requests), SIGKILL the late ones."""
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(grace)
        if process.is_alive():
            logger.warning("Worker [%s] did not stop in %.0f s; killing it", process.pid, grace)
            process.kill()
            process.join()
