"""Client and AsyncClient against tablesync's own server, in-process, on SQLite.

The sync tests run ``Client`` over ``starlette.testclient.TestClient(app)``; the async mirror
runs ``AsyncClient`` over ``httpx.ASGITransport(app)``. Both use v2 and v3, and a server page
size of 3 so that every query and pull crosses pages.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tablesync import (
    AsyncClient,
    Client,
    ConflictError,
    NotFoundError,
    PushFailedError,
    Query,
    QueueError,
    SQLiteStore,
)
from tablesync.client import PushStatus
from tests._testclient import TestClient

COLUMNS = {"text": "string", "done": "boolean", "n": "integer"}
VERSIONS = [pytest.param("2.0.0", id="v2"), pytest.param("3.0.0", id="v3")]


@pytest.fixture
def app(tmp_path: Path) -> Any:
    from tablesync.server import Table, create_app

    return create_app(
        f"sqlite:///{tmp_path / 'server.db'}", [Table("todoitem", columns=COLUMNS, page_size=3)]
    )


@pytest.fixture(params=VERSIONS)
def version(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest.fixture
def http(app: Any) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


class Devices:
    """Makes clients (each with its own store file) on one server."""

    def __init__(self, http: TestClient, version: str, tmp_path: Path) -> None:
        self.http, self.version, self.tmp_path = http, version, tmp_path
        self.made: list[tuple[Client, SQLiteStore]] = []

    def __call__(self, name: str = "device", **kwargs: Any) -> Client:
        store = SQLiteStore(self.tmp_path / f"{name}.db")
        # Pulls too ask for 3 rows a page (their default, 5,000, would get every row at once).
        kwargs.setdefault("page_size", 3)
        client = Client(
            "http://testserver", store=store, http=self.http, api_version=self.version, **kwargs
        )
        self.made.append((client, store))
        return client


@pytest.fixture
def devices(http: TestClient, version: str, tmp_path: Path) -> Iterator[Devices]:
    made = Devices(http, version, tmp_path)
    yield made
    for client, store in made.made:
        client.close()
        store.close()


# -- online tables -------------------------------------------------------------------------------


def test_online_crud_round_trip(devices: Devices) -> None:
    table = devices().table("todoitem")

    item = table.insert({"text": "milk", "done": False})
    assert item["text"] == "milk" and item["version"] and item["id"]
    assert table.get(item["id"]) == item

    updated = table.update({**item, "done": True})
    assert updated["done"] is True and updated["version"] != item["version"]

    with pytest.raises(ConflictError) as stale:
        table.update({**item, "text": "stale"})
    assert stale.value.status_code == 412 and stale.value.server_item is not None
    assert stale.value.server_item["version"] == updated["version"]

    table.delete(updated)
    with pytest.raises(NotFoundError):
        table.get(item["id"])
    assert table.get(item["id"], include_deleted=True)["deleted"] is True

    restored = table.undelete(item["id"])
    assert restored["deleted"] is False and table.get(item["id"])["text"] == "milk"


def test_online_insert_of_an_existing_id_is_a_conflict(devices: Devices) -> None:
    table = devices().table("todoitem")
    table.insert({"id": "same", "text": "a"})
    with pytest.raises(ConflictError) as info:
        table.insert({"id": "same", "text": "b"})
    assert info.value.server_item is not None and info.value.server_item["text"] == "a"


def test_online_query_walks_every_page(devices: Devices) -> None:
    table = devices().table("todoitem")
    for n in range(8):
        table.insert({"id": f"i{n}", "text": f"t{n}", "n": n})

    assert [item["n"] for item in table.query()] == list(range(8))
    assert [i["n"] for i in table.query(Query("n ge 2", order_by="n desc", top=4))] == [7, 6, 5, 4]
    assert [i["n"] for i in table.query(Query(skip=6))] == [6, 7]
    assert table.count() == 8 and table.count(Query("n lt 3")) == 3


def test_a_bad_filter_is_a_clear_server_error(devices: Devices) -> None:
    from tablesync import ServerError

    table = devices().table("todoitem")
    with pytest.raises(ServerError) as info:
        list(table.query(Query("nosuchcolumn eq 1")))
    assert info.value.status_code == 400


# -- offline sync ----------------------------------------------------------------------------------


def test_offline_writes_push_and_reach_another_device(devices: Devices) -> None:
    phone, laptop = devices("phone"), devices("laptop")
    todo = phone.sync_table("todoitem")
    items = [todo.insert({"text": f"t{n}", "n": n}) for n in range(5)]
    todo.update({**items[0], "text": "changed"})
    todo.delete(items[1]["id"])
    assert [op.kind.name for op in phone.pending_operations] == ["INSERT"] * 4

    assert phone.push().ok
    assert phone.pending_operations == []
    assert todo.get(items[0]["id"])["version"]  # the server's version came back

    other = laptop.sync_table("todoitem")
    result = other.pull(query_id="all")
    assert sorted(i["n"] for i in other.query()) == [0, 2, 3, 4]
    assert other.get(items[0]["id"])["text"] == "changed"
    assert result.upserted >= 4


def test_incremental_pull_brings_updates_and_deletions(devices: Devices) -> None:
    phone, laptop = devices("phone"), devices("laptop")
    todo, other = phone.sync_table("todoitem"), laptop.sync_table("todoitem")
    items = [todo.insert({"text": f"t{n}", "n": n}) for n in range(4)]
    phone.push()
    other.pull(query_id="all")

    todo.update({**todo.get(items[2]["id"]), "text": "edited"})
    todo.delete(items[3]["id"])
    phone.push()
    second = other.pull(query_id="all")

    assert other.get(items[2]["id"])["text"] == "edited"
    assert other.get(items[3]["id"]) is None
    # Only the two changed rows came, once each: the keyset cursor excludes rows already read.
    assert (second.received, second.upserted, second.deleted) == (2, 1, 1)


def test_pull_with_a_filter_and_full_pull(devices: Devices) -> None:
    phone = devices("phone")
    online = phone.table("todoitem")
    for n in range(7):
        online.insert({"text": "even" if n % 2 == 0 else "odd", "n": n})
    todo = phone.sync_table("todoitem")

    todo.pull(Query("text eq 'even'"), query_id="evens")
    assert sorted(i["n"] for i in todo.query()) == [0, 2, 4, 6]

    todo.pull()  # a full pull, no token
    assert len(todo.query()) == 7


def test_pull_pushes_the_dirty_table_first(devices: Devices) -> None:
    phone, laptop = devices("phone"), devices("laptop")
    todo = phone.sync_table("todoitem")
    item = todo.insert({"text": "local"})

    result = todo.pull(query_id="all")

    assert result.push is not None and result.push.completed == 1
    assert laptop.table("todoitem").get(item["id"])["text"] == "local"


def test_a_conflict_surfaces_and_is_resolved(devices: Devices) -> None:
    phone, laptop = devices("phone"), devices("laptop")
    todo = phone.sync_table("todoitem")
    item = todo.insert({"text": "v1"})
    phone.push()
    server_copy = laptop.table("todoitem").update(
        {**laptop.table("todoitem").get(item["id"]), "text": "theirs"}
    )

    todo.update({**todo.get(item["id"]), "text": "mine"})
    with pytest.raises(PushFailedError) as info:
        phone.push()

    (error,) = info.value.result.errors
    assert info.value.result.status is PushStatus.COMPLETE
    assert error.status in (409, 412) and error.server_item is not None
    assert error.server_item["text"] == "theirs"
    error.update_operation({**error.item, "version": error.server_item["version"]})
    assert phone.push().ok
    assert laptop.table("todoitem").get(item["id"])["text"] == "mine"
    assert server_copy["version"] != todo.get(item["id"])["version"]


def test_purge(devices: Devices) -> None:
    phone = devices("phone")
    todo = phone.sync_table("todoitem")
    phone.table("todoitem").insert({"text": "server"})
    todo.pull(query_id="all")
    todo.insert({"text": "pending"})

    with pytest.raises(QueueError):
        todo.purge(query_id="all")
    assert todo.purge(query_id="all", force=True) == 2
    assert todo.query() == [] and phone.pending_operations == []

    todo.pull(query_id="all")  # the token was reset: everything comes again
    assert [i["text"] for i in todo.query()] == ["server"]


# -- lost responses against the real server -------------------------------------------------------


class LoseFirstResponse(httpx.BaseTransport):
    """Forwards to the app, but the first write's response never arrives (a read timeout)."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.lost = 0
        self.keys: list[str | None] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.method != "GET":
            self.keys.append(request.headers.get("Idempotency-Key"))
            if not self.lost:
                self.lost += 1
                response.read()
                raise httpx.ReadTimeout("response lost", request=request)
        return response


