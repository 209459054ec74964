"""Direction 1: tablesync's client (v2) against the official Node server (soft delete on).

The Node server's quirks the client meets here (peers.md): a ``Link`` header without the port
or the ``/tables/<name>`` path, a ``Link`` even when ``$top`` is satisfied, 409 bodies that echo
the request, ``__includeDeleted`` tested for presence, 404 for a deleted row even with
``__includeDeleted``, version counters as base64 integers, and rows that share an ``updatedAt``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tablesync import (
    AsyncClient,
    Client,
    ClientWins,
    ConflictError,
    NotFoundError,
    PushFailedError,
    Query,
    QueueError,
    ServerWins,
    SQLiteStore,
)
from tests.interop.peers import NodeServer

V2 = {"ZUMO-API-VERSION": "2.0.0"}


class Recorder:
    """Counts and keeps the requests a tablesync client sends (an httpx event hook)."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> None:
        self.requests.append(request)

    def targets(self, method: str = "GET") -> list[str]:
        return [str(r.url) for r in self.requests if r.method == method]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


ClientFactory = Callable[..., Client]


@pytest.fixture
def make_client(tmp_path: Path, recorder: Recorder) -> Iterator[ClientFactory]:
    """tablesync clients speaking v2, each with its own local SQLite store file."""
    made: list[tuple[Client, httpx.Client, SQLiteStore]] = []

    def make(url: str, **kwargs: Any) -> Client:
        store = SQLiteStore(str(tmp_path / f"device-{len(made)}.db"))
        http = httpx.Client(timeout=10, event_hooks={"request": [recorder]})
        client = Client(url, store=store, api_version="2.0.0", http=http, **kwargs)
        made.append((client, http, store))
        return client

    yield make
    for client, http, store in made:
        client.close()
        http.close()
        store.close()


@pytest.fixture
def server_http(node_server: NodeServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=node_server.url, headers=V2, timeout=10) as http:
        yield http


def seed(http: httpx.Client, count: int, prefix: str = "s") -> None:
    for n in range(count):
        item = {"id": f"{prefix}{n:03d}", "text": f"t{n}", "complete": n % 2 == 0, "n": n}
        assert http.post("/tables/todoitem", json=item).status_code == 201


# ---------------------------------------------------------------- online


def test_online_crud(node_server: NodeServer, make_client: ClientFactory) -> None:
    table = make_client(node_server.url).table("todoitem")
    inserted = table.insert({"id": "o1", "text": "milk", "complete": False, "n": 1})
    assert inserted["version"] == "MQ=="
    assert table.get("o1") == inserted
    updated = table.update({**inserted, "text": "milk 2L"})
    assert updated["text"] == "milk 2L"
    assert updated["version"] != inserted["version"]
    table.delete(updated)
    with pytest.raises(NotFoundError):
        table.get("o1")
    restored = table.undelete("o1")
    assert restored["deleted"] is False
    assert table.get("o1")["text"] == "milk 2L"


def test_online_query_filter_order_and_count(
    node_server: NodeServer, server_http: httpx.Client, make_client: ClientFactory
) -> None:
    seed(server_http, 12)
    table = make_client(node_server.url).table("todoitem")
    rows = list(table.query(Query(filter="complete eq true and n gt 3", order_by="n desc")))
    assert [row["n"] for row in rows] == [10, 8, 6, 4]
    assert table.count(Query(filter="complete eq true")) == 6


def test_online_include_deleted_against_presence_semantics(
    node_server: NodeServer, server_http: httpx.Client, make_client: ClientFactory
) -> None:
    """Node includes deleted rows whenever ``__includeDeleted`` is present, whatever its value,
    and ignores the lower-case spelling: the client must send the flag only when it wants
    deleted rows, in the v2 casing."""
    seed(server_http, 3)
    assert server_http.delete("/tables/todoitem/s001").status_code == 200
    table = make_client(node_server.url).table("todoitem")
    assert [row["id"] for row in table.query()] == ["s000", "s002"]
    with_deleted = list(table.query(Query(include_deleted=True)))
    assert [(row["id"], row["deleted"]) for row in with_deleted] == [
        ("s000", False),
        ("s001", True),
        ("s002", False),
    ]
    assert table.count() == 2
    # Known difference: Node answers 404 for a deleted row even when asked to include it.
    with pytest.raises(NotFoundError):
        table.get("s001", include_deleted=True)


