"""Smoke tests over a real socket: Client and AsyncClient against uvicorn on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tablesync import (
    AsyncClient,
    Client,
    ConflictError,
    PushFailedError,
    Query,
    SQLiteStore,
    TransportError,
)
from tablesync.client import PushStatus, ServerWins


@pytest.fixture
def live_url(tmp_path: Path, running_server: Callable[..., str]) -> str:
    from tablesync.server import Table

    url = running_server(
        database=f"sqlite:///{tmp_path / 'live.db'}",
        tables=[Table("todoitem", columns={"text": "string", "n": "integer"}, page_size=4)],
    )
    return url


@pytest.mark.parametrize(
    "version", [pytest.param("2.0.0", id="v2"), pytest.param("3.0.0", id="v3")]
)
def test_sync_client_over_a_socket(live_url: str, version: str, tmp_path: Path) -> None:
    with (
        SQLiteStore(tmp_path / "a.db") as store_a,
        SQLiteStore(tmp_path / "b.db") as store_b,
        Client(live_url, store=store_a, api_version=version) as a,
        Client(live_url, store=store_b, api_version=version, conflict_handler=ServerWins()) as b,
    ):
        todo_a, todo_b = a.sync_table("todoitem"), b.sync_table("todoitem")
        for n in range(9):
            todo_a.insert({"text": f"t{n}", "n": n})
        assert a.push().ok
        assert todo_b.pull(query_id="all").upserted >= 9
        assert sorted(i["n"] for i in todo_b.query()) == list(range(9))
        assert len(list(a.table("todoitem").query(Query("n ge 2")))) == 7

        first = todo_a.query()[0]
        a.table("todoitem").update({**first, "text": "server"})
        todo_b.update({**todo_b.get(first["id"]), "text": "loses"})
        assert b.push().ok  # ServerWins settles the 412 locally
        assert todo_b.get(first["id"])["text"] == "server"


@pytest.mark.anyio
async def test_async_client_over_a_socket(live_url: str, tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "async.db") as store:
        async with AsyncClient(live_url, store=store) as client:
            table = client.table("todoitem")
            item = await table.insert({"text": "x", "n": 1})
            with pytest.raises(ConflictError):
                await table.insert({"id": item["id"], "text": "dup"})
            todo = client.sync_table("todoitem")
            await todo.insert({"text": "offline", "n": 2})
            assert (await client.push()).ok
            assert (await todo.pull(query_id="all")).upserted >= 2
            assert {i["text"] for i in await todo.query()} == {"x", "offline"}


def test_a_server_that_is_down_aborts_the_push_and_keeps_the_queue(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    with (
        SQLiteStore(tmp_path / "down.db") as store,
        Client(url, store=store, retry=False) as client,
    ):
        client.sync_table("todoitem").insert({"text": "waits"})
        with pytest.raises(PushFailedError) as info:
            client.push()
        assert info.value.result.status is PushStatus.CANCELLED_BY_NETWORK_ERROR
        assert isinstance(info.value.__cause__, TransportError)
        assert len(client.pending_operations) == 1


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