def test_a_retried_push_whose_response_was_lost_succeeds(
    app: Any, version: str, tmp_path: Path
) -> None:
    with TestClient(app) as base:
        lossy = LoseFirstResponse(base._transport)
        http = httpx.Client(transport=lossy, base_url="http://testserver")
        store = SQLiteStore(tmp_path / "c.db")
        with Client("http://testserver", store=store, http=http, api_version=version) as client:
            todo = client.sync_table("todoitem")
            item = todo.insert({"text": "once"})
            result = client.push()
            online = client.table("todoitem")
            assert result.ok and lossy.lost == 1
            assert lossy.keys[0] == lossy.keys[1]  # the retry carried the same key
            assert [i["id"] for i in online.query()] == [item["id"]]
            assert todo.get(item["id"])["version"] == online.get(item["id"])["version"]
        store.close()


# -- the async mirror --------------------------------------------------------------------------


@pytest.fixture
async def async_client(app: Any, version: str, tmp_path: Path) -> AsyncIterator[AsyncClient]:
    store = SQLiteStore(tmp_path / "async.db")
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app)) as http,
        AsyncClient("http://testserver", store=store, http=http, api_version=version) as client,
    ):
        yield client
    store.close()


@pytest.mark.anyio
async def test_async_online_crud_and_paging(async_client: AsyncClient) -> None:
    table = async_client.table("todoitem")
    item = await table.insert({"text": "milk"})
    updated = await table.update({**item, "done": True})
    assert (await table.get(item["id"]))["done"] is True
    with pytest.raises(ConflictError):
        await table.update({**item, "text": "stale"})
    for n in range(6):
        await table.insert({"text": f"t{n}", "n": n})
    assert len([i async for i in table.query()]) == 7
    assert await table.count(Query("n ge 3")) == 3
    await table.delete(updated)
    with pytest.raises(NotFoundError):
        await table.get(item["id"])
    assert (await table.undelete(item["id"]))["deleted"] is False