def test_online_query_pages_through_a_link_without_port_or_path(
    node_server_factory: Any, make_client: ClientFactory, recorder: Recorder
) -> None:
    """Node's Link is ``http://127.0.0.1/?$top=..&$skip=..``: following it literally would
    leave the server. The client must page on its own table URL (protocol.md §4.3)."""
    server = node_server_factory(page_size=7)
    with httpx.Client(base_url=server.url, headers=V2, timeout=10) as http:
        seed(http, 25)
    table = make_client(server.url).table("todoitem")
    ids = [row["id"] for row in table.query()]
    assert ids == [f"s{n:03d}" for n in range(25)]
    assert all(url.startswith(f"{server.url}/tables/todoitem") for url in recorder.targets())


def test_online_query_top_is_not_overshot_by_the_link(
    node_server_factory: Any, make_client: ClientFactory
) -> None:
    """Node answers a satisfied ``$top`` with a Link to the next ``$top`` rows."""
    server = node_server_factory(page_size=5)
    with httpx.Client(base_url=server.url, headers=V2, timeout=10) as http:
        seed(http, 20)
    table = make_client(server.url).table("todoitem")
    rows = list(table.query(Query(top=8)))
    assert [row["id"] for row in rows] == [f"s{n:03d}" for n in range(8)]


def test_online_stale_update_raises_412_with_the_server_item(
    node_server: NodeServer, server_http: httpx.Client, make_client: ClientFactory
) -> None:
    table = make_client(node_server.url).table("todoitem")
    mine = table.insert({"id": "c1", "text": "mine", "complete": False, "n": 1})
    theirs = server_http.patch("/tables/todoitem/c1", json={"text": "theirs"}).json()
    with pytest.raises(ConflictError) as caught:
        table.update({**mine, "text": "stale"})
    assert caught.value.status_code == 412
    assert caught.value.server_item is not None
    assert caught.value.server_item["text"] == "theirs"
    assert caught.value.server_item["version"] == theirs["version"]


def test_online_duplicate_insert_is_a_409_whose_body_is_not_the_server_row(
    node_server: NodeServer, make_client: ClientFactory
) -> None:
    table = make_client(node_server.url).table("todoitem")
    table.insert({"id": "d1", "text": "first", "complete": False, "n": 1})
    with pytest.raises(ConflictError) as caught:
        table.insert({"id": "d1", "text": "second", "complete": False, "n": 1})
    assert caught.value.status_code == 409
    # Node echoes the request: the "server item" has no version, so it cannot be mistaken
    # for the stored row (the client must not use it as one).
    server_item = caught.value.server_item
    assert server_item is None or "version" not in server_item


# ---------------------------------------------------------------- offline


def test_offline_writes_are_pushed(
    node_server: NodeServer, server_http: httpx.Client, make_client: ClientFactory
) -> None:
    seed(server_http, 3)
    client = make_client(node_server.url)
    todo = client.sync_table("todoitem")
    todo.pull(query_id="all")
    todo.insert({"id": "new", "text": "local", "complete": False, "n": 9})
    todo.update({**todo.get("s000"), "text": "edited"})
    todo.delete("s001")
    assert len(client.pending_operations) == 3
    result = client.push()
    assert result.completed == 3
    assert client.pending_operations == []
    assert server_http.get("/tables/todoitem/new").json()["text"] == "local"
    assert server_http.get("/tables/todoitem/s000").json()["text"] == "edited"
    assert server_http.get("/tables/todoitem/s001").status_code == 404
    # The push wrote the server's versions back into the store.
    server_new = server_http.get("/tables/todoitem/new").json()
    assert todo.get("new")["version"] == server_new["version"]


