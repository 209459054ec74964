"""The async route handlers: read the request on the event loop, then run the database work.

Where that work runs (the loop itself for SQLite, a worker thread else) is ``_runner``'s call.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable

import anyio.to_thread
import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..protocol import ApiVersion
from ..protocol.headers import IDEMPOTENCY_HEADER
from ._access import Operation
from ._auth import Principal, principal_of
from ._errors import HTTPError, MethodNotAllowed, error_response
from ._idempotency import check_key
from ._paging import parse_options
from ._querying import run_query
from ._replies import Reply
from ._request import (
    api_version,
    checked_id,
    include_deleted,
    parse_json,
    path_segments,
    preconditions,
    read_body,
    zumo_options,
)
from ._runner import DatabaseRunner
from ._schema import TableState
from ._service import TableService, WriteRequest


class Endpoints:
    """The handlers of ``/tables/...`` and ``/health`` for one app."""

    def __init__(self, service: TableService) -> None:
        self.service = service
        self.runner = DatabaseRunner(service.schema.engine)

    def _version(self, request: Request, key: str) -> ApiVersion:
        # Only the cached state: this runs on the event loop, which must not wait on the DB.
        state = self.service.schema.cached(key)
        skip = state.config.skip_version_check if state is not None else False
        return api_version(request, skip_check=skip)

    async def _authorize(self, request: Request, key: str, operation: Operation) -> None:
        """Authenticate the caller (kept in ``request.state.principal``) and check access.

        Invalid credentials are a 401 on every table; then the table's rule for
        ``operation`` gives 401 (anonymous) or 403 (not allowed) before any other work.
        """
        principal = await self._authorize_caller(request)
        self.service.access(self.service.schema.cached(key)).check(operation, principal)

    async def _authorize_caller(self, request: Request) -> Principal | None:
        """Authenticate the caller (401 for invalid credentials); kept in the request state."""
        auth = self.service.settings.auth
        principal: Principal | None = None
        if auth is not None:
            if getattr(auth, "blocking", False):
                principal = await anyio.to_thread.run_sync(auth.authenticate, request)
            else:
                principal = auth.authenticate(request)
        request.state.principal = principal
        return principal

    async def collection(self, request: Request) -> Response:
        """``GET`` (query) and ``POST`` (insert) on ``/tables/{table}``."""
        table, _ = path_segments(request)
        key = table.lower()
        reading = request.method in ("GET", "HEAD")
        await self._authorize(request, key, "read" if reading else "insert")
        version = self._version(request, key)
        if reading:
            return await self._query(request, key, version)
        write = await self._write_request(request, key, version, None)
        return await self._write(self.service.insert, write)

    async def _query(self, request: Request, key: str, version: ApiVersion) -> Response:
        state = self.service.schema.cached(key)
        max_top = state.config.max_top if state is not None else 1000
        options = parse_options(request, max_top=max_top)
        reply = await self.runner.read(
            run_query, self.service, request, key, version, options,
            include_deleted=include_deleted(request),
            path_only="nextlink=path" in zumo_options(request),
        )  # fmt: skip
        return reply.to_response()

    async def item(self, request: Request) -> Response:
        """``GET``, ``PATCH``, ``PUT``, ``DELETE`` and v2 ``POST`` (undelete) on one item."""
        table, raw_id = path_segments(request)
        key = table.lower()
        method = request.method
        await self._authorize(request, key, _OPERATIONS.get(method, "update"))
        version = self._version(request, key)
        item_id = checked_id(raw_id or "")
        if method in ("GET", "HEAD"):
            reply = await self.runner.read(
                self.service.read, request, key, item_id, version, preconditions(request),
                include_deleted(request),
            )  # fmt: skip
            return reply.to_response()
        check_verb(method, version, item_id)
        write = await self._write_request(request, key, version, item_id)
        return await self._write(write_action(self.service, method, item_id), write)

    async def _write(
        self, action: Callable[[WriteRequest], Reply], write: WriteRequest
    ) -> Response:
        call = functools.partial(action, write)
        hooks = runs_user_hooks(self.service.schema.cached(write.key))
        return (await self.runner.write(call, user_hooks=hooks)).to_response()

    async def _write_request(
        self, request: Request, key: str, version: ApiVersion, item_id: str | None
    ) -> WriteRequest:
        body_bytes = await self._read_body(request, self.service.settings.max_body_bytes)
        optional = request.method in ("DELETE", "POST") and item_id is not None
        body = parse_json(request, body_bytes, allow_empty=optional)
        return WriteRequest(
            request=request,
            key=key,
            version=version,
            item_id=item_id,
            body=body,
            pre=preconditions(request),
            include_deleted=include_deleted(request),
            idempotency_key=idempotency_key(request),
        )

    async def _read_body(self, request: Request, max_bytes: int) -> bytes:
        timeout = self.service.settings.body_timeout_s
        try:
            # A slow sender holds no thread or connection (this runs on the event loop), but
            # it must not hold the request open for ever either.
            with anyio.fail_after(timeout):
                return await read_body(request, max_bytes)
        except TimeoutError:
            raise RequestTimeout(f"The request body did not arrive within {timeout:g} s") from None

    async def health(self, _request: Request) -> Response:
        """Liveness: the process answers."""
        return JSONResponse({"status": "ok"})

    async def ready(self, _request: Request) -> Response:
        """Readiness: 200 when the database answers within 5 s, else 503."""
        try:
            with anyio.fail_after(5):
                await self.runner.read(self._ping)
        except (TimeoutError, sa.exc.SQLAlchemyError, OSError) as exc:
            return error_response(503, f"The database is not answering: {type(exc).__name__}")
        return JSONResponse({"status": "ok"})

    def _ping(self) -> None:
        with self.service.schema.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))


class RequestTimeout(HTTPError):
    """Raised when the request body arrives too slowly (408)."""

    status_code = 408


def runs_user_hooks(state: TableState | None) -> bool:
    """Whether writes to the table call the application's code, which may block."""
    if state is None:
        return False
    config = state.config
    hooks = (config.insert_hook, config.before_commit, config.after_commit)
    return callable(config.conflict_policy) or any(hook is not None for hook in hooks)


