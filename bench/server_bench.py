"""Server benchmark (issue 2): requests/s and p50/p99 latency under 16 connections, with wrk.

Scenarios, against a seeded table of ``--rows`` rows (100,000 by default):
  query   a page query: ``$filter=(rating eq 'R') and (year ge Y)&$orderby=id&$top=50``
  read    a read by id (random seeded id)
  insert  an insert (server-generated id)

Servers, all running at once on the same data, measured in turns (round-robin, ``--rounds``
times), so that every ratio compares numbers taken side by side:
  node            the official azure-mobile-apps 4.0.2 server, sqlite provider (v2 requests)
  sqlite-w1/-w2   ``tablesync serve --workers 1|2`` on one SQLite file (v3 requests)
  postgres-w1/-w2 ``tablesync serve --workers 1|2`` on PostgreSQL (v3 requests)

Run:  .venv/bin/python bench/server_bench.py [--rows 100000] [--duration 8] [--rounds 3]

Needs ``wrk`` (installed with apt-get when missing and running as root), Node.js/npm for the
official server (``scripts/npm-peers`` installs it once) and PostgreSQL on 127.0.0.1:5432.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from _common import (
    ROOT,
    VENV_BIN,
    drop_postgres_database,
    fresh_postgres_database,
    group_cpu_seconds,
    markdown_table,
    median,
    postgres_cpu_seconds,
    print_machine,
    started,
    wait_http,
)
from _seed import TABLE, config_toml, seed_node, seed_tablesync

LUA_DIR = Path(__file__).resolve().parent / "wrk"
SCENARIOS = ("query", "read", "insert")
#: Its own name per concurrent user of one PostgreSQL (each run drops and recreates it).
PG_DATABASE = os.environ.get("TABLESYNC_BENCH_DATABASE", "tablesync_bench")


@dataclass
class Target:
    """A server under test."""

    name: str
    url: str
    api: str
    pgid: int


@dataclass
class Sample:
    """One wrk run."""

    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_us: float  # the server processes' CPU time per request (PostgreSQL's own not counted)
    postgres_cpu_us: float  # PostgreSQL's processes' CPU time per request
    wrk_cpu_us: float  # the load generator's CPU time per request


@dataclass
class Results:
    """Every sample, by (target, scenario)."""

    samples: dict[tuple[str, str], list[Sample]] = field(default_factory=dict)

    def add(self, target: str, scenario: str, sample: Sample) -> None:
        self.samples.setdefault((target, scenario), []).append(sample)

    def get(self, target: str, scenario: str) -> list[Sample]:
        return self.samples.get((target, scenario), [])


def ensure_wrk() -> str:
    """The wrk executable; installs the Debian package when missing and allowed to."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("wrk is missing: apt-get install -y wrk", flush=True)
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=False, capture_output=True)
        if not shutil.which("wrk"):
            subprocess.run(["apt-get", "update"], check=False, capture_output=True)
            subprocess.run(["apt-get", "install", "-y", "wrk"], check=True, capture_output=True)
        found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk is required: sudo apt-get install wrk (or build it from source)")
    return found


