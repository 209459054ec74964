"""The push with the ``$batch`` extension: against tablesync's server in-process, and scripted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tablesync import AsyncClient, Client, PushFailedError, SQLiteStore, StoreError
from tablesync.client import ClientWins, PushStatus, ServerWins, SyncHandler
from tablesync.client._context import SyncContext
from tablesync.client._flows import push_flow
from tablesync.protocol import ApiVersion
from tests._testclient import TestClient

from .conftest import builder, drive, reply

COLUMNS = {"text": "string", "n": "integer"}
VERSIONS = [pytest.param("2.0.0", id="v2"), pytest.param("3.0.0", id="v3")]


class Recorder(httpx.BaseTransport):
    """Forwards to the app; records requests; can lose the response of the next batch.

    ``down`` makes every request fail before it reaches the app (the network is down).
    """

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.requests: list[httpx.Request] = []
        self.lose_batches = 0
        self.down = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.down:
            raise httpx.ConnectError("network down", request=request)
        response = self.inner.handle_request(request)
        if is_batch(request) and self.lose_batches:
            self.lose_batches -= 1
            response.read()  # the server did the work; the answer never arrives
            raise httpx.ReadError("connection reset", request=request)
        return response

    def batches(self) -> list[int]:
        return [len(json.loads(r.content)["operations"]) for r in self.requests if is_batch(r)]

    def writes(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.method != "GET" and not is_batch(r)]


def is_batch(request: httpx.Request) -> bool:
    return request.url.path.endswith("/tables/$batch")


class Server:
    """One app in-process, and clients (each with its own store) talking to it."""

    def __init__(self, tmp_path: Path, version: str, **app_kwargs: Any) -> None:
        from tablesync.server import Table, create_app

        self.tmp_path, self.version = tmp_path, version
        self.app = create_app(
            f"sqlite:///{tmp_path / 'server.db'}", [Table("todo", columns=COLUMNS)], **app_kwargs
        )
        self.test_client = TestClient(self.app)
        self.test_client.__enter__()
        self.recorder = Recorder(self.test_client._transport)
        self.http = httpx.Client(transport=self.recorder)
        self.opened: list[Any] = []

    def client(self, name: str = "device", **kwargs: Any) -> Client:
        store = SQLiteStore(self.tmp_path / f"{name}.db")
        client = Client(
            "http://testserver", store=store, http=self.http, api_version=self.version, **kwargs
        )
        self.opened += [client, store]
        return client

    def rows(self) -> dict[str, dict[str, Any]]:
        engine = self.app.state.tablesync.schema.engine
        with engine.connect() as conn:
            result = conn.execute(sa.text("SELECT id, text, version, deleted FROM todo"))
            return {row.id: dict(row._mapping) for row in result}

    def close(self) -> None:
        for thing in reversed(self.opened):
            thing.close()
        self.http.close()
        self.test_client.__exit__(None, None, None)


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Any]:
    made: list[Server] = []

    def make(version: str = "3.0.0", **app_kwargs: Any) -> Server:
        server = Server(tmp_path / f"s{len(made)}", version, **app_kwargs)
        made.append(server)
        return server

    for sub in range(3):
        (tmp_path / f"s{sub}").mkdir()
    yield make
    for server in made:
        server.close()


@pytest.mark.parametrize("version", VERSIONS)
def test_consecutive_operations_travel_in_batches(make_server: Any, version: str) -> None:
    server = make_server(version, max_batch_operations=10)
    client = server.client()
    todo = client.sync_table("todo")
    items = [todo.insert({"id": f"i{n:02}", "text": f"t{n}", "n": n}) for n in range(24)]
    client.push()
    todo.update({**items[3], "text": "changed"})
    todo.delete(items[4])
    todo.insert({"id": "late", "text": "late"})

    result = client.push()

    assert result.ok and result.completed == 3 and client.pending_operations == []
    # The first answer carries the advertisement; then batches of at most 10.
    assert server.recorder.batches() == [10, 10, 3, 3]
    assert len(server.recorder.writes()) == 1
    rows = server.rows()
    assert len(rows) == 25 and rows["i03"]["text"] == "changed" and rows["i04"]["deleted"]
    for item_id, row in rows.items():  # every success was written back: same versions
        if not row["deleted"]:
            assert todo.get(item_id)["version"] == row["version"]


def test_without_the_extension_each_operation_is_one_request(make_server: Any) -> None:
    server = make_server(max_batch_operations=0)
    client = server.client()
    todo = client.sync_table("todo")
    for n in range(6):
        todo.insert({"id": f"s{n}", "text": "x"})

    assert client.push().completed == 6
    assert server.recorder.batches() == [] and len(server.recorder.writes()) == 6
    assert len(server.rows()) == 6


@pytest.mark.parametrize("version", VERSIONS)
def test_a_conflict_in_the_middle_is_recorded_and_the_rest_is_pushed(
    make_server: Any, version: str
) -> None:
    server = make_server(version)
    mine, other = server.client("mine"), server.client("other")
    todo = mine.sync_table("todo")
    for n in range(5):
        todo.insert({"id": f"c{n}", "text": "v1"})
    mine.push()
    theirs = other.sync_table("todo")
    other.sync_table("todo").pull()
    theirs.update({**theirs.get("c2"), "text": "theirs"})
    other.push()
    for n in range(5):
        todo.update({**todo.get(f"c{n}"), "text": "mine"})

    with pytest.raises(PushFailedError) as failed:
        mine.push()

    result = failed.value.result
    assert result.status is PushStatus.COMPLETE and result.completed == 4
    assert [(e.item_id, e.status) for e in result.errors] == [("c2", 412)]
    assert result.errors[0].server_item is not None
    assert result.errors[0].server_item["text"] == "theirs"
    texts = {item_id: row["text"] for item_id, row in server.rows().items()}
    assert texts == {"c0": "mine", "c1": "mine", "c2": "theirs", "c3": "mine", "c4": "mine"}
    assert [op.item_id for op in mine.pending_operations] == ["c2"]


@pytest.mark.parametrize(
    ("handler", "winner"),
    [
        pytest.param(ServerWins, "theirs", id="server-wins"),
        pytest.param(ClientWins, "mine", id="client-wins"),
    ],
)
def test_a_policy_settles_a_batched_conflict(make_server: Any, handler: Any, winner: str) -> None:
    server = make_server()
    mine = server.client("mine", conflict_handler=handler())
    other = server.client("other")
    todo = mine.sync_table("todo")
    for n in range(3):
        todo.insert({"id": f"w{n}", "text": "v1"})
    mine.push()
    other.sync_table("todo").pull()
    theirs = other.sync_table("todo")
    theirs.update({**theirs.get("w1"), "text": "theirs"})
    other.push()
    for n in range(3):
        todo.update({**todo.get(f"w{n}"), "text": "mine"})
    batches_before = len(server.recorder.batches())

    writes_before = len(server.recorder.writes())

    assert mine.push().ok
    assert len(server.recorder.batches()) == batches_before + 1
    # ClientWins resends the conflicting operation alone, after the batch.
    assert len(server.recorder.writes()) == writes_before + (winner == "mine")
    assert todo.get("w1")["text"] == winner and mine.pending_operations == []
    texts = {item_id: row["text"] for item_id, row in server.rows().items()}
    assert texts == {"w0": "mine", "w1": winner, "w2": "mine"}
    assert todo.get("w1")["version"] == server.rows()["w1"]["version"]


def _batching_client(server: Any, *, retry: bool) -> tuple[Client, Any]:
    """A client of ``server`` and its ``todo`` table, after one push (it knows ``$batch``)."""
    client = server.client(retry=retry)
    todo = client.sync_table("todo")
    todo.insert({"id": "first", "text": "x"})
    client.push()  # learns about the extension
    return client, todo


@pytest.mark.parametrize(
    "retry", [pytest.param(True, id="retried"), pytest.param(False, id="next-push")]
)
def test_a_lost_batch_response_makes_no_duplicates_and_no_false_conflicts(
    make_server: Any, retry: bool
) -> None:
    server = make_server()
    client, todo = _batching_client(server, retry=retry)
    items = [todo.insert({"id": f"l{n}", "text": "x"}) for n in range(8)]
    client.push()
    for item in items:
        todo.update({**todo.get(item["id"]), "text": "edited"})
    server.recorder.lose_batches = 1

    if retry:
        result = client.push()
    else:
        with pytest.raises(PushFailedError) as failed:
            client.push()
        assert failed.value.result.status is PushStatus.CANCELLED_BY_NETWORK_ERROR
        assert len(client.pending_operations) == 8  # nothing recorded, everything queued
        result = client.push()

    assert result.ok and result.errors == [] and client.pending_operations == []
    rows = server.rows()
    assert len(rows) == 9 and all(rows[f"l{n}"]["text"] == "edited" for n in range(8))
    assert all(todo.get(f"l{n}")["version"] == rows[f"l{n}"]["version"] for n in range(8))


def _push_while_down(client: Client, server: Any) -> None:
    """A push that dies at its first request, as a process killed mid-push leaves things."""
    server.recorder.down = True
    with pytest.raises(PushFailedError) as failed:
        client.push()
    assert failed.value.result.status is PushStatus.CANCELLED_BY_NETWORK_ERROR
    server.recorder.down = False


def _lose_a_batch(client: Client, server: Any, ids: list[str]) -> None:
    """Push ``ids`` (just inserted) in one batch the server applies but whose answer is lost."""
    server.recorder.lose_batches = 1
    with pytest.raises(PushFailedError):
        client.push()
    assert set(server.rows()) >= set(ids)


def test_a_lost_attempt_is_recognised_after_many_failed_pushes_of_newer_data(
    make_server: Any,
) -> None:
    # The kill test's false conflict: each failed push recorded the same newer body again,
    # and the list of earlier attempts (a few kept) lost the one the server holds.
    server = make_server()
    client, todo = _batching_client(server, retry=False)
    todo.insert({"id": "x", "text": "v1", "n": 1})
    todo.insert({"id": "y", "text": "v1", "n": 1})
    _lose_a_batch(client, server, ["x", "y"])
    todo.update({**todo.get("x"), "text": "v2"})
    for _ in range(5):
        _push_while_down(client, server)

    result = client.push()

    assert result.ok and result.errors == [] and client.pending_operations == []
    assert server.rows()["x"]["text"] == "v2"
    assert todo.get("x")["version"] == server.rows()["x"]["version"]


def test_operations_queued_behind_one_sent_alone_are_not_marked_attempted(
    make_server: Any,
) -> None:
    # Only a request that may have left records an attempt: marking the operations behind
    # it (never sent) recorded each new local edit as an attempt, until the attempt the
    # server holds was forgotten and its row met as a false conflict.
    server = make_server()
    client, todo = _batching_client(server, retry=False)
    todo.insert({"id": "p", "text": "v1"})
    todo.insert({"id": "x", "text": "v1"})
    todo.insert({"id": "z", "text": "v1"})
    _lose_a_batch(client, server, ["p", "x", "z"])  # each now goes alone: its attempt was lost
    for n in range(2, 7):
        todo.update({**todo.get("x"), "text": f"v{n}"})
        _push_while_down(client, server)  # dies at p's request
        states = {op.item_id: op.state.name for op in client.pending_operations}
        assert states == {"p": "ATTEMPTED", "x": "ATTEMPTED", "z": "ATTEMPTED"}
        assert len(client.context.earlier_attempts(client.pending_operations[1])) == 1

    result = client.push()

    assert result.ok and result.errors == [] and client.pending_operations == []
    assert server.rows()["x"]["text"] == "v6"


def test_a_custom_handler_keeps_one_request_per_operation(make_server: Any) -> None:
    seen: list[str] = []

    class Logging(SyncHandler):
        def execute_operation(self, op: Any, send: Any) -> Any:
            seen.append(op.item_id)
            return (yield from send(op.item))

    server = make_server()
    client = server.client(conflict_handler=Logging())
    todo = client.sync_table("todo")
    for n in range(4):
        todo.insert({"id": f"h{n}", "text": "x"})

    assert client.push().completed == 4
    assert server.recorder.batches() == [] and seen == ["h0", "h1", "h2", "h3"]


@pytest.mark.anyio
async def test_the_async_client_batches_too(tmp_path: Path) -> None:
    from tablesync.server import Table, create_app

    app = create_app(f"sqlite:///{tmp_path / 's.db'}", [Table("todo", columns=COLUMNS)])
    sent: list[str] = []

    async def record(request: httpx.Request) -> None:
        sent.append(request.url.path)

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, event_hooks={"request": [record]}) as http:
        with SQLiteStore(tmp_path / "c.db") as store:
            client = AsyncClient("http://testserver", store=store, http=http)
            todo = client.sync_table("todo")
            for n in range(5):
                await todo.insert({"id": f"a{n}", "text": "x"})
            result = await client.push()
            await client.aclose()
    assert result.completed == 5
    assert sent == ["/tables/todo", "/tables/$batch"]


# -- scripted: how the flow reads batch responses ------------------------------------------------


def _scripted(context: SyncContext, respond: Any, limit: int | None = 10) -> Any:
    b = builder(ApiVersion.V3)
    b.batch_limit = limit
    return drive(push_flow(context, b, SyncHandler()), respond), b


def _created(request: httpx.Request, body: Any) -> dict[str, Any]:
    return {"status": 201, "headers": {"ETag": '"v2"'}, "body": {**body, "version": "v2"}}


def _single_ok(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    return reply(request, 201, {**body, "version": "v1"})


def test_a_server_without_the_route_turns_batching_off(context: SyncContext) -> None:
    for n in range(3):
        context.insert("todo", {"id": f"o{n}"})

    def respond(request: httpx.Request) -> httpx.Response:
        if is_batch(request):
            return reply(request, 404, {"error": "no such table"})
        return _single_ok(request)

    driven, b = _scripted(context, respond)
    assert driven.result.completed == 3 and b.batch_limit is None
    assert [is_batch(r) for r in driven.requests] == [True, False, False, False]


def test_missing_and_failed_results_are_sent_on_their_own(context: SyncContext) -> None:
    for n in range(4):
        context.insert("todo", {"id": f"m{n}"})

    def respond(request: httpx.Request) -> httpx.Response:
        if not is_batch(request):
            return _single_ok(request)
        ops = json.loads(request.content)["operations"]
        results = [_created(request, ops[0]["body"]), {"status": 503, "headers": {}}]
        return reply(request, 200, {"results": results})  # stopped after the 503

    driven, _ = _scripted(context, respond)
    assert driven.result.completed == 4 and context.pending_operations() == []
    singles = [json.loads(r.content)["id"] for r in driven.requests if not is_batch(r)]
    assert singles == ["m1", "m2", "m3"]
    keys = [r.headers["Idempotency-Key"] for r in driven.requests if not is_batch(r)]
    sent = json.loads(driven.requests[0].content)["operations"]
    assert keys == [op["headers"]["Idempotency-Key"] for op in sent[1:]]


def test_a_401_result_aborts_and_leaves_the_rest_queued(context: SyncContext) -> None:
    for n in range(3):
        context.insert("todo", {"id": f"u{n}"})

    def respond(request: httpx.Request) -> httpx.Response:
        ops = json.loads(request.content)["operations"]
        results = [
            _created(request, ops[0]["body"]),
            {"status": 401, "headers": {}, "body": {"error": "who are you"}},
            _created(request, ops[2]["body"]),
        ]
        return reply(request, 200, {"results": results})

    b = builder(ApiVersion.V3)
    b.batch_limit = 10
    flow = push_flow(context, b, SyncHandler())
    with pytest.raises(PushFailedError) as failed:
        drive(flow, respond)
    assert failed.value.result.status is PushStatus.CANCELLED_BY_AUTHENTICATION_ERROR
    assert [op.item_id for op in context.pending_operations()] == ["u1", "u2"]


def test_a_batch_too_large_halves_the_batch_size(context: SyncContext) -> None:
    for n in range(6):
        context.insert("todo", {"id": f"t{n}"})

    def respond(request: httpx.Request) -> httpx.Response:
        if is_batch(request):
            return reply(request, 413, {"error": "too large"})
        return _single_ok(request)

    driven, b = _scripted(context, respond, limit=6)
    assert driven.result.completed == 6 and b.batch_limit == 3
    assert [is_batch(r) for r in driven.requests] == [True] + [False] * 6


def _store_statements(store: SQLiteStore) -> list[str]:
    """Every SQL statement the store's connection runs from now on."""
    seen: list[str] = []
    store._connection().set_trace_callback(seen.append)
    return seen


