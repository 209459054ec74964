"""``create_app``: the Starlette application serving ``/tables`` (protocol v2 and v3)."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .._exceptions import ODataSyntaxError, QueryError, ServerConfigError
from ..odata._typing import is_too_complex_error
from ._access import Access, secure_openapi
from ._auth import Authenticator, api_key_header
from ._batch import DEFAULT_MAX_OPERATIONS, AdvertiseBatch, BatchEndpoint
from ._compression import CompressionMiddleware
from ._config import ServerConfig, Table, resolve_tables
from ._endpoints import Endpoints
from ._engine import limit_statements, make_engine
from ._errors import (
    HTTPError,
    database_message,
    error_response,
    handle_http_error,
    handle_unexpected,
)
from ._openapi import openapi_document
from ._schema import Schema
from ._service import Settings, TableService

DEFAULT_DATABASE = "sqlite:///tablesync.db"
_IDEMPOTENCY_TTL = dt.timedelta(hours=24)
_BODY_TIMEOUT = dt.timedelta(seconds=30)
_ITEM_METHODS = ["GET", "PATCH", "PUT", "DELETE", "POST"]


def create_app(
    database: str | Engine | None = None,
    tables: Sequence[Table] = (),
    *,
    dynamic_schema: bool | None = None,
    strict_clock: bool = True,
    max_body_bytes: int | None = None,
    cors_origins: Sequence[str] = (),
    idempotency_ttl: dt.timedelta | None = None,
    auth: Authenticator | None = None,
    statement_timeout: dt.timedelta | None = None,
    body_timeout: dt.timedelta | None = None,
    config: ServerConfig | None = None,
    max_batch_operations: int = DEFAULT_MAX_OPERATIONS,
) -> Starlette:
    """Build the ASGI app serving ``/tables/{table}`` for protocol v2 and v3 clients.

    The schema is created (or completed) before this returns, so the app is ready to serve.

    Example:
        ```python
        from tablesync.server import Table, create_app

        app = create_app(
            "sqlite:///todo.db",
            tables=[Table("todoitem", columns={"text": "string", "complete": "boolean"})],
        )
        # uvicorn module:app
        ```

    Args:
        database: a database URL (``sqlite:///file.db``, ``postgresql://user@host/db``) or an
            engine; defaults to the config's, else ``sqlite:///tablesync.db``.
        tables: the tables to serve.
        dynamic_schema: unknown tables and new fields create tables and columns (development).
        strict_clock: stamp ``updatedAt`` with the per-table clock (keep ``True``).
        max_body_bytes: the largest request body (after gzip decoding); default 1 MiB.
        cors_origins: origins allowed to call the API from a browser.
        idempotency_ttl: how long ``Idempotency-Key`` responses are remembered (default:
            the config's, else 24 hours).
        auth: who the caller is: ``JWTAuth``, ``ApiKeyAuth``, ``AnyAuth`` or your own
            ``Authenticator``. With it, tables without ``access`` need an authenticated caller;
            without it, every caller is anonymous (docs/security.md).
        statement_timeout: on PostgreSQL, cancel any statement running longer (503).
        body_timeout: the longest a client may take to send a request body (then 408;
            default: the config's, else 30 seconds).
        config: settings from ``load_config``; explicit arguments take precedence.
        max_batch_operations: the most operations one ``POST /tables/$batch`` may carry
            (0 turns the batch extension off; docs/protocol-extensions.md).

    Raises:
        ServerConfigError: the settings are invalid or the database URL is unusable.
    """
    config = config or ServerConfig()
    dynamic = _first(dynamic_schema, config.dynamic_schema, False)
    auth = auth if auth is not None else config.auth
    _check_access([*config.tables, *tables], auth)
    timeout_ms = _first(
        None if statement_timeout is None else int(statement_timeout.total_seconds() * 1000),
        config.statement_timeout_ms,
        0,
    )
    ttl = _first(idempotency_ttl, config.idempotency_ttl, _IDEMPOTENCY_TTL)
    service = _build_service(
        database if database is not None else config.database or DEFAULT_DATABASE,
        [*config.tables, *tables],
        dynamic=dynamic,
        settings=Settings(
            strict_clock=strict_clock,
            max_body_bytes=_first(max_body_bytes, config.max_body_bytes, 1 << 20),
            idempotency_ttl_ms=int(ttl.total_seconds() * 1000),
            auth=auth,
            default_access=Access() if auth is not None else Access.public(),
            body_timeout_s=_first(body_timeout, config.body_timeout, _BODY_TIMEOUT).total_seconds(),
        ),
        statement_timeout_ms=timeout_ms,
    )
    if max_batch_operations < 0:
        raise ServerConfigError("max_batch_operations must not be negative")
    owns_engine = not isinstance(database, Engine)
    return _starlette(
        service,
        [*config.cors_origins, *cors_origins],
        owns_engine=owns_engine,
        max_batch=max_batch_operations,
    )


def _first(*values: Any) -> Any:
    return next(value for value in values if value is not None)


def _check_access(tables: Sequence[Table], auth: Authenticator | None) -> None:
    if auth is not None and not isinstance(auth, Authenticator):
        raise ServerConfigError("auth must have an authenticate(request) method")
    for table in tables:
        access = getattr(table, "access", None)
        if auth is None and access is not None and access.needs_authentication:
            raise ServerConfigError(
                f"table {table.name!r} needs authenticated callers but create_app has no auth"
            )


def _build_service(
    database: str | Engine,
    tables: Sequence[Table],
    *,
    dynamic: bool,
    settings: Settings,
    statement_timeout_ms: int = 0,
) -> TableService:
    if settings.max_body_bytes < 1:
        raise ServerConfigError("max_body_bytes must be positive")
    if statement_timeout_ms < 0:
        raise ServerConfigError("statement_timeout must not be negative")
    if settings.body_timeout_s <= 0:
        raise ServerConfigError("body_timeout must be positive")
    engine = make_engine(database)
    if statement_timeout_ms:
        limit_statements(engine, statement_timeout_ms)
    schema = Schema(engine, resolve_tables(tables), dynamic=dynamic)
    try:
        schema.setup()
    except sa.exc.SQLAlchemyError as exc:
        engine.dispose()
        raise ServerConfigError(f"cannot prepare the database schema: {exc}") from exc
    except BaseException:
        engine.dispose()
        raise
    return TableService(schema, settings)


def _starlette(
    service: TableService, cors_origins: Sequence[str], *, owns_engine: bool, max_batch: int = 0
) -> Starlette:
    endpoints = Endpoints(service, loop_reads=owns_engine)
    batch = [Route("/tables/$batch", BatchEndpoint(endpoints, max_batch).handle, methods=["POST"])]

    async def openapi(_request: Request) -> Response:
        states = service.schema.states()
        document = openapi_document(states, max_batch=max_batch)
        auth = service.settings.auth
        if auth is not None:
            access_of = {state.config.name: service.access(state) for state in states}
            document = secure_openapi(document, access_of, api_key_header(auth))
        return JSONResponse(document)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        if endpoints.loop_reads is not None:
            await endpoints.loop_reads.open()
        yield
        if endpoints.loop_reads is not None:
            await endpoints.loop_reads.close()
        endpoints.runner.close()
        if owns_engine:
            service.schema.engine.dispose()

    app = Starlette(
        routes=[
            *(batch if max_batch else []),
            Route("/tables/{table}", endpoints.collection, methods=["GET", "POST"]),
            Route("/tables/{table}/{item_id:path}", endpoints.item, methods=_ITEM_METHODS),
            Route("/health", endpoints.health, methods=["GET"]),
            Route("/health/ready", endpoints.ready, methods=["GET"]),
            Route("/openapi.json", openapi, methods=["GET"]),
        ],
        middleware=_middleware(cors_origins, max_batch),
        exception_handlers=_exception_handlers(),
        lifespan=lifespan,
    )
    app.state.tablesync = service
    return app


def _middleware(cors_origins: Sequence[str], max_batch: int = 0) -> list[Middleware]:
    middleware = [Middleware(CompressionMiddleware)]
    if max_batch:
        middleware.append(Middleware(AdvertiseBatch, max_operations=max_batch))
    if cors_origins:
        middleware.insert(
            0,
            Middleware(
                CORSMiddleware,
                allow_origins=list(cors_origins),
                allow_methods=["GET", "POST", "PATCH", "PUT", "DELETE", "OPTIONS"],
                allow_headers=["*"],
                expose_headers=["ETag", "Link", "Location", "Last-Modified", "X-Tablesync-Batch"],
            ),
        )
    return middleware


async def _query_error(_request: Request, exc: Exception) -> Response:
    detail = {"position": exc.position} if isinstance(exc, ODataSyntaxError) else None
    return error_response(400, f"Invalid query: {exc}", detail=detail)


async def _database_unavailable(_request: Request, exc: Exception) -> Response:
    if is_too_complex_error(exc):
        # Not the database's state but the request: retrying it would fail the same way.
        return error_response(400, "Invalid query: the filter is too complex for the database")
    return error_response(
        503, "The database is busy or unavailable; retry shortly", headers={"Retry-After": "1"}
    )


async def _data_error(_request: Request, exc: Exception) -> Response:
    return error_response(400, f"The database rejected the request: {database_message(exc)}")


def _exception_handlers() -> dict[Any, Any]:
    return {
        HTTPError: handle_http_error,
        StarletteHTTPException: handle_http_error,
        QueryError: _query_error,
        sa.exc.OperationalError: _database_unavailable,
        # No pooled connection freed up within pool_timeout (a small pool under load).
        sa.exc.TimeoutError: _database_unavailable,
        sa.exc.DataError: _data_error,
        Exception: handle_unexpected,
    }