def run_wrk(
    wrk: str, target: Target, scenario: str, *, duration: int, connections: int, rows: int
) -> Sample:
    """One wrk run of ``scenario`` against ``target``."""
    env = dict(os.environ, BENCH_LUA_DIR=str(LUA_DIR), BENCH_TABLE=TABLE)
    env.update(BENCH_API=target.api, BENCH_ROWS=str(rows))
    argv = [wrk, "-t", "1", "-c", str(connections), "-d", f"{duration}s", "--timeout", "10s"]
    argv += ["-s", str(LUA_DIR / f"{scenario}.lua"), target.url]
    cpu_before, postgres_before = group_cpu_seconds(target.pgid), postgres_cpu_seconds()
    wrk_before = _children_cpu_seconds()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=duration + 60)
    cpu = group_cpu_seconds(target.pgid) - cpu_before
    postgres_cpu = postgres_cpu_seconds() - postgres_before
    wrk_cpu = _children_cpu_seconds() - wrk_before
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH_RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{done.stdout}\n{done.stderr}")
    data = json.loads(line.removeprefix("BENCH_RESULT "))
    errors = sum(data[key] for key in data if key.endswith("_errors") or key == "timeouts")
    return Sample(
        rps=data["requests"] / (data["duration_us"] / 1e6),
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        errors=errors,
        cpu_us=cpu * 1e6 / max(1, data["requests"]),
        postgres_cpu_us=postgres_cpu * 1e6 / max(1, data["requests"]),
        wrk_cpu_us=wrk_cpu * 1e6 / max(1, data["requests"]),
    )


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@contextlib.contextmanager
def tablesync_server(
    name: str, config: Path, port: int, workers: int, logs: Path, src: Path = ROOT / "src"
) -> Iterator[Target]:
    """``tablesync serve`` with ``workers`` processes, running the code of ``src``.

    ``src`` is put first on ``PYTHONPATH``: the venv's editable install may point at another
    checkout, and every server process (uvicorn's workers too) must run the code measured.
    """
    argv = [str(VENV_BIN / "tablesync"), "serve", "--config", str(config)]
    argv += ["--port", str(port), "--workers", str(workers), "--no-access-log"]
    log = logs / f"{name}.log"
    env = dict(os.environ, PYTHONPATH=str(src))
    with started(argv, log, env=env) as process:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/health", process, log)
        yield Target(name, url, "3.0.0", process.pid)


@contextlib.contextmanager
def node_target(rows: int, work: Path) -> Iterator[Target | None]:
    """The official Node server, seeded; ``None`` (and a note) when Node is unavailable."""
    from tests.interop.peers import PeerUnavailableError, node_server

    try:
        with node_server(db_path=work / "node.sqlite", tables=(TABLE,)) as server:
            started_at = time.monotonic()
            seed_node(server.url, rows)
            print(f"seeded node: {rows} rows in {time.monotonic() - started_at:.1f} s", flush=True)
            yield Target("node", server.url, "2.0.0", server.process.pid)
    except PeerUnavailableError as exc:
        print(f"the Node server is unavailable, skipping it: {exc}", flush=True)
        yield None


def seed_all(rows: int, work: Path, backends: tuple[str, ...]) -> dict[str, Path]:
    """Seed SQLite and/or PostgreSQL for tablesync; returns the config file of each."""
    configs = {}
    databases = {}
    if "sqlite" in backends:
        databases["sqlite"] = f"sqlite:///{work / 'tablesync.sqlite'}"
    if "postgres" in backends:
        databases["postgres"] = fresh_postgres_database(PG_DATABASE)
    for backend, url in databases.items():
        started_at = time.monotonic()
        seed_tablesync(url, rows)
        print(f"seeded {backend}: {rows} rows in {time.monotonic() - started_at:.1f} s", flush=True)
        configs[backend] = config_toml(url, work / f"{backend}.toml")
    return configs


def measure(args: argparse.Namespace, targets: list[Target], wrk: str) -> Results:
    """Warm up every target, then run every scenario on every target, ``rounds`` times."""
    results = Results()
    options = {"connections": args.connections, "rows": args.rows}
    for scenario in args.scenarios:
        for target in targets:
            run_wrk(wrk, target, scenario, duration=args.warmup, **options)
    for round_no in range(1, args.rounds + 1):
        for scenario in args.scenarios:
            for target in targets:
                sample = run_wrk(wrk, target, scenario, duration=args.duration, **options)
                results.add(target.name, scenario, sample)
                print(
                    f"round {round_no} {scenario:6} {target.name:12} {sample.rps:8.0f} req/s "
                    f"p50 {sample.p50_ms:6.1f} ms p99 {sample.p99_ms:6.1f} ms "
                    f"cpu {sample.cpu_us:5.0f} us/req (postgres {sample.postgres_cpu_us:4.0f}, "
                    f"wrk {sample.wrk_cpu_us:3.0f}) errors {sample.errors}",
                    flush=True,
                )
    return results


def ratio(results: Results, top: str, bottom: str, scenario: str) -> float:
    """The median over rounds of ``top``'s requests/s divided by ``bottom``'s, same round."""
    pairs = zip(results.get(top, scenario), results.get(bottom, scenario), strict=False)
    return median([a.rps / b.rps for a, b in pairs if b.rps > 0])


