"""Direction 2: the official JS client (azure-mobile-apps-client 2.0.1) against tablesync's server.

Every scenario also runs against the official Node server (``node-reference``): the assertions
are what the official pair does, so a tablesync failure is a real incompatibility and not a
wrong expectation. Where the two servers differ by design the assertion says so.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest

from tests.interop.peers import ScriptError

V2 = {"ZUMO-API-VERSION": "2.0.0"}
TODO_COLUMNS = {"text": "string", "complete": "boolean", "n": "integer"}


@dataclass
class Peer:
    """A server under test: its URL, and (tablesync only) the requests it received."""

    kind: str
    url: str
    requests: list[tuple[str, str]] | None

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=V2, timeout=10)


ServerFactory = Callable[..., Peer]


@pytest.fixture(params=["tablesync", "node-reference"])
def make_server(
    request: pytest.FixtureRequest,
    node_server_factory: Any,
    tablesync_server_factory: Any,
) -> ServerFactory:
    def make(page_size: int = 50) -> Peer:
        if request.param == "node-reference":
            node = node_server_factory(page_size=page_size)
            return Peer("node", node.url, None)
        server = tablesync_server_factory(page_size=page_size)
        return Peer("tablesync", server.url, server.requests)

    return make


@pytest.fixture
def server(make_server: ServerFactory) -> Peer:
    return make_server()


@pytest.fixture
def device(tmp_path: Path, js: Callable[..., Any]) -> Callable[..., list[Any]]:
    """Run offline steps on one JS device (one sqlite file kept across calls)."""
    db = str(tmp_path / "device.sqlite")

    def run(url: str, *steps: dict[str, Any]) -> list[Any]:
        params = {"db": db, "columns": TODO_COLUMNS, "steps": list(steps)}
        result: list[Any] = js("offline.js", url, params)
        return result

    return run


@pytest.fixture
def server_http(server: Peer) -> Iterator[httpx.Client]:
    with server.http() as client:
        yield client


# ---------------------------------------------------------------- online (MobileServiceTable)


def test_online_crud_and_queries(server: Peer, js: Callable[..., Any]) -> None:
    out = js("online.js", server.url)
    inserted = out["inserted"]
    assert inserted["id"] == "js-1"
    assert inserted["text"] == "milk"
    assert inserted["deleted"] is False
    assert isinstance(inserted["version"], str) and inserted["version"]
    assert out["lookedUp"] == inserted
    assert out["query"] == {"ids": ["js-3", "js-1"], "totalCount": 2}

    updated = out["updated"]
    assert updated["text"] == "milk 2L"
    assert updated["version"] != inserted["version"]
    assert updated["updatedAt"] > inserted["updatedAt"]

    # The stale update is a 412, and the SDK hands the server's current row to the app.
    assert out["stale"]["status"] == 412
    assert out["stale"]["serverInstance"]["text"] == "milk 2L"
    assert out["stale"]["serverInstance"]["version"] == updated["version"]

    assert out["deleted"]["ok"] is True
    assert out["lookupDeleted"] == 404
    assert out["visible"] == ["js-1", "js-3"]
    assert out["withDeleted"] == [["js-1", False], ["js-2", True], ["js-3", False]]


# ---------------------------------------------------------------- offline (sync context)


def test_offline_condensed_operations_are_pushed(
    server: Peer, server_http: httpx.Client, device: Callable[..., list[Any]]
) -> None:
    out = device(
        server.url,
        {"op": "insert", "item": {"id": "a", "text": "A", "complete": False, "n": 1}},
        {"op": "update", "id": "a", "changes": {"text": "A2"}},
        {"op": "insert", "item": {"id": "b", "text": "B", "complete": False, "n": 2}},
        {"op": "delete", "id": "b"},
        {"op": "insert", "item": {"id": "c", "text": "C", "complete": True, "n": 3}},
        {"op": "pending"},
        {"op": "push"},
        {"op": "pending"},
        {"op": "read"},
    )
    pending_before, pushed, pending_after, local = out[5:]
    # insert+update collapse into one insert; insert+delete cancel out.
    assert pending_before == [
        {"action": "insert", "itemId": "a", "tableName": "todoitem"},
        {"action": "insert", "itemId": "c", "tableName": "todoitem"},
    ]
    assert pushed == {"conflicts": [], "unhandled": 0}
    assert pending_after == []
    remote = {row["id"]: row for row in server_http.get("/tables/todoitem").json()}
    assert {i: r["text"] for i, r in remote.items()} == {"a": "A2", "c": "C"}
    # The push wrote the server's system properties back into the local rows.
    assert [(row["id"], row["version"]) for row in local] == [
        (i, remote[i]["version"]) for i in ("a", "c")
    ]
    assert all(row["updatedAt"] == remote[row["id"]]["updatedAt"] for row in local)


def test_offline_update_and_delete_are_pushed(
    server: Peer, server_http: httpx.Client, device: Callable[..., list[Any]]
) -> None:
    for n in range(3):
        server_http.post(
            "/tables/todoitem",
            json={"id": f"r{n}", "text": f"t{n}", "complete": False, "n": n},
        )
    device(server.url, {"op": "pull", "queryId": "all"})
    out = device(
        server.url,
        {"op": "update", "id": "r0", "changes": {"text": "changed offline"}},
        {"op": "delete", "id": "r1"},
        {"op": "push"},
        {"op": "pending"},
    )
    assert out[2] == {"conflicts": [], "unhandled": 0}
    assert out[3] == []
    assert server_http.get("/tables/todoitem/r0").json()["text"] == "changed offline"
    assert server_http.get("/tables/todoitem/r1").status_code == 404
    deleted = server_http.get("/tables/todoitem", params={"__includeDeleted": "true"}).json()
    assert {row["id"]: row["deleted"] for row in deleted} == {"r0": False, "r1": True, "r2": False}


def test_conflict_goes_to_on_conflict_and_cancel_and_update_takes_the_server_row(
    server: Peer, server_http: httpx.Client, device: Callable[..., list[Any]]
) -> None:
    device(
        server.url,
        {"op": "insert", "item": {"id": "a", "text": "A", "complete": False, "n": 1}},
        {"op": "push"},
    )
    server_row = server_http.patch("/tables/todoitem/a", json={"text": "server A"}).json()
    out = device(
        server.url,
        {"op": "update", "id": "a", "changes": {"text": "client A"}},
        {"op": "push", "onConflict": "cancelAndUpdate"},
        {"op": "lookup", "id": "a"},
        {"op": "pending"},
    )
    push, local, pending = out[1:]
    assert push["unhandled"] == 0
    [conflict] = push["conflicts"]
    assert "handlerError" not in conflict
    assert conflict["status"] == 412
    assert conflict["action"] == "update"
    assert conflict["serverRecord"]["text"] == "server A"
    assert conflict["serverRecord"]["version"] == server_row["version"]
    assert conflict["clientRecord"]["text"] == "client A"
    assert local["text"] == "server A"
    assert local["version"] == server_row["version"]
    assert pending == []
    assert server_http.get("/tables/todoitem/a").json()["text"] == "server A"


def test_unhandled_conflict_is_returned_by_push_and_stays_queued(
    server: Peer, server_http: httpx.Client, device: Callable[..., list[Any]]
) -> None:
    device(
        server.url,
        {"op": "insert", "item": {"id": "a", "text": "A", "complete": False, "n": 1}},
        {"op": "push"},
    )
    server_http.patch("/tables/todoitem/a", json={"text": "server A"})
    out = device(
        server.url,
        {"op": "update", "id": "a", "changes": {"text": "client A"}},
        {"op": "push", "onConflict": "none"},
        {"op": "pending"},
    )
    assert out[1]["unhandled"] == 1
    assert out[1]["conflicts"][0]["status"] == 412
    assert out[2] == [{"action": "update", "itemId": "a", "tableName": "todoitem"}]


def _seed(http: httpx.Client, count: int) -> None:
    for n in range(count):
        item = {"id": f"m{n:03d}", "text": "seed", "complete": False, "n": n}
        response = http.post("/tables/todoitem", json=item)
        assert response.status_code == 201, response.text


def test_vanilla_pull_gets_more_rows_than_one_page(
    make_server: ServerFactory, device: Callable[..., list[Any]]
) -> None:
    server = make_server(page_size=20)
    with server.http() as http:
        _seed(http, 55)
    # JS asks for $top=50; the server answers at most its page size (tablesync) or honours
    # $top (Node). Either way the client pages on until an empty page.
    assert device(server.url, {"op": "pull", "queryId": None}) == [55]
    if server.requests is not None:
        pulls = [t for m, t in server.requests if m == "GET" and "updatedAt" in unquote(t)]
        assert len(pulls) >= 4, "55 rows in pages of 20 need 3 pages and an empty one"


def test_incremental_pull_brings_updates_and_server_deletes(
    make_server: ServerFactory, device: Callable[..., list[Any]]
) -> None:
    server = make_server(page_size=20)
    with server.http() as http:
        _seed(http, 45)
        assert device(server.url, {"op": "pull", "queryId": "all"}) == [45]
        first_pull_requests = len(server.requests or [])
        http.patch("/tables/todoitem/m003", json={"text": "changed"})
        assert http.delete("/tables/todoitem/m004").status_code in (200, 204)
        http.post("/tables/todoitem", json={"id": "m999", "text": "new", "complete": True, "n": 9})
    out = device(
        server.url,
        {"op": "pull", "queryId": "all"},
        {"op": "lookup", "id": "m003"},
        {"op": "lookup", "id": "m004"},
        {"op": "lookup", "id": "m999"},
    )
    assert out[0] == 45  # 45 - m004 + m999
    assert out[1]["text"] == "changed"
    assert out[2] is None, "the server-side delete reached the device"
    assert out[3]["text"] == "new"
    if server.requests is not None:
        # The second pull started from the saved token, not from 1970 again.
        second = [unquote(t) for m, t in server.requests[first_pull_requests:] if m == "GET"]
        assert second and "1969-" not in second[0] and "1970-" not in second[0]


def test_rows_never_share_updated_at_on_tablesync(tablesync_server_factory: Any) -> None:
    """The JS client's skip-on-equal paging is never exercised against tablesync: by design
    (architecture.md, one clock per table) no two rows of a table share an updatedAt, even
    when written as fast as possible. On the Node server they can (see test_tablesync_client).
    """
    server = tablesync_server_factory()
    with httpx.Client(base_url=server.url, headers=V2, timeout=10) as http:
        _seed(http, 40)
        stamps = [row["updatedAt"] for row in http.get("/tables/todoitem").json()]
    assert len(stamps) == 40
    assert len(set(stamps)) == 40


def test_purge_refuses_pending_then_forced_purge_resets_the_pull(
    server: Peer, server_http: httpx.Client, device: Callable[..., list[Any]]
) -> None:
    _seed(server_http, 5)
    device(server.url, {"op": "pull", "queryId": "all"})
    with pytest.raises(ScriptError, match=r"pending operations|purge"):
        device(
            server.url,
            {"op": "insert", "item": {"id": "local", "text": "L", "complete": False, "n": 0}},
            {"op": "purge", "force": False},
        )
    out = device(
        server.url,
        {"op": "purge", "force": True},
        {"op": "pending"},
        {"op": "pull", "queryId": "all"},
    )
    assert out[0] == 0
    assert out[1] == []
    # The purge dropped the incremental token, so the pull brought every row back.
    assert out[2] == 5


def test_duplicate_insert_conflict_body_is_the_server_row_on_tablesync(
    server: Peer, server_http: httpx.Client, device: Callable[..., list[Any]]
) -> None:
    """The JS client gives ``onConflict`` no server record for a 409 (only for 412), so an app
    resolving a duplicate insert reads the response body. tablesync sends the stored row there;
    Node echoes the request (known difference)."""
    stored = server_http.post(
        "/tables/todoitem", json={"id": "dup", "text": "server", "complete": False, "n": 1}
    ).json()
    out = device(
        server.url,
        {"op": "insert", "item": {"id": "dup", "text": "client", "complete": True, "n": 2}},
        {"op": "push", "onConflict": "cancelAndUpdateFromBody"},
        {"op": "lookup", "id": "dup"},
        {"op": "pending"},
    )
    [conflict] = out[1]["conflicts"]
    assert "handlerError" not in conflict
    assert (conflict["status"], conflict["action"]) == (409, "insert")
    assert conflict["serverRecord"] is None
    if server.kind == "node":
        # "Server wins" then keeps the client's own item, without a version: the device
        # silently diverges from the server.
        assert conflict["responseBody"]["text"] == "client"
        assert out[2]["text"] == "client"
        assert out[2]["version"] is None
    else:
        assert conflict["responseBody"]["text"] == "server"
        assert conflict["responseBody"]["version"] == stored["version"]
        assert out[2]["text"] == "server"
        assert out[2]["version"] == stored["version"]
    assert out[3] == []
    assert server_http.get("/tables/todoitem/dup").json()["text"] == "server"


def test_filtered_incremental_pull(
    server: Peer, server_http: httpx.Client, device: Callable[..., list[Any]]
) -> None:
    """The JS client ANDs its own filter with the updatedAt bound:
    ``((complete eq false) and (updatedAt ge datetimeoffset'…'))``."""
    for n in range(6):
        item = {"id": f"f{n}", "text": "t", "complete": n % 3 == 0, "n": n}
        assert server_http.post("/tables/todoitem", json=item).status_code == 201
    out = device(
        server.url,
        {"op": "pull", "queryId": "open", "filter": {"complete": False}},
        {"op": "read"},
    )
    assert out[0] == 4
    assert [row["id"] for row in out[1]] == ["f1", "f2", "f4", "f5"]
    if server.requests is not None:
        pulls = [unquote(t) for m, t in server.requests if m == "GET"]
        assert "complete eq false" in pulls[0]
        assert "datetimeoffset'" in pulls[0]


def test_offline_insert_without_id_gets_a_client_uuid_the_server_keeps(
    server: Peer, server_http: httpx.Client, device: Callable[..., list[Any]]
) -> None:
    out = device(
        server.url,
        {"op": "insert", "item": {"text": "no id", "complete": False, "n": 1}},
        {"op": "push"},
        {"op": "read"},
    )
    generated = out[0]["id"]
    assert uuid.UUID(generated).version == 4
    assert out[1] == {"conflicts": [], "unhandled": 0}
    assert [row["id"] for row in out[2]] == [generated]
    assert server_http.get(f"/tables/todoitem/{generated}").json()["text"] == "no id"
