"""The async route handlers: read the request on the event loop, then run the database work.

Where that work runs (the loop itself for SQLite, a worker thread else) is ``_runner``'s call.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..protocol import ApiVersion
from ._access import Operation
from ._config import DEFAULT_MAX_TOP
from ._errors import error_response
from ._item_reads import read_on_loop
from ._loop_reads import loop_reads_for
from ._paging import parse_options
from ._querying import query_on_loop, run_query
from ._replies import Reply
from ._request import (
    checked_id,
    include_deleted,
    parse_json,
    path_segments,
    preconditions,
    zumo_options,
)
from ._runner import DatabaseRunner
from ._service import TableService, WriteBatch, WriteRequest
from ._writes import (
    OPERATIONS,
    WriteCall,
    authenticate,
    check_verb,
    idempotency_key,
    read_limited_body,
    request_version,
    runs_user_hooks,
    write_action,
)


class Endpoints:
    """The handlers of ``/tables/...`` and ``/health`` for one app."""

    def __init__(self, service: TableService, *, loop_reads: bool = False) -> None:
        """The handlers of ``service``'s app.

        ``loop_reads``: await PostgreSQL queries on the event loop (``_loop_reads``) once the
        app's lifespan has opened their pool; only for an engine made from a URL, whose
        connection arguments the pool can repeat.
        """
        self.service = service
        self.runner = DatabaseRunner(service.schema.engine, service.write_together)
        self.loop_reads = loop_reads_for(service.schema.engine) if loop_reads else None

    async def _on_loop(
        self,
        read: Callable[..., Awaitable[Reply | None]],
        request: Request,
        *args: Any,
        **kwargs: Any,
    ) -> Reply | None:
        """``read``'s reply, awaited on the event loop (``_loop_reads``).

        ``None``: take a worker thread (no loop reads here, or ``read`` declined).
        """
        if self.loop_reads is None or not self.loop_reads.here():
            return None
        return await read(self.loop_reads, self.service, request, *args, **kwargs)

    async def _authorize(self, request: Request, key: str, operation: Operation) -> None:
        """Authenticate the caller (kept in ``request.state.principal``) and check access.

        Invalid credentials are a 401 on every table; then the table's rule for
        ``operation`` gives 401 (anonymous) or 403 (not allowed) before any other work.
        """
        principal = await authenticate(self.service, request)
        self.service.access(self.service.schema.cached(key)).check(operation, principal)

    async def collection(self, request: Request) -> Response:
        """``GET`` (query) and ``POST`` (insert) on ``/tables/{table}``."""
        table, _ = path_segments(request)
        key = table.lower()
        reading = request.method in ("GET", "HEAD")
        await self._authorize(request, key, "read" if reading else "insert")
        version = request_version(self.service, request, key)
        if reading:
            return await self._query(request, key, version)
        write = await self._write_request(request, key, version, None)
        return await self._write(self.service.insert, write, insert=True)

    async def _query(self, request: Request, key: str, version: ApiVersion) -> Response:
        state = self.service.schema.cached(key)
        max_top = state.config.max_top if state is not None else DEFAULT_MAX_TOP
        options = parse_options(request, max_top=max_top)
        shown = {
            "include_deleted": include_deleted(request),
            "path_only": "nextlink=path" in zumo_options(request),
        }
        reply = await self._on_loop(query_on_loop, request, key, version, options, **shown)
        if reply is None:
            reply = await self.runner.read(
                run_query, self.service, request, key, version, options, **shown
            )
        return reply.to_response()

    async def item(self, request: Request) -> Response:
        """``GET``, ``PATCH``, ``PUT``, ``DELETE`` and v2 ``POST`` (undelete) on one item."""
        table, raw_id = path_segments(request)
        key = table.lower()
        method = request.method
        await self._authorize(request, key, OPERATIONS.get(method, "update"))
        version = request_version(self.service, request, key)
        item_id = checked_id(raw_id or "")
        if method in ("GET", "HEAD"):
            shown = (key, item_id, version, preconditions(request), include_deleted(request))
            reply = await self._on_loop(read_on_loop, request, *shown)
            if reply is None:
                reply = await self.runner.read(self.service.read, request, *shown)
            return reply.to_response()
        check_verb(method, version, item_id)
        write = await self._write_request(request, key, version, item_id)
        return await self._write(write_action(self.service, method, item_id), write)

    async def _write(
        self, action: WriteCall, write: WriteRequest, *, insert: bool = False
    ) -> Response:
        job: Callable[[WriteBatch | None], Reply] = functools.partial(action, write)
        if runs_user_hooks(self.service.schema.cached(write.key)):
            # Application hooks may block or expect their write's own transaction.
            reply = await self.runner.write(functools.partial(job, None), user_hooks=True)
        else:
            # An insert's validation runs here, before its group's transaction takes the
            # turn other processes' writers wait for (``TableService.prepare_insert``).
            prepared = self.service.prepare_insert(write) if insert else None
            reply = await self.runner.write_grouped(prepared or job, write.key)
        return reply.to_response()

    async def _write_request(
        self, request: Request, key: str, version: ApiVersion, item_id: str | None
    ) -> WriteRequest:
        body_bytes = await read_limited_body(
            self.service, request, self.service.settings.max_body_bytes
        )
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
