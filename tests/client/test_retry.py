"""Retries, Retry-After and token refresh, through the real drivers over MockTransport."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tablesync import (
    AsyncClient,
    AuthenticationError,
    Client,
    RetryPolicy,
    ServerError,
    TransportError,
)
from tablesync.client import _async_client, _client
from tablesync.client._retry import parse_retry_after

Handler = Callable[[httpx.Request], httpx.Response]
ITEM = {"id": "a", "text": "x", "version": "v1"}


class Script:
    """Answers requests from a list of responses (or exceptions to raise), recording them."""

    def __init__(self, *steps: Any) -> None:
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []
        self.headers: list[dict[str, str]] = []  # as sent: retries reuse the request object

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.headers.append(dict(request.headers))
        step = self.steps.pop(0) if len(self.steps) > 1 else self.steps[0]
        if isinstance(step, Exception):
            raise step
        status, headers = step if isinstance(step, tuple) else (step, {})
        body = ITEM if status < 300 else {"error": "nope"}
        return httpx.Response(status, json=body, headers=headers)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    recorded: list[float] = []
    monkeypatch.setattr(_client.time, "sleep", recorded.append)
    return recorded


def client(script: Script, **kwargs: Any) -> Client:
    return Client(
        "http://server", http=httpx.Client(transport=httpx.MockTransport(script)), **kwargs
    )


def test_transient_statuses_are_retried_with_backoff(sleeps: list[float]) -> None:
    script = Script(503, 502, 200)
    policy = RetryPolicy(backoff_base=0.5, jitter=False)
    with client(script, retry=policy) as c:
        assert c.table("todo").get("a") == ITEM
    assert len(script.requests) == 3 and sleeps == [0.5, 1.0]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param("3", 3.0, id="seconds"),
        pytest.param("120", 60.0, id="capped"),
        pytest.param("soon", 0.2, id="unreadable-backoff"),
    ],
)
def test_retry_after_is_honoured(sleeps: list[float], header: str, expected: float) -> None:
    script = Script((429, {"Retry-After": header}), 200)
    with client(script, retry=RetryPolicy(jitter=False)) as c:
        c.table("todo").get("a")
    assert sleeps == [expected]


def test_retry_after_as_an_http_date() -> None:
    now = dt.datetime(2024, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
    assert parse_retry_after("Mon, 01 Jan 2024 12:00:05 GMT", now=now) == 5.0
    assert parse_retry_after("Mon, 01 Jan 2024 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after(None) is None


def test_retries_stop_at_max_attempts_and_return_the_last_status(sleeps: list[float]) -> None:
    script = Script(503)
    with (
        client(script, retry=RetryPolicy(max_attempts=3, jitter=False)) as c,
        pytest.raises(Exception) as info,
    ):
        c.table("todo").get("a")
    assert getattr(info.value, "status_code", None) == 503
    assert len(script.requests) == 3 and len(sleeps) == 2


def test_transport_errors_are_retried_then_raised(sleeps: list[float]) -> None:
    script = Script(httpx.ConnectError("refused"))
    with (
        client(script, retry=RetryPolicy(max_attempts=4)) as c,
        pytest.raises(TransportError, match="after 4 attempts"),
    ):
        c.table("todo").get("a")
    assert len(script.requests) == 4 and len(sleeps) == 3


def test_a_read_timeout_is_retried_and_can_recover(sleeps: list[float]) -> None:
    script = Script(httpx.ReadTimeout("slow"), 200)
    with client(script) as c:
        assert c.table("todo").get("a") == ITEM
    assert len(sleeps) == 1


def test_non_transient_failures_are_not_retried(sleeps: list[float]) -> None:
    script = Script(httpx.UnsupportedProtocol("gopher"))
    with client(script) as c, pytest.raises(TransportError, match="after 1 attempt"):
        c.table("todo").get("a")
    script = Script(400)
    with client(script) as c, pytest.raises(ServerError):
        c.table("todo").get("a")
    assert len(script.requests) == 1 and sleeps == []


def test_retries_can_be_disabled(sleeps: list[float]) -> None:
    script = Script(503)
    with client(script, retry=False) as c, pytest.raises(ServerError):
        c.table("todo").get("a")
    assert len(script.requests) == 1


def test_a_token_provider_is_sent_as_bearer_and_refreshed_once_on_401() -> None:
    calls: list[bool] = []

    def provider(refresh: bool = False) -> str:
        calls.append(refresh)
        return "fresh" if refresh else "stale"

    script = Script(401, 200, 200)
    with client(script, auth=provider) as c:
        c.table("todo").get("a")
        c.table("todo").get("a")
    assert [h["authorization"] for h in script.headers] == [
        "Bearer stale",
        "Bearer fresh",
        "Bearer fresh",
    ]
    assert calls == [False, True]  # the fresh token is cached


def test_a_second_401_gives_up_with_authentication_error() -> None:
    script = Script(401)
    with (
        client(script, auth=lambda refresh=False: "t", token_header="X-ZUMO-AUTH") as c,
        pytest.raises(AuthenticationError),
    ):
        c.table("todo").get("a")
    assert [h["x-zumo-auth"] for h in script.headers] == ["t", "t"]


def test_an_httpx_auth_is_passed_through() -> None:
    script = Script(200)
    with client(script, auth=httpx.BasicAuth("u", "p")) as c:
        c.table("todo").get("a")
    assert script.requests[0].headers["Authorization"].startswith("Basic ")


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"max_attempts": 0}, id="no-attempts"),
        pytest.param({"backoff_base": -1}, id="negative-backoff"),
    ],
)
def test_bad_policies_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)


def test_jitter_stays_within_half_and_full_delay() -> None:
    policy = RetryPolicy(backoff_base=1.0, backoff_max=4.0)
    for attempt in range(1, 6):
        full = min(4.0, 2.0 ** (attempt - 1))
        assert full / 2 <= policy.delay(attempt) <= full


@pytest.mark.anyio
async def test_the_async_driver_retries_and_refreshes(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(_async_client.anyio, "sleep", fake_sleep)

    async def provider(refresh: bool = False) -> str:
        return "fresh" if refresh else "stale"

    script = Script((503, {"Retry-After": "2"}), 401, 200)
    http = httpx.AsyncClient(transport=httpx.MockTransport(script))
    async with AsyncClient("http://server", http=http, auth=provider) as c:
        assert await c.table("todo").get("a") == ITEM
    await http.aclose()
    assert slept == [2.0]
    assert [h["authorization"] for h in script.headers] == [
        "Bearer stale",
        "Bearer stale",
        "Bearer fresh",
    ]
