"""Transient failures are retried with capped exponential backoff and ``Retry-After``; a network
that stays down aborts the push cleanly, and the next push resumes where it stopped.

Everything goes through the fault proxy to tablesync's server over real sockets.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tablesync import AsyncClient, Client, PushFailedError, PushStatus, RetryPolicy, SQLiteStore
from tests.faults.proxy import Delay, FaultProxy, Pass, Reset, Status, Truncate, writes
from tests.reliability.conftest import Peer

TRANSIENT = [
    pytest.param(Status(503, retry_after="0"), id="503-retry-after"),
    pytest.param(Status(429, retry_after="0"), id="429"),
    pytest.param(Status(502), id="502"),
    pytest.param(Status(504), id="504"),
    pytest.param(Reset(), id="reset"),
    pytest.param(Truncate(0.5), id="truncated"),
    pytest.param(Delay(0.5), id="timeout"),
]


@pytest.fixture
def v3_peer(tablesync_url: str) -> Peer:
    """tablesync's server, spoken to in v3."""
    return Peer("tablesync-v3", tablesync_url, "3.0.0")


def _policy(**kwargs: Any) -> RetryPolicy:
    return RetryPolicy(**{"backoff_base": 0.01, "backoff_max": 0.05, "jitter": False, **kwargs})


def _ids_on_server(peer: Peer, marker: str) -> list[str]:
    return sorted(r["id"] for r in peer.server_rows() if r.get("text", "").startswith(marker))


@pytest.mark.parametrize("fault", TRANSIENT)
def test_each_transient_failure_is_retried_with_the_same_key(
    v3_peer: Peer,
    fault: Any,
    proxy_for: Callable[[str], FaultProxy],
    client_for: Callable[..., Client],
) -> None:
    proxy = proxy_for(v3_peer.url)
    http = httpx.Client(timeout=httpx.Timeout(5, read=0.3))
    client = client_for(proxy.url, "3.0.0", retry=_policy(max_attempts=4), http=http)
    marker = f"tr-{uuid.uuid4().hex}"
    item = client.sync_table("todoitem").insert({"text": marker})
    proxy.plan.push(fault, fault, match=writes)  # two failures, then the third attempt passes
    result = client.push()
    http.close()
    assert result.ok and result.completed == 1
    deadline = time.monotonic() + 5  # a delayed request reaches the server after the retry
    while len([e for e in proxy.log if e.method == "POST"]) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    sent = [entry for entry in proxy.log if entry.method == "POST"]
    assert len(sent) == 3 and {entry.idempotency_key for entry in sent} == {sent[0].idempotency_key}
    assert _ids_on_server(v3_peer, marker) == [item["id"]]


def test_backoff_doubles_up_to_the_cap(
    v3_peer: Peer,
    proxy_for: Callable[[str], FaultProxy],
    client_for: Callable[..., Client],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slept: list[float] = []
    monkeypatch.setattr("tablesync.client._client.time.sleep", slept.append)
    proxy = proxy_for(v3_peer.url)
    policy = RetryPolicy(max_attempts=6, backoff_base=0.1, backoff_max=0.5, jitter=False)
    client = client_for(proxy.url, "3.0.0", retry=policy)
    client.sync_table("todoitem").insert({"text": f"bo-{uuid.uuid4().hex}"})
    proxy.plan.push(*[Status(502)] * 5, match=writes)
    assert client.push().ok
    assert slept == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5])