def report(results: Results, targets: list[Target], scenarios: tuple[str, ...]) -> None:
    """Print the tables of medians and ratios, and the targets met or missed."""
    rows = []
    for scenario in scenarios:
        for target in targets:
            samples = results.get(target.name, scenario)
            if samples:
                rows.append(
                    [
                        scenario,
                        target.name,
                        f"{median([s.rps for s in samples]):.0f}",
                        f"{median([s.p50_ms for s in samples]):.1f}",
                        f"{median([s.p99_ms for s in samples]):.1f}",
                        f"{median([s.cpu_us for s in samples]):.0f}",
                        f"{median([s.postgres_cpu_us for s in samples]):.0f}",
                        f"{median([s.wrk_cpu_us for s in samples]):.0f}",
                        sum(s.errors for s in samples),
                    ]
                )
    print("\n### Medians\n")
    print(
        markdown_table(
            [
                "scenario",
                "server",
                "req/s",
                "p50 ms",
                "p99 ms",
                "CPU µs/req",
                "PostgreSQL CPU µs/req",
                "wrk CPU µs/req",
                "errors",
            ],
            rows,
        )
    )
    print("\n### Ratios (median of per-round ratios)\n")
    names = {t.name for t in targets}
    ratio_rows = []
    for scenario in scenarios:
        for backend in ("sqlite", "postgres", "base-sqlite", "base-postgres"):
            w1, w2 = f"{backend}-w1", f"{backend}-w2"
            if w1 not in names:
                continue
            if "node" in names:
                ratio_rows.append(
                    [scenario, f"{w1} / node", f"{ratio(results, w1, 'node', scenario):.2f}"]
                )
                ratio_rows.append(
                    [scenario, f"{w2} / node", f"{ratio(results, w2, 'node', scenario):.2f}"]
                )
            ratio_rows.append([scenario, f"{w2} / {w1}", f"{ratio(results, w2, w1, scenario):.2f}"])
    print(markdown_table(["scenario", "ratio", "value"], ratio_rows))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--no-node", action="store_true", help="skip the official Node server")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--base-src",
        type=Path,
        help="also serve the code of this src directory (e.g. a checkout of main), as base-*",
    )
    parser.add_argument("--port", type=int, default=18_400, help="the first server's port")
    parser.add_argument(
        "--scenarios", default=",".join(SCENARIOS), help="comma-separated subset of: %(default)s"
    )
    parser.add_argument(
        "--backends", default="sqlite,postgres", help="comma-separated subset of: %(default)s"
    )
    args = parser.parse_args()
    args.scenarios = tuple(args.scenarios.split(","))
    args.backends = tuple(args.backends.split(","))
    unknown = set(args.scenarios) - set(SCENARIOS) | set(args.backends) - {"sqlite", "postgres"}
    if unknown:
        parser.error(f"unknown scenario or backend: {', '.join(sorted(unknown))}")
    return args


def main() -> None:
    args = parse_args()
    wrk = ensure_wrk()
    print("## Machine\n")
    print_machine()
    work = Path(tempfile.mkdtemp(prefix="tablesync-bench-"))
    print(f"\nwork directory: {work}\n", flush=True)
    try:
        configs = seed_all(args.rows, work, args.backends)
        with contextlib.ExitStack() as stack:
            targets: list[Target] = []
            if not args.no_node:
                node = stack.enter_context(node_target(args.rows, work))
                if node is not None:
                    targets.append(node)
            port = args.port
            sources = [("", ROOT / "src")]
            if args.base_src is not None:
                sources.append(("base-", args.base_src.resolve()))
            for backend, config in configs.items():
                for workers in (1, 2):
                    for prefix, src in sources:  # side by side: base and ours alternate
                        name = f"{prefix}{backend}-w{workers}"
                        server = tablesync_server(name, config, port, workers, work, src)
                        targets.append(stack.enter_context(server))
                        port += 1
            report(measure(args, targets, wrk), targets, args.scenarios)
    finally:
        if "postgres" in args.backends:
            drop_postgres_database(PG_DATABASE)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
