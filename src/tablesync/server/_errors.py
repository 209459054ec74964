"""HTTP errors and the one JSON shape they take: ``{"status": <int>, "error": "<message>"}``.

Every error class carries its status as a class attribute. Conflicts (409/412) are not errors
here: they answer with the server's entity (see ``_responses``).
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from ..protocol import dumps

logger = logging.getLogger("tablesync.server")


class HTTPError(Exception):
    """Raised by request handling to answer with an error status and the JSON error body.

    Attributes:
        status_code: the HTTP status (class attribute).
        message: what went wrong, phrased so a person can act on it.
        detail: extra keys merged into the body (for example ``position``).
        headers: extra response headers.
    """

    status_code: ClassVar[int] = 400

    def __init__(
        self,
        message: str,
        *,
        detail: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail or {}
        self.headers = headers or {}


class BadRequest(HTTPError):
    """Raised when the request is malformed or invalid (400)."""

    status_code = 400


class NotFound(HTTPError):
    """Raised when the table or item does not exist (404)."""

    status_code = 404


class MethodNotAllowed(HTTPError):
    """Raised when the route exists but not for this method or protocol version (405)."""

    status_code = 405


class Gone(HTTPError):
    """Raised when the item was soft-deleted (410, protocol v3)."""

    status_code = 410


class PayloadTooLarge(HTTPError):
    """Raised when the request body, or its decompressed form, exceeds the limit (413)."""

    status_code = 413


class UnsupportedMediaType(HTTPError):
    """Raised when the body's content type or encoding is not supported (415)."""

    status_code = 415


class UnprocessableEntity(HTTPError):
    """Raised when an ``Idempotency-Key`` is reused for a different request (422)."""

    status_code = 422


class ServiceUnavailable(HTTPError):
    """Raised when the database cannot be reached or stays locked (503)."""

    status_code = 503


def database_message(exc: Exception) -> str:
    """The first line of a database error's own message (at most 200 characters), for a 400."""
    return str(getattr(exc, "orig", exc)).splitlines()[0][:200]


def error_response(
    status: int,
    message: str,
    *,
    detail: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """The JSON error response every 4xx/5xx that is not a conflict uses."""
    body = {"status": status, "error": message, **(detail or {})}
    return Response(dumps(body), status_code=status, headers=headers, media_type="application/json")


async def handle_http_error(_request: Request, exc: Exception) -> Response:
    """Render an ``HTTPError`` (or Starlette's own 404/405) in the one error shape."""
    if isinstance(exc, HTTPError):
        return error_response(exc.status_code, exc.message, detail=exc.detail, headers=exc.headers)
    assert isinstance(exc, StarletteHTTPException)
    message = {404: "Not found: no such route", 405: "Method not allowed on this route"}.get(
        exc.status_code, str(exc.detail)
    )
    return error_response(exc.status_code, message, headers=dict(exc.headers or {}))


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    """Log an unexpected exception and answer 500 with a generic body (no internals leak)."""
    logger.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "Internal server error; the failure was logged")
