"""Responses with entities: ``ETag`` (always), ``Last-Modified`` (v3) and ``Location`` (201)."""

from __future__ import annotations

import email.utils
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response

from ..protocol import ApiVersion, dumps, etag_from_version, loads, parse_datetime
from ._errors import Gone, NotFound
from ._items import render
from ._schema import TableState


class Reply:
    """A response computed off the event loop: status, body bytes and headers.

    An entity reply renders its body and headers when first used (:func:`item_reply`): a
    write answered from a group commit is rendered after the commit, on the event loop,
    so the group holds SQLite's write lock (and the other processes' writers wait) for its
    SQL alone. Rendering was a sixth of that time.
    """

    __slots__ = ("_body", "_headers", "_render", "status")

    def __init__(
        self, status: int, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> None:
        self.status = status
        self._body = body
        self._headers = {} if headers is None else headers
        self._render: Callable[[], tuple[bytes, dict[str, str]]] | None = None

    @classmethod
    def later(cls, status: int, render: Callable[[], tuple[bytes, dict[str, str]]]) -> Reply:
        """A reply whose body and headers ``render`` makes when they are first asked for."""
        reply = cls(status)
        reply._render = render
        return reply

    @property
    def body(self) -> bytes | None:
        """The body bytes (``None``: no body)."""
        self._rendered()
        return self._body

    @property
    def headers(self) -> dict[str, str]:
        """The response headers."""
        self._rendered()
        return self._headers

    def _rendered(self) -> None:
        if self._render is not None:
            self._body, self._headers = self._render()
            self._render = None

    def to_response(self) -> Response:
        """The Starlette response for this reply."""
        body = self.body
        media_type = "application/json" if body is not None else None
        return Response(body, status_code=self.status, headers=self.headers, media_type=media_type)


def item_reply(
    status: int, state: TableState, row: Mapping[Any, Any], version: ApiVersion, request: Request
) -> Reply:
    """An entity response (also used for 409/412 bodies): ETag equals the quoted version."""

    def rendered() -> tuple[bytes, dict[str, str]]:
        item = render(state, row, version)
        return dumps(item), entity_headers(status, item, version, request, state)

    return Reply.later(status, rendered)


def entity_headers(
    status: int, item: Mapping[str, Any], version: ApiVersion, request: Request, state: TableState
) -> dict[str, str]:
    """``ETag``, v3 ``Last-Modified`` and, on 201, ``Location`` for an item in wire form."""
    headers = {"ETag": etag_from_version(str(item["version"]))}
    updated = item.get("updatedAt")
    if version is ApiVersion.V3 and updated is not None:
        when = parse_datetime(updated) if isinstance(updated, str) else updated
        headers["Last-Modified"] = email.utils.format_datetime(when, usegmt=True)
    if status == 201:
        headers["Location"] = item_location(request, state, str(item["id"]))
    return headers


def item_location(request: Request, state: TableState, item_id: str) -> str:
    """The absolute URL of an item."""
    from ._paging import origin

    return f"{origin(request)}/tables/{state.config.name}/{quote(item_id, safe='')}"


def stored_reply(
    status: int, body: bytes | None, version: ApiVersion, request: Request, state: TableState
) -> Reply:
    """Rebuild a recorded response (idempotent replay) with its entity headers."""
    headers = {"Idempotent-Replayed": "true"}
    if body is not None:
        item = loads(body)
        if isinstance(item, dict) and "version" in item:
            headers.update(entity_headers(status, item, version, request, state))
    return Reply(status, body, headers)


def missing(status: int, version: ApiVersion) -> NotFound | Gone:
    """The error for a missing (404) or soft-deleted (v3 410, v2 404) item."""
    if status == 410 and version is ApiVersion.V3:
        return Gone("The item was deleted; add __includedeleted=true to read it")
    return NotFound("The item does not exist")