def test_a_batch_is_marked_and_recorded_in_one_store_transaction_each(
    context: SyncContext, store: SQLiteStore
) -> None:
    for n in range(20):
        context.insert("todo", {"id": f"c{n}"})
    statements = _store_statements(store)

    def respond(request: httpx.Request) -> httpx.Response:
        ops = json.loads(request.content)["operations"]
        return reply(request, 200, {"results": [_created(request, op["body"]) for op in ops]})

    driven, _ = _scripted(context, respond)
    assert driven.result.completed == 20 and context.pending_operations() == []
    # Not two commits per operation: per batch of 10, one marks it and one records its
    # results; the last clears the push's errors.
    assert statements.count("COMMIT") == 2 * 2 + 1


def test_no_store_transaction_is_open_while_an_operation_goes_alone(
    context: SyncContext, store: SQLiteStore, tmp_path: Path
) -> None:
    for n in range(3):
        context.insert("todo", {"id": f"a{n}"})
    seen_pending: list[list[str]] = []

    def respond(request: httpx.Request) -> httpx.Response:
        if not is_batch(request):
            # What another connection sees: the results recorded so far are committed.
            assert not store._connection().in_transaction
            other = SQLiteStore(tmp_path / "client.db")
            seen_pending.append([op.item_id for op in SyncContext(other).pending_operations()])
            other.close()
            return _single_ok(request)
        ops = json.loads(request.content)["operations"]
        results = [_created(request, ops[0]["body"]), {"status": 503, "headers": {}}]
        return reply(request, 200, {"results": results})

    driven, _ = _scripted(context, respond)
    assert driven.result.completed == 3
    assert seen_pending == [["a1", "a2"], ["a2"]]


def test_a_store_failure_while_marking_a_batch_leaves_it_untouched_and_unsent(
    context: SyncContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(4):
        context.insert("todo", {"id": f"s{n}"})
    real = context.mark_attempted

    def failing_on_the_third(op: Any, sent: Any = None) -> Any:
        if op.item_id == "s2":
            raise StoreError("disk full")
        return real(op, sent)

    monkeypatch.setattr(context, "mark_attempted", failing_on_the_third)
    b = builder(ApiVersion.V3)
    b.batch_limit = 10
    with pytest.raises(PushFailedError) as failed:
        drive(push_flow(context, b, SyncHandler()), lambda r: _single_ok(r))
    assert failed.value.result.status is PushStatus.CANCELLED_BY_STORE_ERROR
    # The marks of s0 and s1 were undone with the rest: all four wait, as never attempted.
    states = {op.item_id: op.state.name for op in context.pending_operations()}
    assert states == {f"s{n}": "PENDING" for n in range(4)}
