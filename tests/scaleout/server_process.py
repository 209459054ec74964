"""A tablesync server process for the scale-out tests: ``python server_process.py ...``.

Each process serves table ``stress`` on its own port against the shared database. Its
``before_commit`` hook sleeps a random time, so every write is a transaction of random length
that commits while other processes write: the situation in which stamping with a process
clock lets a row commit below a stamp a client has already seen.
"""

from __future__ import annotations

import argparse
import random
import time

import uvicorn
from starlette.requests import Request

from tablesync.server import Table, WriteEvent, create_app

STRESS_COLUMNS = {"n": "integer", "writer": "string"}


def build(database: str, *, strict: bool, max_sleep_ms: int) -> object:
    """The app: table ``stress`` whose writes sleep up to ``max_sleep_ms`` before committing."""

    def slow_commit(_request: Request, _event: WriteEvent) -> None:
        # Skewed towards short sleeps with a long tail: a few long transactions among many
        # short ones is what hides rows from a naive clock.
        time.sleep(max_sleep_ms * random.random() ** 2 / 1000)

    table = Table("stress", columns=STRESS_COLUMNS, before_commit=slow_commit)
    return create_app(database, tables=[table], strict_clock=strict)


def main() -> None:
    """Parse the arguments and serve until SIGTERM (in-flight requests finish first)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--naive", action="store_true", help="strict_clock=False")
    parser.add_argument("--max-sleep-ms", type=int, default=40)
    args = parser.parse_args()
    app = build(args.database, strict=not args.naive, max_sleep_ms=args.max_sleep_ms)
    uvicorn.run(
        app, host="127.0.0.1", port=args.port, log_level="warning", timeout_graceful_shutdown=10
    )


if __name__ == "__main__":
    main()