@pytest.mark.anyio
async def test_async_offline_push_pull_purge(async_client: AsyncClient) -> None:
    todo = async_client.sync_table("todoitem")
    items = [await todo.insert({"text": f"t{n}", "n": n}) for n in range(5)]
    await todo.delete(items[4]["id"])
    assert len(async_client.pending_operations) == 4

    assert (await async_client.push()).ok
    assert await todo.purge(query_id="all") == 4
    result = await todo.pull(query_id="all")
    assert result.upserted >= 4 and len(await todo.query()) == 4
    assert (await todo.get(items[0]["id"]))["version"]


@pytest.mark.anyio
async def test_async_push_failure_reports_errors(async_client: AsyncClient) -> None:
    todo = async_client.sync_table("todoitem")
    item = await todo.insert({"text": "a"})
    await async_client.push()
    await async_client.table("todoitem").update({**(await todo.get(item["id"])), "text": "server"})
    await todo.update({**(await todo.get(item["id"])), "text": "local"})

    with pytest.raises(PushFailedError) as info:
        await async_client.push()

    (error,) = info.value.result.errors
    error.cancel_and_update(error.server_item or {})
    assert (await todo.get(item["id"]))["text"] == "server"
    assert async_client.pending_operations == []


def test_concurrent_pushes_send_each_operation_once(app: Any, version: str, tmp_path: Path) -> None:
    import threading

    class Counting(httpx.BaseTransport):
        def __init__(self, inner: httpx.BaseTransport) -> None:
            self.inner, self.posts = inner, 0

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            self.posts += request.method == "POST"
            if request.url.path.endswith("/$batch"):  # count each batched insert (one POST)
                self.posts += len(json.loads(request.content)["operations"]) - 1
            return self.inner.handle_request(request)

    with TestClient(app) as base:
        counting = Counting(base._transport)
        http = httpx.Client(transport=counting)
        with (
            SQLiteStore(tmp_path / "c.db") as store,
            Client("http://testserver", store=store, http=http, api_version=version) as client,
        ):
            todo = client.sync_table("todoitem")
            for n in range(10):
                todo.insert({"text": f"t{n}"})
            threads = [threading.Thread(target=client.push) for _ in range(3)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=30)
            assert counting.posts == 10 and client.pending_operations == []


