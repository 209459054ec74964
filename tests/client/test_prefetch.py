"""The drivers' prefetch: page N+1 is on its way while page N is stored, in both clients."""

from __future__ import annotations

import contextlib
import gc
import threading
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import orjson
import pytest

from tablesync import AsyncClient, Client, SQLiteStore, StoreError, TransportError
from tablesync.client import SyncProgress

from .test_pull_flow import Rows, rows, stamp

PAGE = 4
ROWS = 10  # pages of 4, 4, 2, then the empty page that ends the pull


class SeenGets:
    """ASGI middleware: sets ``arrived[n]`` when the n-th GET of a table reaches the server."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.arrived = [threading.Event() for _ in range(20)]
        self.gets = 0
        self.stall: int | None = None  # this GET (0-based) answers only after 3 s

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            self.arrived[self.gets].set()
            self.gets += 1
            if self.gets - 1 == self.stall:
                await anyio.sleep(3)
        await self.app(scope, receive, send)


@pytest.fixture
def served(tmp_path: Path, running_server: Callable[..., str]) -> tuple[str, SeenGets]:
    """A real tablesync server on a socket, with ``ROWS`` rows in 4-row pages."""
    from tablesync.server import Table, create_app

    app = create_app(
        f"sqlite:///{tmp_path / 'server.db'}",
        [Table("todoitem", columns={"text": "string"}, page_size=PAGE)],
    )
    seen = SeenGets(app)
    url = running_server(seen)
    with Client(url) as client:
        for n in range(ROWS):
            client.table("todoitem").insert({"text": f"t{n}"})
    seen.gets = 0
    return url, seen


def waits_for_the_next_page(seen: SeenGets, stored: list[int]) -> Any:
    """A progress callback, run once page N is stored: the server has request N+1 already.

    It waits (5 s at most) for that request: a driver that asks for page N+1 only after
    storing page N would never send it while this callback blocks, and the wait fails.
    """

    def progress(event: SyncProgress) -> None:
        stored.append(event.done)
        assert seen.arrived[len(stored)].wait(5), f"no request for page {len(stored) + 1}"

    return progress


def test_the_sync_client_fetches_the_next_page_while_storing_one(
    served: tuple[str, SeenGets], tmp_path: Path
) -> None:
    url, seen = served
    stored: list[int] = []
    with SQLiteStore(tmp_path / "c.db") as store, Client(url, store=store, page_size=PAGE) as c:
        todo = c.sync_table("todoitem")
        result = todo.pull(query_id="all", progress=waits_for_the_next_page(seen, stored))
        assert result.upserted == ROWS and todo.count() == ROWS
    assert stored == [4, 8, 10]
    assert seen.gets == 4


def test_the_sync_client_decodes_the_next_page_on_its_fetching_thread(
    served: tuple[str, SeenGets], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tablesync.client import _http

    decoded_on: list[str] = []

    def recording_loads(data: bytes | str) -> Any:
        decoded_on.append(threading.current_thread().name)
        return orjson.loads(data)

    monkeypatch.setattr(_http, "loads", recording_loads)
    url, _ = served
    with SQLiteStore(tmp_path / "c.db") as store, Client(url, store=store, page_size=PAGE) as c:
        assert c.sync_table("todoitem").pull(query_id="all").upserted == ROWS
    # The first page is read by the flow; every page after it by the thread that fetched it.
    assert decoded_on[0] == threading.main_thread().name
    assert len(decoded_on) == 4 and all(n.startswith("tablesync-prefetch") for n in decoded_on[1:])
    # Each decoded page was handed out and let go: none is held for its response's lifetime.
    assert len(_http._PARSED) == 0


@pytest.mark.anyio
async def test_the_async_client_fetches_the_next_page_while_storing_one(
    served: tuple[str, SeenGets], tmp_path: Path
) -> None:
    url, seen = served
    stored: list[int] = []
    with SQLiteStore(tmp_path / "c.db") as store:
        async with AsyncClient(url, store=store, page_size=PAGE) as client:
            todo = client.sync_table("todoitem")
            progress = waits_for_the_next_page(seen, stored)
            result = await todo.pull(query_id="all", progress=progress)
            assert result.upserted == ROWS and await todo.count() == ROWS
    assert stored == [4, 8, 10]
    assert seen.gets == 4


@pytest.mark.anyio
async def test_cancelling_an_async_pull_keeps_the_pages_stored_so_far(
    served: tuple[str, SeenGets], tmp_path: Path
) -> None:
    url, seen = served
    seen.stall = 2  # page 3 hangs: page 2 is stored meanwhile, then the pull is cancelled
    with SQLiteStore(tmp_path / "c.db") as store:
        async with AsyncClient(url, store=store, page_size=PAGE) as client:
            todo = client.sync_table("todoitem")
            with anyio.move_on_after(1) as scope:
                await todo.pull(query_id="all")
            assert scope.cancelled_caught
            assert await todo.count() == 8
            seen.stall = None
            result = await todo.pull(query_id="all")  # resumes after page 2's token
            assert result.upserted == 2 and await todo.count() == ROWS


# -- failures while a page is ahead -------------------------------------------------------------


class FailingThird:
    """Serves ``Rows`` pages of 3; the third request fails as the network would."""

    def __init__(self) -> None:
        self.server = Rows(rows(9), page_size=3)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if len(self.server.requests) == 2:
            self.server.requests.append(request)
            raise httpx.ConnectError("connection refused", request=request)
        return self.server(request)


class TokenFails(SQLiteStore):
    """A store whose second delta-token write fails (the disk filled up, say)."""

    writes = 0

    def set_config(self, key: str, value: str) -> None:
        self.writes += 1
        if self.writes == 2:
            raise StoreError("disk full")
        super().set_config(key, value)


def sync_client(store: SQLiteStore, handler: Any) -> Client:
    http = httpx.Client(transport=httpx.MockTransport(handler))
    return Client("http://server", store=store, http=http, retry=False, page_size=3)


def async_client(store: SQLiteStore, handler: Any) -> AsyncClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return AsyncClient("http://server", store=store, http=http, retry=False, page_size=3)


def check_two_pages_kept(store: SQLiteStore) -> None:
    kept = sorted(item["id"] for item in store.query_items("todo"))
    assert kept == [f"r{i:03d}" for i in range(6)]
    assert store.get_config("deltaToken|todo|all") == f"{stamp(6)} r005"


def check_one_page_kept(store: SQLiteStore) -> None:
    # Page 2 is rolled back with its token; page 3 was asked for and is dropped.
    assert sorted(item["id"] for item in store.query_items("todo")) == ["r000", "r001", "r002"]
    assert store.get_config("deltaToken|todo|all") == f"{stamp(3)} r002"


def test_sync_a_failed_next_page_surfaces_after_this_page_is_stored(tmp_path: Path) -> None:
    handler = FailingThird()
    with SQLiteStore(tmp_path / "c.db") as store, sync_client(store, handler) as client:
        with pytest.raises(TransportError):
            client.sync_table("todo").pull(query_id="all")
        check_two_pages_kept(store)


@pytest.mark.anyio
async def test_async_a_failed_next_page_surfaces_after_this_page_is_stored(tmp_path: Path) -> None:
    handler = FailingThird()
    with SQLiteStore(tmp_path / "c.db") as store:
        async with async_client(store, handler) as client:
            with pytest.raises(TransportError):
                await client.sync_table("todo").pull(query_id="all")
        check_two_pages_kept(store)


def test_sync_a_store_failure_drops_the_page_ahead_and_surfaces(tmp_path: Path) -> None:
    server = Rows(rows(9), page_size=3)
    with TokenFails(tmp_path / "c.db") as store, sync_client(store, server) as client:
        with pytest.raises(StoreError, match="disk full"):
            client.sync_table("todo").pull(query_id="all")
        check_one_page_kept(store)


@pytest.mark.anyio
async def test_async_a_store_failure_drops_the_page_ahead_and_surfaces(tmp_path: Path) -> None:
    server = Rows(rows(9), page_size=3)
    with TokenFails(tmp_path / "c.db") as store:
        async with async_client(store, server) as client:
            with pytest.raises(StoreError, match="disk full"):
                await client.sync_table("todo").pull(query_id="all")
        check_one_page_kept(store)
        # A mock transport answers within the prefetch task, before page 2 is stored.
        assert len(server.requests) == 3


# -- the guessed next request -------------------------------------------------------------------


def test_the_next_request_goes_out_before_the_page_is_decoded(
    served: tuple[str, SeenGets], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tablesync.client import _http

    url, seen = served
    ahead: list[bool] = []

    def loads_once_the_next_get_arrived(data: bytes | str) -> Any:
        # Page 2 is decoded on the fetching thread only after the request for page 3 reached
        # the server: sent on the guess, since the flow cannot have read page 2 yet.
        if threading.current_thread().name.startswith("tablesync-prefetch") and not ahead:
            ahead.append(seen.arrived[2].wait(5))
        return orjson.loads(data)

    monkeypatch.setattr(_http, "loads", loads_once_the_next_get_arrived)
    with SQLiteStore(tmp_path / "c.db") as store, Client(url, store=store, page_size=PAGE) as c:
        assert c.sync_table("todoitem").pull(query_id="all").upserted == ROWS
    assert ahead == [True]
    assert seen.gets == 4  # every guess was the request the flow wanted: none wasted


def test_a_wrong_guess_is_sent_but_never_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tablesync.client import _pull

    # Each row ends with an object that looks like an item: the guess reads it as the last
    # item, and its cursor would skip every row before 2099.
    items = [{**r, "meta": {"id": "zzz", "updatedAt": "2099-01-01T00:00:00.000Z"}} for r in rows(9)]
    server = Rows(items, page_size=3)
    guessed: list[Any] = []

    def recording_guess(content: bytes) -> Any:
        guessed.append(_pull_guess(content))
        return guessed[-1]

    _pull_guess = _pull.last_item_guess
    monkeypatch.setattr(_pull, "last_item_guess", recording_guess)
    with SQLiteStore(tmp_path / "c.db") as store, sync_client(store, server) as client:
        result = client.sync_table("todo").pull(query_id="all")
        assert result.upserted == 9
        assert store.count_items("todo") == 9
        assert store.get_config("deltaToken|todo|all") == f"{stamp(9)} r008"
    # Pages 2 and 3 gave the wrong guess (page 1 is read by the flow, page 4 is empty).
    assert [guess and guess["id"] for guess in guessed] == ["zzz", "zzz", None]


# -- responses freed as soon as they are read ----------------------------------------------------


class LiveResponses:
    """Weak references to every response sent, and the most alive at once while storing."""

    def __init__(self) -> None:
        self.refs: list[weakref.ref[httpx.Response]] = []
        self.most = 0

    def hook(self, response: httpx.Response) -> None:
        self.refs.append(weakref.ref(response))

    async def ahook(self, response: httpx.Response) -> None:
        self.hook(response)

    def count(self, _: SyncProgress) -> None:
        self.most = max(self.most, sum(ref() is not None for ref in self.refs))


@contextlib.contextmanager
def cyclic_gc_off() -> Iterator[None]:
    """Only reference counting frees objects meanwhile: what a reference cycle holds stays."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def test_sync_pulled_pages_are_freed_without_the_cyclic_gc(tmp_path: Path) -> None:
    # httpx binds each response's stream to the response, a cycle: responses waited for the
    # cyclic GC, and a 1M-row pull held dozens of pages' bodies (164 MB at 5,000-row pages).
    live = LiveResponses()
    http = httpx.Client(
        transport=httpx.MockTransport(Rows(rows(36), page_size=3)),
        event_hooks={"response": [live.hook]},
    )
    with SQLiteStore(tmp_path / "c.db") as store, cyclic_gc_off():
        client = Client("http://server", store=store, http=http, retry=False, page_size=3)
        with client:
            client.sync_table("todo").pull(query_id="all", progress=live.count)
    assert len(live.refs) == 13
    # The page being stored, the one ahead and the guess after it (a thread may let go late).
    assert live.most <= 4


@pytest.mark.anyio
async def test_async_pulled_pages_are_freed_without_the_cyclic_gc(tmp_path: Path) -> None:
    live = LiveResponses()
    http = httpx.AsyncClient(
        transport=httpx.MockTransport(Rows(rows(36), page_size=3)),
        event_hooks={"response": [live.ahook]},
    )
    with SQLiteStore(tmp_path / "c.db") as store, cyclic_gc_off():
        async with AsyncClient(
            "http://server", store=store, http=http, retry=False, page_size=3
        ) as client:
            await client.sync_table("todo").pull(query_id="all", progress=live.count)
    assert len(live.refs) == 13
    assert live.most <= 3