def write_action(
    service: TableService, method: str, item_id: str | None
) -> Callable[[WriteRequest], Reply]:
    """The service call a write of ``method`` makes (an insert when there is no item id)."""
    if item_id is None:
        return service.insert
    actions: dict[str, Callable[[WriteRequest], Reply]] = {
        "PATCH": functools.partial(service.update, replace_all=False),
        "PUT": functools.partial(service.update, replace_all=True),
        "DELETE": service.delete,
        "POST": service.undelete,
    }
    return actions[method]


def check_verb(method: str, version: ApiVersion, item_id: str | None) -> None:
    """405 for an item write whose verb belongs to the other protocol version."""
    if (method == "PUT" and version is ApiVersion.V2) or (
        method == "POST" and item_id is not None and version is ApiVersion.V3
    ):
        raise MethodNotAllowed(_WRONG_VERB[method])


def idempotency_key(request: Request) -> str | None:
    """The request's ``Idempotency-Key``, checked and scoped to the caller."""
    return _scoped_key(request, check_key(request.headers.get(IDEMPOTENCY_HEADER)))


def _scoped_key(request: Request, key: str | None) -> str | None:
    """The idempotency key in the caller's own namespace.

    Keys are chosen by clients; without scoping, another user replaying a known key would be
    answered with the first user's stored response (their row).
    """
    principal = principal_of(request)
    if key is None or principal is None:
        return key
    scope = f"{principal.scheme}\x00{principal.user_id}\x00{key}".encode()
    return "u:" + hashlib.sha256(scope).hexdigest()


_OPERATIONS: dict[str, Operation] = {
    "GET": "read",
    "HEAD": "read",
    "PATCH": "update",
    "PUT": "update",
    "POST": "update",
    "DELETE": "delete",
}

_WRONG_VERB = {
    "PUT": "PUT is a protocol v3 verb; v2 clients update with PATCH",
    "POST": 'POST on an item (undelete) is a protocol v2 verb; v3 clients PATCH {"deleted": false}',
}
