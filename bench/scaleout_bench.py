"""Scale-out benchmark (issue 5): the clock lock's cost, and keyset vs ``$skip`` page latency.

1. Write throughput of one PostgreSQL table with 1, 2 and 4 server processes (uvicorn
   workers), strict per-table clock vs naive stamping, measured side by side: for each round,
   every (processes, clock) pair runs in turn; wrk (a separate process, the Debian package,
   installed with apt-get when missing and running as root) drives inserts over
   ``--connections`` connections. Medians over ``--rounds``.
2. Incremental-pull page latency on a ``--rows`` (1,000,000) row PostgreSQL table:
   the first page and the last page, by keyset (``$skiptoken``) and by ``$skip``; sequential
   requests from this process to one server process, median of ``--samples``.

Run:  .venv/bin/python bench/scaleout_bench.py [--rows 1000000] [--duration 6] [--rounds 3]

Prints Markdown for the "Scale-out" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from _common import (
    VENV_BIN,
    drop_postgres_database,
    fresh_postgres_database,
    markdown_table,
    median,
    print_machine,
    started,
    wait_http,
)
from _seed import TABLE, seed_tablesync
from server_bench import Sample, Target, ensure_wrk, run_wrk

from tablesync.protocol import parse_datetime, to_millis
from tablesync.server._paging import Keyset

HERE = Path(__file__).resolve().parent
WRITE_DB = "tablesync_bench_scaleout_w"
PAGE_DB = "tablesync_bench_scaleout_p"
V3 = {"ZUMO-API-VERSION": "3.0.0"}


@contextlib.contextmanager
def server(database: str, workers: int, strict: bool, port: int, logs: Path) -> Iterator[Target]:
    """``uvicorn scaleout_app:build`` with ``workers`` processes."""
    argv = [str(VENV_BIN / "uvicorn"), "scaleout_app:build", "--factory", "--app-dir", str(HERE)]
    argv += ["--port", str(port), "--workers", str(workers), "--log-level", "warning"]
    env = dict(os.environ, SCALEOUT_DATABASE=database, SCALEOUT_STRICT="1" if strict else "0")
    log = logs / f"w{workers}-{'strict' if strict else 'naive'}.log"
    with started(argv, log, env=env) as process:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/health/ready", process, log)
        yield Target(log.stem, url, "3.0.0", process.pid)


def write_throughput(args: argparse.Namespace, wrk: str, logs: Path) -> dict[str, list[Sample]]:
    """Insert throughput per (processes, clock), rounds interleaved."""
    database = fresh_postgres_database(WRITE_DB)
    seed_tablesync(database, 1000)
    samples: dict[str, list[Sample]] = {}
    try:
        for round_no in range(args.rounds):
            for workers in (1, 2, 4):
                for strict in (True, False):
                    name = f"{workers}-{'strict' if strict else 'naive'}"
                    with server(database, workers, strict, args.port, logs) as target:
                        run_wrk(wrk, target, "insert", duration=2, connections=8, rows=1000)
                        sample = run_wrk(
                            wrk, target, "insert", duration=args.duration,
                            connections=args.connections, rows=1000,
                        )  # fmt: skip
                    samples.setdefault(name, []).append(sample)
                    print(f"round {round_no + 1} {name}: {sample.rps:.0f} inserts/s", flush=True)
    finally:
        drop_postgres_database(WRITE_DB)
    return samples


def page_latency(args: argparse.Namespace, logs: Path) -> dict[str, float]:
    """Median latency (ms) of the first and the last page, keyset vs ``$skip``."""
    database = fresh_postgres_database(PAGE_DB)
    started_at = time.monotonic()
    seed_tablesync(database, args.rows)
    print(f"seeded {args.rows} rows in {time.monotonic() - started_at:.0f} s", flush=True)
    _analyze(database)
    results: dict[str, float] = {}
    try:
        with (
            server(database, 1, True, args.port, logs) as target,
            httpx.Client(base_url=target.url, headers=V3, timeout=120) as http,
        ):
            pull = f"/tables/{TABLE}?$orderby=updatedAt&$top=100"
            last = _token_before_end(http)
            urls = {
                "keyset, first page": pull,
                "keyset, last page": f"{pull}&$skiptoken={last}",
                "$skip, first page": f"{pull}&$skip=0",
                "$skip, last page": f"{pull}&$skip={args.rows - 100}",
            }
            timings = _interleaved_ms(http, urls, args.samples)
            for name, values in timings.items():
                results[name] = statistics.median(values)
                print(f"{name}: {results[name]:.1f} ms", flush=True)
    finally:
        drop_postgres_database(PAGE_DB)
    return results


def _analyze(database: str) -> None:
    import psycopg

    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(f'VACUUM ANALYZE "{TABLE}"')


def _token_before_end(http: httpx.Client) -> str:
    """The keyset token that continues to the last 100 rows (from the newest rows' page)."""
    page = http.get(f"/tables/{TABLE}?$orderby=updatedAt desc&$skip=100&$top=1").json()
    boundary = page["items"][0]  # the 101st newest row: the last page starts right after it
    return Keyset(to_millis(parse_datetime(boundary["updatedAt"])), boundary["id"]).token()


def _interleaved_ms(
    http: httpx.Client, urls: dict[str, str], samples: int
) -> dict[str, list[float]]:
    """``samples`` timings (ms) per URL, taken in turns so that load affects all alike."""
    for url in urls.values():  # warm-up: plans, caches, connections
        http.get(url).raise_for_status()
    timings: dict[str, list[float]] = {name: [] for name in urls}
    for _ in range(samples):
        for name, url in urls.items():
            begin = time.perf_counter()
            response = http.get(url)
            timings[name].append((time.perf_counter() - begin) * 1000)
            response.raise_for_status()
            assert len(response.json()["items"]) == 100, name
    return timings


def report(writes: dict[str, list[Sample]], pages: dict[str, float]) -> None:
    """Print the Markdown section."""
    print("\n### Machine\n")
    print_machine()
    print("\n### Write throughput, one PostgreSQL table (inserts/s, median)\n")
    rows = []
    for workers in (1, 2, 4):
        strict = median([s.rps for s in writes[f"{workers}-strict"]])
        naive = median([s.rps for s in writes[f"{workers}-naive"]])
        p99 = median([s.p99_ms for s in writes[f"{workers}-strict"]])
        errors = sum(
            s.errors for key in writes for s in writes[key] if key.startswith(str(workers))
        )
        rows.append(
            [
                workers,
                f"{strict:.0f}",
                f"{naive:.0f}",
                f"{strict / naive:.2f}",
                f"{p99:.1f}",
                errors,
            ]
        )
    print(
        markdown_table(
            ["processes", "strict", "naive", "strict/naive", "strict p99 ms", "errors"], rows
        )
    )
    if pages:
        print("\n### Incremental-pull page latency, 100 rows per page (ms, median)\n")
        rows = [[name, f"{value:.1f}"] for name, value in pages.items()]
        print(markdown_table(["page", "latency"], rows))
        for kind in ("keyset", "$skip"):
            ratio = pages[f"{kind}, last page"] / pages[f"{kind}, first page"]
            print(f"\n{kind}: last page / first page = {ratio:.2f}")


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--duration", type=int, default=6, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--samples", type=int, default=30, help="requests per page latency")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--skip-writes", action="store_true")
    parser.add_argument("--skip-pages", action="store_true")
    return parser.parse_args()


def main() -> None:
    """Run both parts and print the report."""
    args = parse_args()
    wrk = ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="scaleout-bench-") as work:
        logs = Path(work)
        writes = {} if args.skip_writes else write_throughput(args, wrk, logs)
        pages = {} if args.skip_pages else page_latency(args, logs)
    if writes:
        report(writes, pages)
    else:
        report_pages_only(pages)


def report_pages_only(pages: dict[str, float]) -> None:
    """Print the page-latency part alone."""
    print_machine()
    for name, value in pages.items():
        print(f"{name}: {value:.1f} ms")


if __name__ == "__main__":
    main()