def test_full_and_incremental_pull_over_several_pages(
    node_server_factory: Any, make_client: ClientFactory, recorder: Recorder
) -> None:
    server = node_server_factory(page_size=10)
    with httpx.Client(base_url=server.url, headers=V2, timeout=10) as http:
        seed(http, 35)
        client = make_client(server.url, page_size=10)
        todo = client.sync_table("todoitem")
        first = todo.pull(query_id="all")
        assert todo.count() == 35
        # Keyset paging reads every row once: 4 pages and the empty one that ends the pull.
        assert (first.upserted, first.pages) == (35, 5)
        http.patch("/tables/todoitem/s005", json={"text": "changed"})
        assert http.delete("/tables/todoitem/s006").status_code == 200
        seed(http, 2, prefix="late")
        before = len(recorder.requests)
        second = todo.pull(query_id="all")
    assert todo.count() == 36
    assert todo.get("s005")["text"] == "changed"
    assert todo.get("s006") is None, "the server-side delete reached the device"
    assert todo.get("late001") is not None
    assert second.deleted == 1
    # Incremental: the second pull asked only for what changed (not 35 rows again).
    assert second.received < 10
    assert len(recorder.requests) - before <= 4


def test_vanilla_pull_without_query_id(
    node_server: NodeServer, server_http: httpx.Client, make_client: ClientFactory
) -> None:
    seed(server_http, 12)
    todo = make_client(node_server.url).sync_table("todoitem")
    todo.pull(Query(filter="complete eq true"))
    assert sorted(row["n"] for row in todo.query()) == [0, 2, 4, 6, 8, 10]


