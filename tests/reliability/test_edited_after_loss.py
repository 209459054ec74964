"""An operation edited locally after an attempt whose response was lost still ends as a success.

The lost attempt may have been applied: the server then holds the earlier data with a new
version, so the edited operation meets a 409 (insert) or 412 (update, delete) that is no
conflict at all. The client recognises its earlier attempt in the server's row and sends the
newer data over the server's version. A row changed by someone else stays a real conflict.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tablesync import Client, PushFailedError, PushStatus
from tests.faults.proxy import FaultProxy, Reset, Truncate, writes
from tests.reliability.conftest import FAST_RETRY, Peer


def _lose_and_abort(client: Client, proxy: FaultProxy) -> None:
    """Push with the next write handled but its answer lost, and the network then down."""
    proxy.plan.push(Truncate(0.3), *[Reset()] * (FAST_RETRY.max_attempts - 1), match=writes)
    with pytest.raises(PushFailedError) as failed:
        client.push()
    assert failed.value.result.status is PushStatus.CANCELLED_BY_NETWORK_ERROR
    assert proxy.lost_after_handling() == 1


def _row(peer: Peer, item_id: str) -> dict[str, Any]:
    [row] = [r for r in peer.server_rows() if r["id"] == item_id]
    return row


@pytest.fixture
def setup(
    peer: Peer, proxy_for: Callable[[str], FaultProxy], client_for: Callable[..., Client]
) -> tuple[Peer, FaultProxy, Client]:
    proxy = proxy_for(peer.url)
    return peer, proxy, client_for(proxy.url, peer.api_version)


def test_an_insert_edited_after_its_lost_attempt(setup: tuple[Peer, FaultProxy, Client]) -> None:
    peer, proxy, client = setup
    todo = client.sync_table("todoitem")
    item = todo.insert({"text": f"a-{uuid.uuid4().hex}", "n": 1})
    _lose_and_abort(client, proxy)
    todo.update({**item, "n": 2})
    assert client.push().ok
    row = _row(peer, item["id"])
    assert row["n"] == 2 and row["deleted"] is False
    assert todo.get(item["id"])["version"] == row["version"]  # type: ignore[index]
    assert client.pending_operations == []


def test_an_update_edited_after_its_lost_attempt(setup: tuple[Peer, FaultProxy, Client]) -> None:
    peer, proxy, client = setup
    todo = client.sync_table("todoitem")
    item = todo.insert({"text": f"b-{uuid.uuid4().hex}", "n": 1})
    client.push()
    todo.update({**todo.get(item["id"]), "n": 2})  # type: ignore[dict-item]
    _lose_and_abort(client, proxy)
    todo.update({**todo.get(item["id"]), "n": 3})  # type: ignore[dict-item]
    assert client.push().ok
    row = _row(peer, item["id"])
    assert row["n"] == 3
    assert todo.get(item["id"])["version"] == row["version"]  # type: ignore[index]


def test_a_delete_after_a_lost_update(setup: tuple[Peer, FaultProxy, Client]) -> None:
    peer, proxy, client = setup
    todo = client.sync_table("todoitem")
    item = todo.insert({"text": f"c-{uuid.uuid4().hex}", "n": 1})
    client.push()
    todo.update({**todo.get(item["id"]), "n": 2})  # type: ignore[dict-item]
    _lose_and_abort(client, proxy)
    todo.delete(item["id"])
    assert client.push().ok
    assert _row(peer, item["id"])["deleted"] is True
    assert client.pending_operations == []


def test_someone_elses_change_is_still_a_conflict(
    setup: tuple[Peer, FaultProxy, Client], client_for: Callable[..., Client]
) -> None:
    peer, proxy, client = setup
    todo = client.sync_table("todoitem")
    item = todo.insert({"text": f"d-{uuid.uuid4().hex}", "n": 1})
    client.push()
    todo.update({**todo.get(item["id"]), "n": 2})  # type: ignore[dict-item]
    _lose_and_abort(client, proxy)
    other = client_for(peer.url, peer.api_version).table("todoitem")
    other.update({**other.get(item["id"]), "n": 50}, force=True)
    todo.update({**todo.get(item["id"]), "n": 3})  # type: ignore[dict-item]
    with pytest.raises(PushFailedError) as failed:
        client.push()
    [error] = failed.value.result.errors
    assert error.status in (409, 412) and error.server_item["n"] == 50  # type: ignore[index]
    assert _row(peer, item["id"])["n"] == 50
