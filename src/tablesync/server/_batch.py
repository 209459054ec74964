"""``POST /tables/$batch``: many queued writes in one round trip (a tablesync extension).

Each operation is turned into the request it would have been on its own (same method, path,
auth and protocol headers, plus its own ``If-Match`` / ``Idempotency-Key``) and run through
the same ``TableService`` call as that single request, in order. The operations share one
transaction (``WriteBatch``), each in a savepoint that a failing operation rolls back, so a
batch has exactly the outcomes of the same requests sent one after another, with one commit.
A batch retried after its response was lost replays every result through the per-operation
keys; one that never committed simply runs again.
``$`` cannot start a table name, so the route never hides a table. See
docs/protocol-extensions.md, "Batch push".
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..protocol import dumps
from ._endpoints import Endpoints
from ._errors import BadRequest, HTTPError, PayloadTooLarge, database_message, logger
from ._paging import origin
from ._replies import Reply
from ._request import api_version, checked_id, include_deleted, parse_json, preconditions
from ._service import WriteBatch, WriteRequest
from ._writes import (
    OPERATIONS,
    authenticate,
    check_verb,
    idempotency_key,
    read_limited_body,
    request_version,
    runs_user_hooks,
    write_action,
)

BATCH_HEADER = "X-Tablesync-Batch"
"""Response header advertising the batch route and its operation limit."""
DEFAULT_MAX_OPERATIONS = 100
BODY_LIMIT_FACTOR = 4
"""A batch body may be this many times ``max_body_bytes``; each operation's body once."""
_METHODS = {"POST", "PATCH", "PUT", "DELETE"}
_OP_HEADERS = ("if-match", "if-none-match", "idempotency-key")
_DROPPED = frozenset({*_OP_HEADERS, "content-length", "content-encoding"})


@dataclass(frozen=True, slots=True)
class _Shared:
    """What every operation's request takes from the batch request, computed once."""

    headers: list[tuple[bytes, bytes]]
    prefix: str
    raw_prefix: bytes


@dataclass(frozen=True, slots=True)
class _Planned:
    """One validated operation of a batch, ready to run."""

    request: Request
    key: str
    item_id: str | None
    body: Any
    #: Its body's size must be checked: the batch is larger than one request may be.
    check_size: bool = False


class BatchEndpoint:
    """The ``POST /tables/$batch`` handler of one app."""

    def __init__(self, endpoints: Endpoints, max_operations: int) -> None:
        self.endpoints = endpoints
        self.service = endpoints.service
        self.max_operations = max_operations

    async def handle(self, request: Request) -> Response:
        """Run every operation in order; 200 with one result per operation."""
        await authenticate(self.service, request)
        api_version(request, skip_check=False)
        body_bytes = await read_limited_body(self.service, request, self._max_bytes())
        # Within the single-request limit, no operation's body can be over it.
        oversized = len(body_bytes) > self.service.settings.max_body_bytes
        planned = self._plan(request, parse_json(request, body_bytes), oversized=oversized)
        results = await self.endpoints.runner.write(
            functools.partial(self._execute, planned),
            user_hooks=any(runs_user_hooks(self.service.schema.cached(op.key)) for op in planned),
        )
        content = b'{"results":[' + b",".join(results) + b"]}"
        return Response(content, 200, {BATCH_HEADER: str(self.max_operations)}, "application/json")

    def _max_bytes(self) -> int:
        # A bounded multiple: the limit guards memory, and a client whose batch is too large
        # halves it (one operation still fits in a single request).
        return self.service.settings.max_body_bytes * BODY_LIMIT_FACTOR

    def _plan(self, request: Request, body: Any, *, oversized: bool) -> list[_Planned]:
        """Validate the whole batch before anything runs: a malformed batch writes nothing."""
        operations = body.get("operations") if isinstance(body, dict) else None
        if not isinstance(operations, list) or not operations:
            raise BadRequest('The batch body must be {"operations": [...]} with 1+ operations')
        if len(operations) > self.max_operations:
            raise BadRequest(
                f"The batch has {len(operations)} operations; the limit is {self.max_operations}"
            )
        shared = _shared(request)
        return [
            _plan_one(request, shared, index, op, oversized) for index, op in enumerate(operations)
        ]

    def _execute(self, planned: list[_Planned]) -> list[bytes]:
        """Run the operations in order, in one transaction; stop after a server-side failure.

        The operations before a failure that stops the batch are committed: their results
        are in the response. If the commit itself fails, nothing of the batch was written and
        the whole request fails (503), so no result claims a write that did not happen.
        """
        results: list[bytes] = []
        batch = self.service.batch(tables={op.key for op in planned})
        try:
            batch.expect_keys(_keys(planned))
            for op in planned:
                reply, stop = self._run_one(op, batch)
                results.append(_encode(reply))
                if stop:
                    break  # the client sends the rest again, one by one, with their keys
            batch.commit()
        finally:
            batch.close()
        return results

    def _run_one(self, op: _Planned, batch: WriteBatch) -> tuple[Reply, bool]:
        try:
            return self._dispatch(op, batch), False
        except HTTPError as exc:
            return _error_reply(exc.status_code, exc.message, exc.detail), False
        except sa.exc.DataError as exc:
            message = f"The database rejected the request: {database_message(exc)}"
            return _error_reply(400, message), False
        except (sa.exc.OperationalError, sa.exc.TimeoutError):
            return _error_reply(503, "The database is busy or unavailable; retry shortly"), True
        except Exception:
            logger.exception("unexpected error in a batch operation on %s", op.key)
            return _error_reply(500, "Internal server error; the failure was logged"), True

    def _dispatch(self, op: _Planned, batch: WriteBatch) -> Reply:
        """The single request's checks and service call, in the single request's order."""
        method = op.request.method
        limit = self.service.settings.max_body_bytes
        # Serialised only when the batch is over the limit, and only for the operations run.
        if op.check_size and op.body is not None and len(dumps(op.body)) > limit:
            raise PayloadTooLarge(f"The request body is larger than the limit of {limit} bytes")
        if op.item_id is not None:
            checked_id(op.item_id)
        state = self.service.schema.cached(op.key)
        operation = "insert" if op.item_id is None else OPERATIONS[method]
        self.service.access(state).check(operation, op.request.state.principal)
        version = request_version(self.service, op.request, op.key)
        check_verb(method, version, op.item_id)
        body = op.body
        if body is None:
            if op.item_id is None or method in ("PATCH", "PUT"):
                raise BadRequest("The request body is empty: send a JSON object")
            body = {}
        write = WriteRequest(
            request=op.request,
            key=op.key,
            version=version,
            item_id=op.item_id,
            body=body,
            pre=preconditions(op.request),
            include_deleted=include_deleted(op.request),
            idempotency_key=idempotency_key(op.request),
        )
        return write_action(self.service, method, op.item_id)(write, batch)


