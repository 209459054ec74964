"""The batch push extension, client side: pure helpers that build and read ``$batch`` requests.

A tablesync server names its batch limit in ``X-Tablesync-Batch`` on every ``/tables``
response; servers without the extension never do, so against them the push keeps sending one
request per operation. A batch carries each operation's own request (method, table, id,
``If-Match``, ``Idempotency-Key``, body) and its response one result per operation, which
the push reads exactly as it would the single response. See docs/protocol-extensions.md.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any

import httpx

from ..protocol import dumps, loads
from ..protocol.headers import IDEMPOTENCY_HEADER
from ._conflicts import ClientWins, ConflictResolver, OperationOutcome, ServerWins, SyncHandler
from ._http import RequestBuilder
from ._store import Operation

BATCH_HEADER = "X-Tablesync-Batch"
MAX_BATCH = 1000
"""The most operations the client puts in one batch, whatever a server advertises."""
BATCH_HANDLERS = (SyncHandler, ServerWins, ClientWins, ConflictResolver)
"""Handlers whose hooks hold per operation when its first request travels in a batch.

A subclass may run code before it sends (reading state an earlier operation's write-back
changes), so it gets one request per operation.
"""
_WRITE_METHODS = ("POST", "PATCH", "PUT", "DELETE")
_SUB_HEADERS = ("If-Match", IDEMPOTENCY_HEADER)

OutcomeFlow = Generator[httpx.Request, httpx.Response, OperationOutcome]


def note_batch_support(builder: RequestBuilder, response: httpx.Response) -> None:
    """Remember the batch limit a tablesync server advertised in ``response``."""
    value = response.headers.get(BATCH_HEADER)
    if value is None:
        return
    limit = int(value) if value.strip().isdigit() else 0
    builder.batch_limit = min(limit, MAX_BATCH) if limit > 1 else None


def batch_size(builder: RequestBuilder, handler: SyncHandler) -> int:
    """How many operations the next step of the push may send at once (1: no batching)."""
    if builder.batch_limit is None or type(handler) not in BATCH_HANDLERS:
        return 1
    return builder.batch_limit


def batch_entry(builder: RequestBuilder, op: Operation, request: httpx.Request) -> Any:
    """``request`` (the operation's first) as a batch entry, or ``None`` if it cannot be one."""
    if request.method not in _WRITE_METHODS:
        return None
    inserting = request.method == "POST"
    expected = builder.table_url(op.table) if inserting else builder.item_url(op.table, op.item_id)
    if request.url != expected:
        return None
    entry: dict[str, Any] = {
        "method": request.method,
        "table": op.table,
        "headers": {
            name: request.headers[name] for name in _SUB_HEADERS if name in request.headers
        },
    }
    if not inserting:
        entry["id"] = op.item_id
    if request.content:
        entry["body"] = loads(request.content)
    return entry


def batch_request(builder: RequestBuilder, entries: Sequence[Any]) -> httpx.Request:
    """The ``POST /tables/$batch`` request carrying ``entries``."""
    return builder.build(
        "POST", builder.base_url.join("tables/$batch"), json={"operations": entries}
    )


def batch_responses(
    builder: RequestBuilder, response: httpx.Response, requests: Sequence[httpx.Request]
) -> list[httpx.Response | None]:
    """The response each request would have had; ``None`` where it must be sent on its own.

    A result missing (the server stopped after a failure) or a 5xx goes again by itself,
    with its retries; a batch the server refused (an older server, too large) disables or
    shrinks batching and sends every operation on its own.
    """
    results = _results(response)
    if results is None:
        _back_off(builder, response.status_code, len(requests))
        return [None] * len(requests)
    answered: list[httpx.Response | None] = [
        _as_response(result, request) for result, request in zip(results, requests, strict=False)
    ]
    return answered + [None] * (len(requests) - len(answered))


def _results(response: httpx.Response) -> list[Any] | None:
    if response.status_code != 200:
        return None
    try:
        body = loads(response.content)
    except ValueError:
        return None
    results = body.get("results") if isinstance(body, dict) else None
    return results if isinstance(results, list) else None


def _back_off(builder: RequestBuilder, status: int, size: int) -> None:
    if status == 413 and size > 2:
        builder.batch_limit = size // 2
    elif status in (400, 404, 405, 413):
        builder.batch_limit = None


def _as_response(result: Any, request: httpx.Request) -> httpx.Response | None:
    status = result.get("status") if isinstance(result, dict) else None
    if not isinstance(status, int) or isinstance(status, bool) or not 200 <= status < 500:
        return None
    headers = result.get("headers")
    headers = {str(k): str(v) for k, v in headers.items()} if isinstance(headers, dict) else {}
    content = dumps(result["body"]) if "body" in result else b""
    return httpx.Response(status, headers=headers, content=content, request=request)


def drive(flow: OutcomeFlow, pending: httpx.Request) -> OutcomeFlow:
    """Send ``pending`` (already yielded by ``flow``) and everything after it, as ``yield from``."""
    while True:
        try:
            response = yield pending
        except GeneratorExit:
            flow.close()
            raise
        except Exception as exc:
            step = step_of(flow.throw, exc)
        else:
            step = step_of(flow.send, response)
        if not isinstance(step, httpx.Request):
            return step  # type: ignore[no-any-return]
        pending = step


def step_of(call: Any, value: Any) -> Any:
    """``call(value)`` on a flow: the next request it yields, or the value it returned."""
    try:
        return call(value)
    except StopIteration as done:
        return done.value
