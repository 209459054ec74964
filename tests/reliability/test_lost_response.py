"""A push whose request reached the server but whose response was lost ends as a success.

Against tablesync's server the retry carries the same ``Idempotency-Key`` and gets the recorded
response back; against the official Node server (which ignores the header) the client
recognises its own write in the conflict (409 on insert, 412 on update) and counts a repeated
delete as done. Either way: no false conflict, no second row, the server's state written back.

Each case runs twice: the response is lost once and the retry of the same push succeeds
("retried"), or the network stays down after the loss, the push aborts, and the next push
resumes the operation ("resumed").
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tablesync import Client, PushFailedError, PushStatus
from tablesync.client import SyncTable
from tests.faults.proxy import DropResponse, FaultProxy, Reset, Truncate, writes
from tests.reliability.conftest import FAST_RETRY, Peer

Setup = Callable[[Any, str], None]


def _lose_next_write(proxy: FaultProxy, mode: str) -> None:
    if mode == "retried":
        proxy.plan.push(DropResponse(), match=writes)
    else:
        # Lost, then every retry of this push fails too: the push must abort cleanly.
        proxy.plan.push(Truncate(0.3), *[Reset()] * (FAST_RETRY.max_attempts - 1), match=writes)


def _push_through(client: Client, proxy: FaultProxy, mode: str) -> None:
    if mode == "retried":
        result = client.push()
        assert result.ok and result.errors == []
        return
    with pytest.raises(PushFailedError) as failed:
        client.push()
    assert failed.value.result.status is PushStatus.CANCELLED_BY_NETWORK_ERROR
    assert len(client.pending_operations) == 1, "the operation must stay queued"
    assert proxy.plan.pending == 0
    result = client.push()  # the network is back
    assert result.ok and result.errors == []


def _connect(
    peer: Peer, proxy_for: Callable[[str], FaultProxy], client_for: Callable[..., Client]
) -> tuple[FaultProxy, Client, SyncTable]:
    """A client reaching ``peer`` through a fault proxy, and its ``todoitem`` table."""
    proxy = proxy_for(peer.url)
    client = client_for(proxy.url, peer.api_version)
    return proxy, client, client.sync_table("todoitem")


def _push_losing_one_response(client: Client, proxy: FaultProxy, mode: str) -> None:
    """Push the one queued write, losing its response after the server handled it."""
    _lose_next_write(proxy, mode)
    _push_through(client, proxy, mode)
    assert proxy.lost_after_handling() == 1


def _rows(peer: Peer, marker: str) -> list[dict[str, Any]]:
    return [row for row in peer.server_rows() if row.get("text", "").startswith(marker)]


@pytest.mark.parametrize("mode", ["retried", "resumed"])
def test_lost_insert_response(
    peer: Peer,
    mode: str,
    proxy_for: Callable[[str], FaultProxy],
    client_for: Callable[..., Client],
) -> None:
    proxy, client, todo = _connect(peer, proxy_for, client_for)
    marker = f"ins-{uuid.uuid4().hex}"
    item = todo.insert({"text": marker, "n": 1})
    _push_losing_one_response(client, proxy, mode)
    [row] = _rows(peer, marker)  # exactly one row, never a second one
    assert row["id"] == item["id"] and row["deleted"] is False
    local = todo.get(item["id"])
    assert local is not None and local["version"] == row["version"]
    assert client.pending_operations == []


@pytest.mark.parametrize("mode", ["retried", "resumed"])
def test_lost_update_response(
    peer: Peer,
    mode: str,
    proxy_for: Callable[[str], FaultProxy],
    client_for: Callable[..., Client],
) -> None:
    proxy, client, todo = _connect(peer, proxy_for, client_for)
    marker = f"upd-{uuid.uuid4().hex}"
    item = todo.insert({"text": marker, "n": 1})
    client.push()
    before = todo.get(item["id"])
    assert before is not None
    todo.update({**before, "text": marker + "-edited", "n": 2})
    _push_losing_one_response(client, proxy, mode)
    [row] = _rows(peer, marker)
    assert (row["text"], row["n"]) == (marker + "-edited", 2)
    local = todo.get(item["id"])
    assert local is not None and local["version"] == row["version"] != before["version"]
    assert client.pending_operations == []


@pytest.mark.parametrize("mode", ["retried", "resumed"])
def test_lost_delete_response(
    peer: Peer,
    mode: str,
    proxy_for: Callable[[str], FaultProxy],
    client_for: Callable[..., Client],
) -> None:
    proxy, client, todo = _connect(peer, proxy_for, client_for)
    marker = f"del-{uuid.uuid4().hex}"
    item = todo.insert({"text": marker, "n": 1})
    client.push()
    todo.delete(item["id"])
    _push_losing_one_response(client, proxy, mode)
    [row] = _rows(peer, marker)
    assert row["deleted"] is True
    assert todo.get(item["id"]) is None and client.pending_operations == []