class RequireToken:
    """ASGI middleware: 401 unless ``Authorization: Bearer <valid>``."""

    def __init__(self, app: Any, valid: str) -> None:
        self.app, self.valid = app, valid

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        headers = dict(scope.get("headers") or [])
        if (
            scope["type"] == "http"
            and headers.get(b"authorization") != f"Bearer {self.valid}".encode()
        ):
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send(
                {"type": "http.response.body", "body": b'{"status":401,"error":"bad token"}'}
            )
            return
        await self.app(scope, receive, send)


def test_an_expired_token_is_refreshed_during_a_push(
    app: Any, version: str, tmp_path: Path
) -> None:
    asked: list[bool] = []

    def token(refresh: bool = False) -> str:
        asked.append(refresh)
        return "new" if refresh else "expired"

    with TestClient(RequireToken(app, "new")) as http, SQLiteStore(tmp_path / "c.db") as store:
        client = Client(
            "http://testserver", store=store, http=http, api_version=version, auth=token
        )
        todo = client.sync_table("todoitem")
        todo.insert({"text": "a"})
        todo.insert({"text": "b"})
        assert client.push().ok
        assert asked == [False, True]
        assert len(list(client.table("todoitem").query())) == 2


def test_a_refused_token_stops_the_push_and_keeps_the_queue(
    app: Any, version: str, tmp_path: Path
) -> None:
    with TestClient(RequireToken(app, "never")) as http, SQLiteStore(tmp_path / "c.db") as store:
        client = Client(
            "http://testserver",
            store=store,
            http=http,
            api_version=version,
            auth=lambda refresh=False: "wrong",
        )
        todo = client.sync_table("todoitem")
        todo.insert({"text": "a"})
        with pytest.raises(PushFailedError) as info:
            client.push()
        assert info.value.result.status is PushStatus.CANCELLED_BY_AUTHENTICATION_ERROR
        assert len(client.pending_operations) == 1
        from tablesync import AuthenticationError

        with pytest.raises(AuthenticationError):
            client.table("todoitem").count()


def test_sync_pushes_then_pulls_each_table(devices: Devices) -> None:
    phone, laptop = devices("phone"), devices("laptop")
    phone.sync_table("todoitem").insert({"text": "from phone"})
    laptop.sync_table("todoitem").insert({"text": "from laptop"})

    assert phone.sync() == []  # no tables named: push only
    (result,) = laptop.sync("todoitem")
    (again,) = phone.sync("todoitem", query_id="mine")

    assert result.push is None and result.received >= 2
    assert {i["text"] for i in phone.sync_table("todoitem").query()} == {
        "from phone",
        "from laptop",
    }
    assert again.query_id == "mine" and phone.pending_operations == laptop.pending_operations == []


@pytest.mark.anyio
async def test_async_sync(async_client: AsyncClient) -> None:
    await async_client.sync_table("todoitem").insert({"text": "x"})
    (result,) = await async_client.sync("todoitem")
    assert result.received >= 1 and async_client.pending_operations == []


def test_filter_strings_are_accepted_where_queries_are(devices: Devices) -> None:
    phone = devices("phone")
    online = phone.table("todoitem")
    for n in range(4):
        online.insert({"text": "a" if n < 3 else "b", "n": n})
    todo = phone.sync_table("todoitem")

    assert online.count("text eq 'a'") == 3
    assert len(list(online.query("n ge 1"))) == 3
    todo.pull("text eq 'b'", query_id="bs")
    assert [i["text"] for i in todo.query()] == ["b"]


def test_bad_arguments_are_usage_errors_and_send_nothing(devices: Devices) -> None:
    from tablesync import UsageError

    phone = devices("phone")
    phone.sync_table("todoitem").insert({"text": "queued"})
    with pytest.raises(UsageError):
        list(phone.table("todoitem").query(42))  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        phone.table("todoitem").get("bad/id")
    with pytest.raises(UsageError):
        phone.table("todoitem").delete({"text": "no id"})
    with pytest.raises(UsageError):
        phone.table("no such/table")
    assert phone.push(tables="todoitem").completed == 1  # one table, not its letters


