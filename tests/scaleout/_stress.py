"""The stress scenario: processes write with random-length transactions while clients pull.

Writers (threads, each sending to a random server process) insert and update rows of table
``stress``; each write's transaction sleeps a random time in the server's ``before_commit``
hook. Devices (tablesync clients with their own SQLite stores) pull incrementally in a loop
meanwhile. When the writers stop, every device pulls once more and is compared with the
server row by row: a row it lacks is *missed*, a row it holds in an older version is *stale*.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tablesync import Client, PullFailedError, SQLiteStore

V3 = {"ZUMO-API-VERSION": "3.0.0"}
TABLE = "stress"


@dataclass
class Report:
    """What one scenario run did and found.

    Attributes:
        writes: successful writes (inserts and updates).
        pulls: incremental pulls completed by all devices while writers ran.
        server_rows: rows on the server at the end.
        missed: per device, ids the server has and the device lacks.
        stale: per device, ids the device holds in another version than the server's.
        errors: unexpected failures in writer or device threads.
        pull_failures: pulls the client refused to finish (``PullFailedError``: a page
            out of ``updatedAt`` order, or the same rows again for the keyset after them,
            which broken stamps cause).
    """

    writes: int = 0
    pulls: int = 0
    server_rows: int = 0
    missed: list[set[str]] = field(default_factory=list)
    stale: list[set[str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    pull_failures: int = 0

    @property
    def lost(self) -> int:
        """Missed plus stale rows over all devices."""
        return sum(len(m) for m in self.missed) + sum(len(s) for s in self.stale)


class _Counter:
    def __init__(self) -> None:
        self.value = 0
        self._lock = threading.Lock()

    def add(self, n: int = 1) -> None:
        with self._lock:
            self.value += n


def run_scenario(
    servers: list[str],
    workdir: Path,
    *,
    writers: int = 6,
    devices: int = 3,
    write_seconds: float = 6.0,
    seed: int = 7,
) -> Report:
    """Run writers and pulling devices against ``servers``; compare every device at the end."""
    report = Report()
    stop = threading.Event()
    writes, pulls, failures = _Counter(), _Counter(), _Counter()
    writer_threads = [
        _thread(lambda k=k: _writer(servers, k, seed, stop, writes), report, k)
        for k in range(writers)
    ]
    clients = [_device(servers[k % len(servers)], workdir / f"d{k}.db") for k in range(devices)]
    device_threads = [
        _thread(lambda c=c: _pull_loop(c, stop, pulls, failures), report, f"device{n}")
        for n, c in enumerate(clients)
    ]
    time.sleep(write_seconds)
    stop.set()
    for thread in [*writer_threads, *device_threads]:
        thread.join(timeout=60)
        assert not thread.is_alive(), "a stress thread did not stop within 60 s"
    truth = server_rows(servers[0])
    report.writes, report.pulls, report.server_rows = writes.value, pulls.value, len(truth)
    for client in clients:
        try:
            _pull(client, failures)
            local = {row["id"]: row for row in client.sync_table(TABLE).query()}
        finally:
            client.close()
        report.pull_failures = failures.value
        report.missed.append(set(truth) - set(local))
        report.stale.append({i for i in set(truth) & set(local) if not _same(truth[i], local[i])})
    return report


def _same(server: dict[str, Any], local: dict[str, Any]) -> bool:
    keys = ("version", "updatedAt", "n", "writer", "deleted")
    return all(server.get(key) == local.get(key) for key in keys)


def _thread(target: Callable[[], None], report: Report, name: object) -> threading.Thread:
    def run() -> None:
        try:
            target()
        except Exception as exc:  # reported and asserted on by the test
            report.errors.append(f"{name}: {type(exc).__name__}: {exc}")

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _writer(servers: list[str], k: int, seed: int, stop: threading.Event, writes: _Counter) -> None:
    rng = random.Random(seed * 1000 + k)
    mine: list[str] = []
    with httpx.Client(headers=V3, timeout=60) as http:
        n = 0
        while not stop.is_set():
            n += 1
            base = rng.choice(servers)
            if not mine or rng.random() < 0.6:
                item_id = f"s{seed}-w{k}-{n}"  # a retried round writes new ids
                response = http.post(
                    f"{base}/tables/{TABLE}", json={"id": item_id, "n": n, "writer": f"w{k}"}
                )
                expected = 201
                mine.append(item_id)
            else:
                response = http.patch(f"{base}/tables/{TABLE}/{rng.choice(mine)}", json={"n": n})
                expected = 200
            if response.status_code != expected:
                raise AssertionError(f"write answered {response.status_code}: {response.text}")
            writes.add()


def _device(url: str, path: Path) -> Client:
    return Client(url, store=SQLiteStore(path), page_size=10)


def _pull_loop(client: Client, stop: threading.Event, pulls: _Counter, failures: _Counter) -> None:
    while not stop.is_set():
        _pull(client, failures)
        pulls.add()


def _pull(client: Client, failures: _Counter) -> None:
    try:
        client.sync_table(TABLE).pull(query_id="all")
    except PullFailedError:
        failures.add()


def server_rows(base: str) -> dict[str, dict[str, Any]]:
    """Every row of the table (tombstones included), read page by page over HTTP."""
    rows: dict[str, dict[str, Any]] = {}
    url: str | None = f"{base}/tables/{TABLE}?$orderby=id&__includedeleted=true"
    with httpx.Client(headers=V3, timeout=60) as http:
        while url is not None:
            page = http.get(url).raise_for_status().json()
            rows.update((item["id"], item) for item in page["items"])
            url = page["nextLink"]
    return rows
