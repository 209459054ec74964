"""Initial pull of two checkouts in turns, one pull at a time (issue 3's ratio, A/B).

``client_bench.py`` runs a side's three rounds back to back, so on a shared machine the load
changes between one side's run and the other's; here each checkout keeps its own bench server
and the pulls alternate (base, new, new, base, ...), each beside the in-process limit measured
right after it on the same pages, so both sides see the same load. Each side runs its own
``bench/`` and ``src/`` (its ``_common`` puts its ``src`` first on ``sys.path``); this script
only drives them.

Run:  .venv/bin/python bench/pull_ab.py /path/to/base-checkout /path/to/new-checkout [--pairs 6]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any


def worker(checkout: str) -> None:
    """One side: a bench server, then one initial pull per line read on stdin."""
    sys.path.insert(0, str(Path(checkout) / "bench"))  # that side's bench, and through it src
    for name in ("_common", "_limits", "_seed", "client_bench"):
        sys.modules.pop(name, None)
    import client_bench as cb

    import tablesync

    print(f"{checkout}: tablesync from {Path(tablesync.__file__).parent}", file=sys.stderr)
    sys.argv = [sys.argv[0], "--pull-only", "--memory-rows", "0"]
    args = cb.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tablesync-pull-ab-"))
    try:
        serve(cb, args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def serve(cb: Any, args: Any, work: Path) -> None:
    """Pull on each line of stdin, from the bench server of this side."""
    import _limits
    from _common import group_cpu_seconds
    from _seed import TABLE

    with cb.bench_server(args, work) as url:
        print("ready", flush=True)
        for _ in sys.stdin:
            client, transport = cb.make_client(url, work / f"s-{uuid.uuid4().hex[:8]}.db", None)
            table = client.sync_table(TABLE)
            server_cpu = group_cpu_seconds(args.server_pgid)
            _, (wall, cpu) = cb.timed(lambda t=table: t.pull(query_id="all"))
            server_s = group_cpu_seconds(args.server_pgid) - server_cpu
            rows = table.count()
            limit_conn = _limits.connect(work / f"l-{uuid.uuid4().hex[:8]}.db")
            limit_wall, _ = _limits.apply_pages(limit_conn, transport.pages)
            limit_conn.close()
            store = client.context.store
            client.close()
            store.close()
            print(
                rows / wall, rows / limit_wall, cpu * 1e6 / rows, server_s * 1e6 / rows, flush=True
            )


def start(checkout: str) -> subprocess.Popen[str]:
    root = Path(checkout).resolve()
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    argv = [str(root / ".venv/bin/python"), __file__, "--worker", str(root)]
    process = subprocess.Popen(
        argv, cwd=root, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    for line in process.stdout:  # the server seeds first
        if line.startswith("ready"):
            return process
    raise SystemExit(f"the worker of {checkout} ended before its server was ready")


def pull(process: subprocess.Popen[str]) -> list[float]:
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write("pull\n")
    process.stdin.flush()
    return [float(value) for value in process.stdout.readline().split()]


def main() -> None:
    if sys.argv[1:2] == ["--worker"]:
        worker(sys.argv[2])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base")
    parser.add_argument("new")
    parser.add_argument("--pairs", type=int, default=6)
    args = parser.parse_args()
    sides = {"base": start(args.base), "new": start(args.new)}
    results: dict[str, list[list[float]]] = {"base": [], "new": []}
    try:
        for n in range(args.pairs):
            for side in ("base", "new") if n % 2 == 0 else ("new", "base"):
                rate, limit, client_us, server_us = values = pull(sides[side])
                results[side].append(values)
                load = Path("/proc/loadavg").read_text().split()[0]
                print(f"{side:4} {rate:9,.0f} rows/s  limit {limit:9,.0f}  ratio "
                      f"{rate / limit:.2f}  CPU µs/row client {client_us:.2f} server "
                      f"{server_us:.2f}  load {load}", flush=True)  # fmt: skip
    finally:
        for process in sides.values():
            assert process.stdin is not None
            process.stdin.close()
            process.wait(timeout=60)
    for side, rows in results.items():
        print(
            f"median {side}: {statistics.median(r[0] for r in rows):,.0f} rows/s, ratio "
            f"{statistics.median(r[0] / r[1] for r in rows):.2f}, CPU µs/row client "
            f"{statistics.median(r[2] for r in rows):.2f} server "
            f"{statistics.median(r[3] for r in rows):.2f}"
        )


if __name__ == "__main__":
    main()
