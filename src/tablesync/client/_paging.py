"""Turning a ``Query`` into request parameters, and walking every page of a query.

The official servers signal more pages in three ways: a v3 ``nextLink`` (absolute URL, path or
bare query), a v2 ``Link`` header (which the Node server sends with the wrong host and path),
or nothing at all (AMA's v2 mode), in which case a full page means "ask again with ``$skip``".
:class:`PageCursor` handles them all without knowing which server it talks to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from .._exceptions import ServerError, UnsupportedQueryError, UsageError
from ..protocol import ApiVersion
from ._http import Page, RequestBuilder, resolve_next_link

if TYPE_CHECKING:
    from ..odata import Query

_COUNT_PARAMS = ("$count", "$inlinecount")
_INCLUDE_DELETED = "__includedeleted"


@dataclass(frozen=True, slots=True)
class QueryParams:
    """A query's parameters with its paging taken apart."""

    params: list[tuple[str, str]]
    """Everything except ``$skip``, ``$top`` and the count flags."""
    skip: int = 0
    top: int | None = None

    def get(self, name: str) -> str | None:
        """A parameter by name (case-insensitive)."""
        return next((v for k, v in self.params if k.lower() == name.lower()), None)

    def without(self, *names: str) -> list[tuple[str, str]]:
        """The parameters minus ``names`` (case-insensitive)."""
        drop = {name.lower() for name in names}
        return [(k, v) for k, v in self.params if k.lower() not in drop]


def query_params(query: Query | str | None, version: ApiVersion) -> QueryParams:
    """Split ``query.to_params(version)`` into plain parameters and paging.

    A string is taken as a filter (``"done eq false"``).
    """
    query = as_query(query)
    if query is None:
        return QueryParams([])
    params: list[tuple[str, str]] = []
    skip, top = 0, None
    for key, value in query.to_params(version):
        lowered = key.lower()
        if lowered == "$skip":
            skip = _non_negative(key, value)
        elif lowered == "$top":
            top = _non_negative(key, value)
        elif lowered not in _COUNT_PARAMS:
            params.append((key, value))
    return QueryParams(params, skip, top)


def as_query(query: Query | str | None) -> Query | None:
    """Accept a ``Query``, a filter string (``"done eq false"``) or ``None``."""
    if query is None:
        return None
    if isinstance(query, str):
        from ..odata import Query

        return Query(query)
    if not callable(getattr(query, "to_params", None)):
        raise UsageError(f"expected a Query or a filter string, not {type(query).__name__}")
    return query


def _non_negative(key: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = -1
    if number < 0:
        raise UnsupportedQueryError(f"{key} must be a non-negative integer, not {value!r}")
    return number


def include_deleted_param(version: ApiVersion) -> tuple[str, str]:
    """The include-deleted flag; the Node v2 server only reads the ``__includeDeleted`` casing."""
    return ("__includeDeleted" if version is ApiVersion.V2 else _INCLUDE_DELETED, "true")


def count_param(version: ApiVersion) -> tuple[str, str]:
    """The "give me the total" flag of each protocol version."""
    return ("$inlinecount", "allpages") if version is ApiVersion.V2 else ("$count", "true")


class PageCursor:
    """Walks every page of one query, however the server pages.

    Call :meth:`request` for the next request (``None`` when done) and :meth:`advance` with
    the page that came back. With ``until_empty`` (pulls), a short page without a link does
    not end the walk: only an empty page does, as the official .NET client pulls, which also
    copes with servers that cap pages below ``$top`` without saying so.
    """

    def __init__(
        self,
        builder: RequestBuilder,
        table: str,
        params: Sequence[tuple[str, str]],
        *,
        page_size: int,
        skip: int = 0,
        top: int | None = None,
        until_empty: bool = False,
    ) -> None:
        self._builder = builder
        self._table_url = builder.table_url(table)
        self._params = list(params)
        self._page_size = page_size
        self._skip = skip
        self._remaining = top
        self._read = 0
        self._link: httpx.URL | None = None
        self._batch_top = 0
        self._batch_read = 0
        self._until_empty = until_empty
        self._last_ids: list[str] | None = None
        self.done = top == 0

    def request(self) -> httpx.Request | None:
        """The next request, or ``None`` once every page was read."""
        if self.done:
            return None
        if self._link is not None:
            return self._builder.build("GET", self._link, query=True)
        top = self._page_size
        if self._remaining is not None:
            top = min(top, self._remaining)
        self._batch_top, self._batch_read = top, 0
        params = [*self._params, ("$skip", str(self._skip + self._read)), ("$top", str(top))]
        return self._builder.build("GET", self._table_url, params=params, query=True)

    def advance(self, page: Page) -> None:
        """Take in the page that answered the last request."""
        received = len(page.items) + page.skipped
        self._check_moved(page)
        self._read += received
        self._batch_read += received
        if self._remaining is not None:
            self._remaining -= received
        if received == 0 or (self._remaining is not None and self._remaining <= 0):
            self.done = True
        elif page.next_link:
            link = resolve_next_link(page.next_link, self._table_url)
            # A link back to the page just read would loop forever: stop instead.
            self.done = link == self._link or (not link.query and self._link is None)
            self._link = link
        else:
            # No link: the server stopped linking. If it served all we asked for in the last
            # explicit request, more rows may remain: ask again from where we are.
            self._link = None
            self.done = self._batch_read < self._batch_top and not self._until_empty

    def _check_moved(self, page: Page) -> None:
        # A server that ignores $skip answers every page with the first one: stop, loudly.
        ids = [item["id"] for item in page.items]
        if ids and ids == self._last_ids:
            raise ServerError(
                f"GET {self._table_url} answered the same page twice while paging: the server "
                "seems to ignore $skip or its next link",
                status_code=200,
            )
        self._last_ids = ids