@pytest.mark.parametrize(
    "shared,page_size",
    [
        pytest.param(25, 10, id="tie-spans-three-pages"),
        pytest.param(120, 50, id="tie-larger-than-default-page"),
    ],
)
def test_pull_with_rows_sharing_one_updated_at_neither_loses_nor_loops(
    node_server_factory: Any,
    make_client: ClientFactory,
    recorder: Recorder,
    shared: int,
    page_size: int,
) -> None:
    server = node_server_factory(page_size=page_size)
    with httpx.Client(base_url=server.url, headers=V2, timeout=10) as http:
        seed(http, 3, prefix="before")
        rows = [
            {"id": f"tie{n:03d}", "text": "t", "complete": False, "n": n} for n in range(shared)
        ]
        assert http.post("/_interop/bulk/todoitem", json=rows).status_code == 201
        seed(http, 3, prefix="after")
        stamps = {r["updatedAt"] for r in http.get("/tables/todoitem?$top=1000").json()}
        assert len(stamps) <= 8, "the bulk rows share one updatedAt"
        todo = make_client(server.url, page_size=page_size).sync_table("todoitem")
        todo.pull(query_id="all")
    assert todo.count() == shared + 6
    # Keyset paging: one request per page, plus the empty page that ends the pull.
    pages = -(-(shared + 6) // page_size)
    assert len(recorder.targets()) == pages + 1
    assert all("$skip" not in url for url in recorder.targets())


def test_more_than_a_page_of_tied_rows_updated_between_two_pages_is_all_pulled(
    node_server_factory: Any, tmp_path: Path
) -> None:
    """Between the second and third page, 60 rows sharing one updatedAt (more than a page,
    some already read) are updated and 55 more are inserted in one millisecond: one pull
    still ends with exactly the server's rows and versions."""
    server = node_server_factory(page_size=50)
    with httpx.Client(base_url=server.url, headers=V2, timeout=10) as http:
        seed(http, 1)  # dynamic schema: the columns exist before the bulk insert
        tied = [{"id": f"tie{n:03d}", "text": "t", "complete": False, "n": n} for n in range(120)]
        assert http.post("/_interop/bulk/todoitem", json=tied).status_code == 201
        late = [{"id": f"late{n:03d}", "text": "l", "complete": False, "n": n} for n in range(55)]
        seen: list[str] = []
        fired: list[str] = []

        def interleave(response: httpx.Response) -> None:
            # After the second page: the pull has read ties past the first page boundary.
            seen.append(response.request.method)
            if fired or seen.count("GET") != 2:
                return
            fired.append(str(response.request.url))
            for n in range(20, 80):
                assert http.patch(f"/tables/todoitem/tie{n:03d}", json={"n": -n}).is_success
            assert http.post("/_interop/bulk/todoitem", json=late).status_code == 201

        hooked = httpx.Client(timeout=10, event_hooks={"response": [interleave]})
        store = SQLiteStore(str(tmp_path / "device.db"))
        client = Client(server.url, store=store, api_version="2.0.0", http=hooked, page_size=50)
        try:
            todo = client.sync_table("todoitem")
            todo.pull(query_id="all")
            local = {row["id"]: (row["version"], row["n"]) for row in todo.query()}
        finally:
            client.close()
            store.close()
            hooked.close()
        rows = http.get("/tables/todoitem", params={"$top": 1000}).json()
    assert fired, "the writes were never interleaved with the pull"
    assert len(rows) == 176 and local == {r["id"]: (r["version"], r["n"]) for r in rows}


def _conflicting_update(node: NodeServer, http: httpx.Client, make_client: ClientFactory) -> Any:
    http.post("/tables/todoitem", json={"id": "k", "text": "base", "complete": False, "n": 0})
    client = make_client(node.url)
    todo = client.sync_table("todoitem")
    todo.pull(query_id="all")
    http.patch("/tables/todoitem/k", json={"text": "server"})
    todo.update({**todo.get("k"), "text": "client"})
    return client, todo


def test_conflict_resolved_server_wins(
    node_server: NodeServer, server_http: httpx.Client, make_client: ClientFactory
) -> None:
    client, todo = _conflicting_update(node_server, server_http, make_client)
    with pytest.raises(PushFailedError) as caught:
        client.push()
    [error] = caught.value.result.errors
    assert error.status == 412
    assert error.server_item is not None and error.server_item["text"] == "server"
    error.cancel_and_update(error.server_item)
    assert client.pending_operations == []
    assert todo.get("k")["text"] == "server"
    assert server_http.get("/tables/todoitem/k").json()["text"] == "server"


def test_conflict_resolved_client_wins(
    node_server: NodeServer, server_http: httpx.Client, make_client: ClientFactory
) -> None:
    client, todo = _conflicting_update(node_server, server_http, make_client)
    with pytest.raises(PushFailedError) as caught:
        client.push()
    [error] = caught.value.result.errors
    assert error.server_item is not None
    error.update_operation({**todo.get("k"), "version": error.server_item["version"]})
    client.push()
    assert server_http.get("/tables/todoitem/k").json()["text"] == "client"
    assert client.pending_operations == []


@pytest.mark.parametrize(
    "handler,expected",
    [
        pytest.param(ServerWins(), "server", id="ServerWins"),
        pytest.param(ClientWins(), "client", id="ClientWins"),
    ],
)
def test_conflict_handlers(
    node_server: NodeServer,
    server_http: httpx.Client,
    make_client: ClientFactory,
    handler: Any,
    expected: str,
) -> None:
    server_http.post(
        "/tables/todoitem", json={"id": "k", "text": "base", "complete": False, "n": 0}
    )
    client = make_client(node_server.url, conflict_handler=handler)
    todo = client.sync_table("todoitem")
    todo.pull(query_id="all")
    server_http.patch("/tables/todoitem/k", json={"text": "server"})
    todo.update({**todo.get("k"), "text": "client"})
    client.push()
    assert client.pending_operations == []
    assert server_http.get("/tables/todoitem/k").json()["text"] == expected
    assert todo.get("k")["text"] == expected


def test_purge(
    node_server: NodeServer, server_http: httpx.Client, make_client: ClientFactory
) -> None:
    seed(server_http, 4)
    client = make_client(node_server.url)
    todo = client.sync_table("todoitem")
    todo.pull(query_id="all")
    todo.insert({"id": "pending", "text": "p", "complete": False, "n": 0})
    with pytest.raises(QueueError):
        todo.purge(query_id="all")
    todo.purge(query_id="all", force=True)
    assert todo.count() == 0
    assert client.pending_operations == []
    # The token was reset: the next pull brings everything back, not just later changes.
    todo.pull(query_id="all")
    assert todo.count() == 4


def test_server_wins_on_a_409_that_echoes_the_request_does_not_diverge(
    node_server: NodeServer, server_http: httpx.Client, make_client: ClientFactory
) -> None:
    server_http.post("/tables/todoitem", json={"id": "dup", "text": "server", "n": 1})
    client = make_client(node_server.url, conflict_handler=ServerWins())
    todo = client.sync_table("todoitem")
    todo.insert({"id": "dup", "text": "client", "n": 2})
    try:
        client.push()
    except PushFailedError:
        # Leaving the conflict to the app is acceptable: nothing was silently lost.
        assert len(client.pending_operations) == 1
        return
    assert todo.get("dup")["text"] == server_http.get("/tables/todoitem/dup").json()["text"]


def test_duplicate_insert_push_is_reported_not_completed(
    node_server: NodeServer, server_http: httpx.Client, make_client: ClientFactory
) -> None:
    """Node's 409 echoes the request; the client must not read that as its own earlier write
    (the retry-safety rule of architecture.md) when the stored row differs."""
    server_http.post("/tables/todoitem", json={"id": "dup", "text": "server", "n": 1})
    client = make_client(node_server.url)
    todo = client.sync_table("todoitem")
    todo.insert({"id": "dup", "text": "client", "n": 2})
    with pytest.raises(PushFailedError) as caught:
        client.push()
    [error] = caught.value.result.errors
    assert error.status == 409
    # The client read the stored row after the echo: the error carries it, not the echo.
    assert error.server_item is not None and error.server_item["text"] == "server"
    assert len(client.pending_operations) == 1
    assert server_http.get("/tables/todoitem/dup").json()["text"] == "server"


def test_async_client_round_trip(
    node_server: NodeServer, server_http: httpx.Client, tmp_path: Path
) -> None:
    """AsyncClient runs the same flows: offline writes, push, and a multi-page pull."""
    node = node_server
    seed(server_http, 12)

    async def scenario() -> tuple[int, str, int]:
        store = SQLiteStore(str(tmp_path / "async.db"))
        try:
            async with AsyncClient(node.url, store=store, api_version="2.0.0") as client:
                todo = client.sync_table("todoitem")
                await todo.pull(query_id="all", page_size=5)
                await todo.update({**(await todo.get("s003") or {}), "text": "async"})
                await todo.delete("s004")
                await client.push()
                return (
                    await todo.count(),
                    (await todo.get("s003") or {})["text"],
                    len(client.pending_operations),
                )
        finally:
            store.close()

    count, text, pending = asyncio.run(scenario())
    assert (count, text, pending) == (11, "async", 0)
    assert server_http.get("/tables/todoitem/s003").json()["text"] == "async"
    assert server_http.get("/tables/todoitem/s004").status_code == 404


def test_update_of_a_row_deleted_on_the_server_is_reported_and_discardable(
    node_server: NodeServer, server_http: httpx.Client, make_client: ClientFactory
) -> None:
    """Node 4.0.2 answers 404 to a PATCH of a soft-deleted row: not a conflict, an error the
    app resolves (here by discarding the local change), after which a pull drops the row."""
    seed(server_http, 2)
    client = make_client(node_server.url)
    todo = client.sync_table("todoitem")
    todo.pull(query_id="all")
    assert server_http.delete("/tables/todoitem/s000").status_code == 200
    todo.update({**todo.get("s000"), "text": "edited offline"})
    with pytest.raises(PushFailedError) as caught:
        client.push()
    [error] = caught.value.result.errors
    assert error.status == 404
    assert not error.is_conflict
    assert len(client.pending_operations) == 1
    error.cancel_and_discard()
    assert client.pending_operations == []
    todo.pull(query_id="all")
    assert todo.get("s000") is None
    assert todo.get("s001") is not None