def test_jitter_spreads_each_sleep_in_its_upper_half(
    v3_peer: Peer,
    proxy_for: Callable[[str], FaultProxy],
    client_for: Callable[..., Client],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slept: list[float] = []
    monkeypatch.setattr("tablesync.client._client.time.sleep", slept.append)
    proxy = proxy_for(v3_peer.url)
    client = client_for(proxy.url, "3.0.0", retry=RetryPolicy(max_attempts=21, backoff_base=1))
    client.sync_table("todoitem").insert({"text": f"ji-{uuid.uuid4().hex}"})
    proxy.plan.push(*[Status(503)] * 20, match=writes)
    assert client.push().ok
    expected = [min(10.0, 2.0**n) for n in range(20)]
    assert all(e / 2 <= s <= e for s, e in zip(slept, expected, strict=True))
    assert len({round(s / e, 6) for s, e in zip(slept, expected, strict=True)}) > 10


@pytest.mark.parametrize(
    ("retry_after", "cap", "low", "high"),
    [
        pytest.param("1", 60.0, 0.9, 3.0, id="honoured"),
        pytest.param("30", 0.2, 0.0, 2.0, id="capped"),
    ],
)
def test_retry_after_is_honoured_up_to_its_cap(
    v3_peer: Peer,
    retry_after: str,
    cap: float,
    low: float,
    high: float,
    proxy_for: Callable[[str], FaultProxy],
    client_for: Callable[..., Client],
) -> None:
    proxy = proxy_for(v3_peer.url)
    client = client_for(proxy.url, "3.0.0", retry=_policy(retry_after_max=cap))
    client.sync_table("todoitem").insert({"text": f"ra-{uuid.uuid4().hex}"})
    proxy.plan.push(Status(503, retry_after=retry_after), match=writes)
    start = time.monotonic()
    assert client.push().ok
    assert low <= time.monotonic() - start <= high


def test_a_network_that_stays_down_aborts_and_the_next_push_resumes(
    v3_peer: Peer, proxy_for: Callable[[str], FaultProxy], client_for: Callable[..., Client]
) -> None:
    proxy = proxy_for(v3_peer.url)
    client = client_for(proxy.url, "3.0.0", retry=_policy(max_attempts=3))
    todo = client.sync_table("todoitem")
    marker = f"down-{uuid.uuid4().hex}"
    items = [todo.insert({"text": f"{marker}-{n}", "n": n}) for n in range(10)]
    proxy.plan.push(*[Pass()] * 4, match=writes)
    proxy.plan.push(*[Reset()] * 3, match=writes)  # the 5th write: all attempts fail
    with pytest.raises(PushFailedError) as failed:
        client.push()
    assert failed.value.result.status is PushStatus.CANCELLED_BY_NETWORK_ERROR
    assert failed.value.result.completed == 4
    left = [op.item_id for op in client.pending_operations]
    assert left == [item["id"] for item in items[4:]]
    proxy.down = True  # fully down: a push fails fast and changes nothing
    with pytest.raises(PushFailedError):
        client.push()
    assert [op.item_id for op in client.pending_operations] == left
    proxy.down = False
    before = len(proxy.log)
    assert client.push().completed == 6
    resumed = [e for e in proxy.log[before:] if e.method == "POST"]
    assert len(resumed) == 6  # nothing sent twice: it resumed at the 5th operation
    assert _ids_on_server(v3_peer, marker) == sorted(item["id"] for item in items)


def test_a_pull_retries_transient_failures(
    v3_peer: Peer, proxy_for: Callable[[str], FaultProxy], client_for: Callable[..., Client]
) -> None:
    proxy = proxy_for(v3_peer.url)
    writer = client_for(v3_peer.url, "3.0.0")
    marker = f"pull-{uuid.uuid4().hex}"
    for n in range(5):
        writer.table("todoitem").insert({"text": f"{marker}-{n}"})
    reader = client_for(proxy.url, "3.0.0", retry=_policy(max_attempts=6), page_size=2)
    proxy.plan.push(Status(503), Truncate(0.5), Reset(), Status(504), Reset())
    todo = reader.sync_table("todoitem")
    todo.pull(query_id="all")
    assert proxy.plan.pending == 0
    local = sorted(i["id"] for i in todo.query() if i["text"].startswith(marker))
    assert local == _ids_on_server(v3_peer, marker)


@pytest.mark.anyio
async def test_the_async_client_retries_and_resumes_the_same_way(
    v3_peer: Peer, proxy_for: Callable[[str], FaultProxy], tmp_path: Any
) -> None:
    proxy = proxy_for(v3_peer.url)
    marker = f"async-{uuid.uuid4().hex}"
    store = SQLiteStore(tmp_path / "async.db")
    async with AsyncClient(proxy.url, store=store, retry=_policy(max_attempts=2)) as client:
        todo = client.sync_table("todoitem")
        items = [await todo.insert({"text": f"{marker}-{n}"}) for n in range(3)]
        proxy.plan.push(Status(503), Pass(), Reset(), Reset(), match=writes)
        with pytest.raises(PushFailedError) as failed:
            await client.push()
        assert failed.value.result.completed == 1
        assert (await client.push()).completed == 2
    store.close()
    assert _ids_on_server(v3_peer, marker) == sorted(item["id"] for item in items)
