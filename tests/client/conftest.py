"""Fixtures of the sync-side client tests: a real store, a SyncContext, and a flow driver."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tablesync.client._context import SyncContext
from tablesync.client._flows import Flow, Prefetch
from tablesync.client._http import RequestBuilder
from tablesync.client._sqlite_store import SQLiteStore
from tablesync.protocol import ApiVersion

Responder = Callable[[httpx.Request], "httpx.Response | Exception"]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    db = SQLiteStore(tmp_path / "client.db")
    yield db
    db.close()


@pytest.fixture
def context(store: SQLiteStore) -> SyncContext:
    return SyncContext(store)


def builder(
    version: ApiVersion = ApiVersion.V3, base: str = "http://server:8080"
) -> RequestBuilder:
    return RequestBuilder(base, version)


def reply(
    request: httpx.Request,
    status: int = 200,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """A response to ``request``; a dict body with a version gets a matching ETag."""
    headers = dict(headers or {})
    if isinstance(body, dict) and isinstance(body.get("version"), str):
        headers.setdefault("ETag", f'"{body["version"]}"')
    if body is None:
        return httpx.Response(status, headers=headers, request=request)
    return httpx.Response(status, json=body, headers=headers, request=request)


@dataclass
class Driven:
    result: Any
    requests: list[httpx.Request] = field(default_factory=list)


def drive(flow: Flow[Any], respond: Responder) -> Driven:
    """Run a sans-I/O flow against ``respond`` (a response, or an exception to throw in).

    A ``Prefetch`` is answered at once, as a server would while the flow goes on, and the
    answer is handed in when the flow yields that request; ``respond`` therefore sees the
    store as it is before the flow stores the page in hand.
    """
    driven = Driven(None)
    ahead: tuple[httpx.Request, httpx.Response | Exception] | None = None
    try:
        step = next(flow)
        for _ in range(1000):
            if isinstance(step, Prefetch):
                assert ahead is None, "a second prefetch before the first was read"
                driven.requests.append(step.request)
                ahead = step.request, respond(step.request)
                step = next(flow)
                continue
            if ahead is not None:
                assert ahead[0] is step, "the flow prefetched one request and asked for another"
                outcome, ahead = ahead[1], None
            else:
                driven.requests.append(step)
                outcome = respond(step)
            is_error = isinstance(outcome, Exception)
            step = flow.throw(outcome) if is_error else flow.send(outcome)  # type: ignore[arg-type]
        raise AssertionError("the flow made more than 1000 requests")
    except StopIteration as done:
        driven.result = done.value
        return driven


def drive_raising(flow: Flow[Any], respond: Responder) -> tuple[BaseException, list[httpx.Request]]:
    """Like :func:`drive`, for a flow that must raise: returns the exception and requests."""
    seen: list[httpx.Request] = []

    def recording(request: httpx.Request) -> httpx.Response | Exception:
        seen.append(request)
        return respond(request)

    with pytest.raises(Exception) as info:
        drive(flow, recording)
    return info.value, seen