@pytest.mark.anyio
async def test_async_policies_and_failed_implicit_push(
    app: Any, version: str, tmp_path: Path
) -> None:
    from tablesync import PullFailedError, UnsupportedQueryError
    from tablesync.client import ClientWins

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app)) as http:
        with SQLiteStore(tmp_path / "a.db") as store_a, SQLiteStore(tmp_path / "b.db") as store_b:
            a = AsyncClient("http://testserver", store=store_a, http=http, api_version=version)
            b = AsyncClient(
                "http://testserver",
                store=store_b,
                http=http,
                api_version=version,
                conflict_handler=ClientWins(),
            )
            todo_a, todo_b = a.sync_table("todoitem"), b.sync_table("todoitem")
            item = await todo_a.insert({"text": "start"})
            await a.push()
            await todo_b.pull(query_id="all")
            await todo_a.update({**(await todo_a.get(item["id"])), "text": "from a"})
            await todo_b.update({**(await todo_b.get(item["id"])), "text": "from b"})
            await a.push()

            with pytest.raises(UnsupportedQueryError):
                await todo_a.pull(Query(select=["id"]), query_id="x")  # refused before I/O
            await todo_a.update({**(await todo_a.get(item["id"])), "text": "a again"})
            assert (await b.push()).ok  # ClientWins resends over the server's version
            with pytest.raises(PullFailedError) as info:
                await todo_a.pull(query_id="all")  # its implicit push meets b's change
            assert isinstance(info.value.__cause__, PushFailedError)
            assert (await a.table("todoitem").get(item["id"]))["text"] == "from b"


def test_a_closed_client_refuses_every_call(devices: Devices) -> None:
    from tablesync import UsageError

    phone = devices("phone")
    todo = phone.sync_table("todoitem")
    online = phone.table("todoitem")
    phone.close()
    for call in (
        lambda: todo.insert({"text": "x"}),
        lambda: todo.pull(query_id="all"),
        lambda: phone.push(),
        lambda: online.count(),
        lambda: phone.pending_operations,
    ):
        with pytest.raises(UsageError, match="closed"):
            call()


class StallSecondWrite(httpx.AsyncBaseTransport):
    """Forwards to the app, but the second write hangs until the caller gives up."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner, self.writes = inner, 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method != "GET":
            self.writes += 1
            if self.writes == 2:
                import anyio

                await anyio.sleep(30)
        return await self.inner.handle_async_request(request)


@pytest.mark.anyio
async def test_a_cancelled_push_leaves_the_rest_queued_and_resumes(
    app: Any, version: str, tmp_path: Path
) -> None:
    import anyio

    transport = StallSecondWrite(httpx.ASGITransport(app))
    async with httpx.AsyncClient(transport=transport) as http:
        with SQLiteStore(tmp_path / "c.db") as store:
            client = AsyncClient("http://testserver", store=store, http=http, api_version=version)
            todo = client.sync_table("todoitem")
            for n in range(3):
                await todo.insert({"text": f"t{n}"})

            with anyio.move_on_after(0.5) as scope:
                await client.push()
            assert scope.cancelled_caught
            assert len(client.pending_operations) == 2  # the first went, the rest wait

            assert (await client.push()).completed == 2
            assert client.pending_operations == []
            assert len([i async for i in client.table("todoitem").query()]) == 3


def test_pulls_ask_for_bigger_pages_than_queries_by_default(http: TestClient, version: str) -> None:
    sent: list[httpx.Request] = []
    transport = http._transport  # type: ignore[attr-defined]

    class Recording(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            sent.append(request)
            return transport.handle_request(request)  # type: ignore[no-any-return]

    recording = httpx.Client(transport=Recording(), base_url="http://testserver")
    with (
        SQLiteStore(":memory:") as store,
        Client("http://testserver", store=store, http=recording, api_version=version) as client,
    ):
        list(client.table("todoitem").query())
        client.sync_table("todoitem").pull(query_id="all")
        client.sync_table("todoitem").pull()
    tops = [request.url.params.get("$top") for request in sent]
    query_top, pull_top = ("50", "50") if version == "2.0.0" else ("100", "5000")
    assert tops == [query_top, pull_top, pull_top]