def _keys(planned: list[_Planned]) -> list[tuple[str, str]]:
    """The valid (scoped key, table) pairs of the operations.

    An invalid key is left out: it is its operation's own 400, answered when that one runs.
    """
    keys: list[tuple[str, str]] = []
    for op in planned:
        with contextlib.suppress(BadRequest):
            key = idempotency_key(op.request)
            if key is not None:
                keys.append((key, op.key))
    return keys


def _shared(request: Request) -> _Shared:
    """The batch request's headers (less each operation's own) and its path prefixes."""
    origin(request)  # kept in the scope, which every operation's request copies
    headers = [
        (name, value)
        for name, value in request.scope["headers"]
        if name.decode("latin-1") not in _DROPPED
    ]
    # Same prefix (a root path, a proxy's mount) as the batch; "$batch" becomes the item's path.
    prefix = str(request.scope["path"]).removesuffix("/$batch")
    raw_prefix = bytes(request.scope.get("raw_path") or prefix.encode()).split(b"?", 1)[0]
    raw_prefix = raw_prefix.removesuffix(b"/$batch").removesuffix(b"/%24batch")
    return _Shared(headers, prefix, raw_prefix)


def _plan_one(request: Request, shared: _Shared, index: int, op: Any, oversized: bool) -> _Planned:
    where = f"operations[{index}]"
    if not isinstance(op, dict):
        raise BadRequest(f"{where} must be an object")
    method, table, item_id = op.get("method"), op.get("table"), op.get("id")
    headers, body = op.get("headers", {}), op.get("body")
    if not isinstance(method, str) or method not in _METHODS:
        raise BadRequest(f"{where}.method must be one of POST, PATCH, PUT, DELETE")
    if not isinstance(table, str) or not table:
        raise BadRequest(f"{where}.table must be a table name")
    if item_id is not None and not isinstance(item_id, str):
        raise BadRequest(f"{where}.id must be a string")
    if item_id is None and method != "POST":
        raise BadRequest(f"{where}: {method} needs an id")
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise BadRequest(f"{where}.headers must be an object of strings")
    if body is not None and not isinstance(body, dict):
        raise BadRequest(f"{where}.body must be an object")
    sub = _sub_request(request, shared, method, headers, table, item_id)
    return _Planned(sub, table.lower(), item_id, body, check_size=oversized)


def _sub_request(
    request: Request,
    shared: _Shared,
    method: str,
    headers: Mapping[str, str],
    table: str,
    item_id: str | None,
) -> Request:
    """The request an operation would have been: its path, the batch's headers plus its own."""
    own = {name.lower(): value for name, value in headers.items()}
    kept = list(shared.headers)
    for name in _OP_HEADERS:
        if name in own:
            kept.append((name.encode("latin-1"), own[name].encode("utf-8")))
    tail = f"/{table}" + (f"/{item_id}" if item_id is not None else "")
    raw_tail = f"/{quote(table, safe='')}"
    raw_tail += f"/{quote(item_id, safe='')}" if item_id is not None else ""
    params = {"table": table, **({"item_id": item_id} if item_id is not None else {})}
    # The scope is copied shallowly: "state" (the authenticated principal) is shared.
    scope = {**request.scope, "method": method, "headers": kept, "path": shared.prefix + tail}
    scope.update(raw_path=shared.raw_prefix + raw_tail.encode(), path_params=params)
    return Request(scope)


def _encode(reply: Reply) -> bytes:
    head = dumps({"status": reply.status, "headers": reply.headers})
    if reply.body is None:
        return head
    return head[:-1] + b',"body":' + reply.body + b"}"


def _error_reply(status: int, message: str, detail: Mapping[str, Any] | None = None) -> Reply:
    return Reply(status, dumps({"status": status, "error": message, **(detail or {})}))


class AdvertiseBatch:
    """ASGI middleware: every ``/tables`` response names the batch limit in a header.

    Clients learn of the extension from whatever response they get first, without a probe;
    servers without it never send the header, so their clients never batch.
    """

    def __init__(self, app: ASGIApp, max_operations: int) -> None:
        self.app = app
        self.value = str(max_operations).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Add the header on ``/tables`` responses."""
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith("/tables"):
            await self.app(scope, receive, send)
            return

        async def advertise(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(name.lower() == b"x-tablesync-batch" for name, _ in headers):
                    headers.append((b"x-tablesync-batch", self.value))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, advertise)
