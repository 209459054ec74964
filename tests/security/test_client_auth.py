"""The client against a secured server over real HTTP (uvicorn): tokens, refresh on 401, views.

The client asks its token provider for a token, and on a 401 asks once more with
``refresh=True`` before giving up; offline sync then sees only the caller's own rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tablesync import AuthenticationError, Client, PushFailedError, SQLiteStore

from .conftest import NOTES, auth, serve, token


class Provider:
    """A token provider that records how it was asked; the first token has expired."""

    def __init__(self, user: str, *, refreshed_valid: bool = True) -> None:
        self.user = user
        self.refreshed_valid = refreshed_valid
        self.calls: list[bool] = []

    def __call__(self, refresh: bool = False) -> str:
        self.calls.append(refresh)
        if refresh and self.refreshed_valid:
            return token(self.user)
        return token(self.user, expires_in=-5)


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One real uvicorn server for the module."""
    from tablesync.server import create_app

    db = tmp_path_factory.mktemp("client-auth") / "server.db"
    with serve(create_app(f"sqlite:///{db}", tables=[NOTES], auth=auth())) as url:
        yield url


@pytest.fixture
def make_client(tmp_path: Path, server_url: str) -> Iterator[Callable[..., Client]]:
    made: list[tuple[Client, SQLiteStore]] = []

    def make(provider: Any, **kwargs: Any) -> Client:
        store = SQLiteStore(str(tmp_path / f"device-{len(made)}.db"))
        client = Client(server_url, store=store, auth=provider, **kwargs)
        made.append((client, store))
        return client

    yield make
    for client, store in made:
        client.close()
        store.close()


@pytest.mark.parametrize("header", ["Authorization", "X-ZUMO-AUTH"])
def test_an_expired_token_is_refreshed_once_on_401(
    make_client: Callable[..., Client], header: str
) -> None:
    provider = Provider(f"refresh-{header}")
    table = make_client(provider, token_header=header).table("notes")
    item = table.insert({"text": "hello", "owner": "someone-else"})
    assert item["owner"] == f"refresh-{header}"
    assert provider.calls == [False, True]
    assert table.get(item["id"])["text"] == "hello"
    assert provider.calls == [False, True]  # the fresh token is cached


def test_a_refresh_that_still_fails_raises_authentication_error(
    make_client: Callable[..., Client],
) -> None:
    provider = Provider("hopeless", refreshed_valid=False)
    with pytest.raises(AuthenticationError):
        make_client(provider).table("notes").insert({"text": "never"})
    assert provider.calls == [False, True]


def test_offline_sync_sees_only_own_rows(make_client: Callable[..., Client]) -> None:
    alice = make_client(lambda refresh=False: token("sync-alice"))
    bob = make_client(lambda refresh=False: token("sync-bob"))
    for n in range(3):
        alice.sync_table("notes").insert({"id": f"sa{n}", "text": "alice", "n": n})
    bob.sync_table("notes").insert({"id": "sb0", "text": "bob", "n": 0})
    alice.push()
    bob.push()
    bob.sync_table("notes").pull(query_id="all")
    alice.sync_table("notes").pull(query_id="all")
    assert sorted(row["id"] for row in bob.sync_table("notes").query()) == ["sb0"]
    assert sorted(row["id"] for row in alice.sync_table("notes").query()) == ["sa0", "sa1", "sa2"]
    assert {row["owner"] for row in alice.sync_table("notes").query()} == {"sync-alice"}


def test_pushing_over_a_foreign_row_fails_without_touching_it(
    make_client: Callable[..., Client],
) -> None:
    alice = make_client(lambda refresh=False: token("push-alice"))
    mallory = make_client(lambda refresh=False: token("push-mallory"))
    alice.table("notes").insert({"id": "pa1", "text": "mine"})
    mallory.sync_table("notes").insert({"id": "pa1", "text": "stolen"})
    with pytest.raises(PushFailedError):
        mallory.push()
    assert alice.table("notes").get("pa1")["text"] == "mine"


@pytest.mark.anyio
async def test_async_client_refreshes_with_an_async_provider(
    server_url: str, tmp_path: Path
) -> None:
    from tablesync import AsyncClient

    calls: list[bool] = []

    async def provider(refresh: bool = False) -> str:
        calls.append(refresh)
        return token("async-user") if refresh else token("async-user", expires_in=-5)

    store = SQLiteStore(str(tmp_path / "async.db"))
    try:
        async with AsyncClient(server_url, store=store, auth=provider) as client:
            item = await client.table("notes").insert({"text": "async"})
            assert item["owner"] == "async-user"
            assert calls == [False, True]
            notes = client.sync_table("notes")
            await notes.insert({"id": "as-1", "text": "offline"})
            assert (await client.push()).ok
            await notes.pull(query_id="all")
            assert sorted(row["id"] for row in await notes.query()) == sorted([item["id"], "as-1"])
        assert calls == [False, True]
    finally:
        store.close()
