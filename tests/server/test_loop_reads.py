"""PostgreSQL page queries awaited on the event loop (``_loop_reads``), and when they are not.

Every test drives a started app (its lifespan opens the pool) and makes the worker-thread
path fail, so that an answer proves where it came from.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import anyio
import psycopg
import pytest
import sqlalchemy as sa
from starlette.requests import Request

from tablesync.server import Table, create_app
from tablesync.server._loop_reads import LoopReads
from tablesync.server._runner import DatabaseRunner
from tests._testclient import TestClient

from .conftest import V3

pytestmark = pytest.mark.timeout(60)

NOTES = {"text": "string", "owner": "string", "n": "integer"}


class ThreadReads:
    """Counts the reads that went to a worker thread; fails them when ``refuse`` is set."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, refuse: bool) -> None:
        self.calls = 0
        original = DatabaseRunner.read

        async def read(runner: DatabaseRunner, fn: Any, *args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if refuse:
                raise AssertionError("this read should not have needed a worker thread")
            return await original(runner, fn, *args, **kwargs)

        monkeypatch.setattr(DatabaseRunner, "read", read)


def _owner_view(request: Request, table: sa.Table) -> Any:
    return table.c.owner == request.headers.get("x-owner", "")


@pytest.fixture
def started(postgres_url: str) -> Iterator[Any]:
    """``started(**create_app_kwargs)``: a started app on PostgreSQL, by default with a
    ``notes`` table whose rows each caller sees only its own of (``x-owner``)."""
    notes = Table("notes", columns=NOTES, view=_owner_view, page_size=2)
    with contextlib.ExitStack() as stack:

        def start(**kwargs: Any) -> TestClient:
            app = create_app(postgres_url, **{"tables": [notes], **kwargs})
            return stack.enter_context(TestClient(app, raise_server_exceptions=False))

        yield start


def _insert(client: TestClient, owner: str, n: int) -> None:
    body = {"id": f"{owner}-{n:03d}", "text": f"note {n}", "owner": owner, "n": n}
    response = client.post("/tables/notes", json=body, headers={**V3, "x-owner": owner})
    assert response.status_code == 201, response.text


def test_page_queries_run_on_the_loop_with_each_callers_view(
    started: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = started()
    for n in range(5):
        _insert(client, "ann", n)
        _insert(client, "bob", n)
    ThreadReads(monkeypatch, refuse=True)
    query = "/tables/notes?$filter=n ge 1&$orderby=n desc&$count=true"
    # The same statement shape for both callers: each run binds its own caller.
    for owner in ("ann", "bob", "ann"):
        response = client.get(query, headers={**V3, "x-owner": owner})
        assert response.status_code == 200, response.text
        page = response.json()
        assert [item["id"] for item in page["items"]] == [f"{owner}-004", f"{owner}-003"]
        assert page["count"] == 4
        assert "$skip=2" in page["nextLink"]


def test_the_keyset_of_a_sync_pull_is_bound_on_the_loop(
    started: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = started()
    for n in range(5):
        _insert(client, "ann", n)
    ThreadReads(monkeypatch, refuse=True)
    headers = {**V3, "x-owner": "ann"}
    url = "/tables/notes?$orderby=updatedAt&__includedeleted=true"
    seen: list[str] = []
    while url:
        page = client.get(url, headers=headers).json()
        seen += [item["id"] for item in page["items"]]
        url = page["nextLink"] or ""
    assert seen == [f"ann-{n:03d}" for n in range(5)]


def test_pages_rendered_in_python_take_a_thread(
    started: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = started()
    _insert(client, "ann", 1)
    threads = ThreadReads(monkeypatch, refuse=False)
    selected = client.get("/tables/notes?$select=text", headers={**V3, "x-owner": "ann"})
    assert selected.json()["items"] == [{"id": "ann-001", "text": "note 1"}]
    assert threads.calls == 1


def test_tables_whose_columns_may_change_take_a_thread(
    started: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = started(dynamic_schema=True)
    assert client.post("/tables/scratch", json={"id": "a", "v": 1}, headers=V3).status_code == 201
    threads = ThreadReads(monkeypatch, refuse=False)
    assert client.get("/tables/scratch", headers=V3).json()["items"][0]["v"] == 1
    assert threads.calls == 1


def test_a_dead_pooled_connection_is_replaced_once(
    started: Any, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = started()
    _insert(client, "ann", 1)
    headers = {**V3, "x-owner": "ann"}
    assert client.get("/tables/notes", headers=headers).status_code == 200
    ThreadReads(monkeypatch, refuse=True)
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    assert killed is not None and killed[0] >= 1
    response = client.get("/tables/notes", headers=headers)
    assert response.status_code == 200, response.text
    assert [item["id"] for item in response.json()["items"]] == ["ann-001"]


def _failing_view(request: Request, table: sa.Table) -> Any:
    if request.headers.get("x-test-slow"):
        return sa.literal_column("(SELECT true FROM pg_sleep(2))")
    if request.headers.get("x-test-zero"):
        return table.c.n / sa.literal_column("0") == 1
    return sa.true()


def test_database_errors_on_the_loop_answer_as_on_a_thread(
    started: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow = Table("slow", columns=NOTES, view=_failing_view)
    client = started(tables=[slow], statement_timeout=dt.timedelta(milliseconds=200))
    assert client.post("/tables/slow", json={"id": "a", "n": 1}, headers=V3).status_code == 201
    ThreadReads(monkeypatch, refuse=True)
    timed_out = client.get("/tables/slow", headers={**V3, "x-test-slow": "1"})
    assert timed_out.status_code == 503
    assert timed_out.headers["Retry-After"]
    by_zero = client.get("/tables/slow", headers={**V3, "x-test-zero": "1"})
    assert by_zero.status_code == 400
    assert "division by zero" in by_zero.json()["error"]
    assert client.get("/tables/slow", headers=V3).json()["items"][0]["id"] == "a"


def test_statements_rendered_when_they_run_are_declined(postgres_url: str) -> None:
    table = sa.Table("t", sa.MetaData(), sa.Column("n", sa.Integer))
    engine = sa.create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://"))
    reads = LoopReads(engine)

    async def fetch(statement: sa.Select[Any]) -> Any:
        await reads.open()
        try:
            return await reads.fetch([(statement, {})])
        finally:
            await reads.close()

    try:
        expanding = sa.select(table.c.n).where(table.c.n.in_([1, 2]))
        assert anyio.run(fetch, expanding) is None
        assert anyio.run(fetch, sa.select(sa.literal(7) + 1)) == [[(8,)]]
    finally:
        engine.dispose()


def _answers(client: TestClient, url: str, headers: dict[str, str]) -> tuple[Any, ...]:
    response = client.get(url, headers=headers)
    kept = {name: response.headers.get(name) for name in ("etag", "last-modified", "location")}
    return response.status_code, kept, response.content


@pytest.mark.parametrize("api", ["2.0.0", "3.0.0"])
def test_item_reads_on_the_loop_answer_as_on_a_thread(
    started: Any, monkeypatch: pytest.MonkeyPatch, api: str
) -> None:
    client = started()
    for n in (1, 2):
        _insert(client, "ann", n)
    deleted = client.delete("/tables/notes/ann-002", headers={**V3, "x-owner": "ann"})
    assert deleted.status_code in (200, 204)
    headers = {"ZUMO-API-VERSION": api, "x-owner": "ann"}
    etag = client.get("/tables/notes/ann-001", headers=headers).headers["etag"]
    cases = [
        ("/tables/notes/ann-001", {}),
        ("/tables/notes/ann-001", {"If-None-Match": etag}),  # 304
        ("/tables/notes/ann-001", {"If-Match": '"other"'}),  # 412 with the item
        ("/tables/notes/ann-001", {"If-Modified-Since": "Sat, 01 Jan 2050 00:00:00 GMT"}),
        ("/tables/notes/ann-002", {}),  # deleted: 410 (v3), 404 (v2)
        ("/tables/notes/ann-002?__includedeleted=true", {}),
        ("/tables/notes/nobody", {}),  # 404
    ]
    threads = ThreadReads(monkeypatch, refuse=True)
    on_loop = [_answers(client, url, {**headers, **extra}) for url, extra in cases]
    assert [answer[0] for answer in on_loop] == [
        200, 304, 412, 304, 410 if api == "3.0.0" else 404, 200, 404
    ]  # fmt: skip
    monkeypatch.undo()
    threads = ThreadReads(monkeypatch, refuse=False)
    monkeypatch.setattr(LoopReads, "here", lambda _reads: False)
    on_threads = [_answers(client, url, {**headers, **extra}) for url, extra in cases]
    assert threads.calls == len(cases)
    assert on_loop == on_threads
    # Another caller's item does not exist for this one, on the loop as on a thread.
    monkeypatch.undo()
    ThreadReads(monkeypatch, refuse=True)
    _insert(client, "bob", 1)
    assert client.get("/tables/notes/bob-001", headers=headers).status_code == 404


class Relay:
    """A TCP relay to PostgreSQL that can be taken down (every connection cut) and back up."""

    def __init__(self, port: int) -> None:
        self.target = ("127.0.0.1", port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._open: list[socket.socket] = []
        self._up = True
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def down(self) -> None:
        with self._lock:
            self._up = False
            cut, self._open = self._open, []
        for sock in cut:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def up(self) -> None:
        self._up = True

    def close(self) -> None:
        self.down()
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                if not self._up:
                    client.close()  # refused, as a database that is down refuses
                    continue
                server = socket.create_connection(self.target)
                self._open += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


def test_an_unreachable_database_answers_503_at_once_and_reads_resume(
    postgres_url: str,
) -> None:
    url = sa.make_url(postgres_url)
    relay = Relay(url.port or 5432)
    relayed = url.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False)
    app = create_app(relayed, tables=[Table("notes", columns=NOTES)])
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            assert client.post("/tables/notes", json={"id": "a"}, headers=V3).status_code == 201
            for url_path in ("/tables/notes", "/tables/notes/a"):
                assert client.get(url_path, headers=V3).status_code == 200
            relay.down()
            for url_path in ("/tables/notes", "/tables/notes/a"):
                started = time.monotonic()
                response = client.get(url_path, headers=V3)
                assert response.status_code == 503, response.text
                assert time.monotonic() - started < 5
            relay.up()
            for url_path in ("/tables/notes", "/tables/notes/a"):
                response = client.get(url_path, headers=V3)
                assert response.status_code == 200, response.text
    finally:
        relay.close()


def test_statements_of_public_tables_are_kept_and_callers_views_are_not(
    started: Any,
) -> None:
    from tablesync.server import _item_reads, _querying

    notes = Table("notes", columns=NOTES, view=_owner_view)
    client = started(tables=[Table("open", columns=NOTES, page_size=2), notes])
    for n in range(4):
        body = {"id": f"o-{n}", "n": n}
        assert client.post("/tables/open", json=body, headers=V3).status_code == 201
    _querying._page_statement.cache_clear()
    _item_reads._item_statement.cache_clear()
    pages = [client.get(f"/tables/open?$skip={skip}", headers=V3).json() for skip in (0, 2)]
    assert [[item["id"] for item in page["items"]] for page in pages] == [
        ["o-0", "o-1"], ["o-2", "o-3"]
    ]  # fmt: skip
    assert _querying._page_statement.cache_info().hits == 1  # one statement, two $skip values
    for n in range(2):
        assert client.get(f"/tables/open/o-{n}", headers=V3).json()["n"] == n
    assert _item_reads._item_statement.cache_info().hits == 1
    misses = _querying._page_statement.cache_info().misses
    _insert(client, "ann", 1)
    assert client.get("/tables/notes", headers={**V3, "x-owner": "ann"}).status_code == 200
    assert _querying._page_statement.cache_info().misses == misses  # built, not kept
