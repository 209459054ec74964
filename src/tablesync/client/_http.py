"""Building protocol requests and reading responses: URLs, headers, pages, links, errors.

Pure functions over ``httpx.Request`` / ``httpx.Response``; nothing here sends anything.
"""

from __future__ import annotations

import contextlib
import operator
import re
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from .._exceptions import (
    AuthenticationError,
    ConflictError,
    NotFoundError,
    ServerError,
    UsageError,
)
from .._version import __version__
from ..protocol import ApiVersion, dumps, etag_from_version, is_valid_id, loads, version_from_etag
from ..protocol.headers import API_VERSION_HEADER, IDEMPOTENCY_HEADER, OPTIONS_HEADER

_LINK = re.compile(r'<?\s*(?P<url>[^<>;]*?)\s*>?\s*;\s*rel\s*=\s*"?(?P<rel>[\w.-]+)"?', re.I)
_USER_AGENT = f"tablesync/{__version__} (lang=Python)"
_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$")

Params = Sequence[tuple[str, str]]


def parse_api_version_arg(value: str | ApiVersion) -> ApiVersion:
    """Accept ``"3.0.0"``, ``"2.0.0"`` (or ``"3.0"``, ``3``) and ``ApiVersion`` members."""
    if isinstance(value, ApiVersion):
        return value
    text = str(value).strip()
    if re.fullmatch(r"[23](\.0(\.\d+)?)?", text):
        return ApiVersion(int(text[0]))
    raise UsageError(f"api_version must be '2.0.0' or '3.0.0', not {value!r}")


def check_table_name(name: str) -> str:
    """Validate a table name: letters, digits, ``_ . -``, not starting with a digit."""
    if not isinstance(name, str) or not _TABLE_NAME.match(name):
        raise UsageError(f"invalid table name {name!r}: use letters, digits, '_', '.' or '-'")
    return name


def check_item_id(item_id: object) -> str:
    """Validate an item id by the rules every official SDK shares."""
    if not is_valid_id(item_id):
        raise UsageError(f"invalid item id {item_id!r}")
    assert isinstance(item_id, str)
    return item_id


class RequestBuilder:
    """Makes the requests of one service: base URL, API version, standard headers."""

    def __init__(
        self, base_url: str, api_version: ApiVersion, headers: Mapping[str, str] | None = None
    ) -> None:
        url = httpx.URL(base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise UsageError(f"the service URL must be an absolute http(s) URL, not {base_url!r}")
        # A trailing slash makes "tables/x" resolve *under* any path prefix of the service.
        path = url.path if url.path.endswith("/") else url.path + "/"
        self.base_url = url.copy_with(path=path, query=None, fragment=None)
        self.api_version = api_version
        self.headers = dict(headers or {})
        # Set when a tablesync server advertises the batch push extension (``_batching``).
        self.batch_limit: int | None = None
        self._table_urls: dict[str, httpx.URL] = {}

    def table_url(self, table: str) -> httpx.URL:
        """``<base>/tables/<table>``, built once per table.

        httpx's URL join and parse were a third of the client's CPU in a batched push, where
        every insert's request and its batch entry ask for the same table URL.
        """
        url = self._table_urls.get(table)
        if url is None:
            url = self.base_url.join("tables/" + quote(check_table_name(table), safe=""))
            self._table_urls[table] = url
        return url

    def item_url(self, table: str, item_id: str) -> httpx.URL:
        """``<base>/tables/<table>/<id>``, the id percent-encoded exactly once."""
        return self.base_url.join(
            f"tables/{quote(check_table_name(table), safe='')}/{quote(item_id, safe='')}"
        )

    def build(
        self,
        method: str,
        url: httpx.URL,
        *,
        params: Params | None = None,
        json: Any = None,
        version: str | None = None,
        idempotency_key: str | None = None,
        query: bool = False,
    ) -> httpx.Request:
        """One request with the protocol headers; ``version`` becomes ``If-Match``."""
        headers = {
            API_VERSION_HEADER: self.api_version.header_value,
            "Accept": "application/json",
            # zstd first: a pull page costs both sides a fifth of gzip's time (docs/benchmarks.md).
            "Accept-Encoding": "zstd, gzip",
            "User-Agent": _USER_AGENT,
            **self.headers,
        }
        content = None
        if json is not None:
            content = dumps(json)
            headers["Content-Type"] = "application/json"
        if version:
            headers["If-Match"] = etag_from_version(version)
        if idempotency_key:
            headers[IDEMPOTENCY_HEADER] = idempotency_key
        if query and self.api_version is ApiVersion.V3:
            # A path-only nextLink survives reverse proxies that rewrite the host.
            headers[OPTIONS_HEADER] = "nextLink=path"
        return httpx.Request(
            method, url, params=list(params) if params else None, content=content, headers=headers
        )


# -- responses ---------------------------------------------------------------------------


def unbind_stream(response: httpx.Response) -> httpx.Response:
    """``response``, freed as soon as nobody holds it, once its body is read.

    httpx's clients bind a response's stream to the response (to time it on close): a
    reference cycle, so every response lived until the cyclic GC's oldest generation ran.
    Decoding a page promotes its response there, and that generation runs only after a
    quarter more long-lived objects appeared: a pull held a few dozen pages' bodies, more the
    larger its pages (a 1,000,000-row pull in 5,000-row pages peaked at 164 MB of RSS, 67 MB
    without them). A read, closed response never reads its stream again: the body alone
    replaces it.
    """
    if response.is_closed:
        with contextlib.suppress(httpx.ResponseNotRead):
            response.stream = httpx.ByteStream(response.content)
    return response


def decode_body(response: httpx.Response) -> Any:
    """The JSON body, the text when it is not JSON, or ``None`` when empty."""
    if not response.content:
        return None
    try:
        return loads(response.content)
    except ValueError:
        return response.text


def parse_ahead(response: httpx.Response) -> None:
    """:func:`parse_page` now, for ``parse_page`` to hand out later (``Prefetch.prepare``).

    ``Client`` runs it on the thread that fetched the next page, while the pull stores the
    current one (sqlite3 lets other threads run meanwhile): decoding and checking the page
    (its ids, its shape) then no longer delay the request for the page after. A response
    that is not a page is left to ``parse_page`` to report. The page is handed out once: the
    entry would otherwise keep it alive for as long as its response lives (a 1M-row pull
    peaked at 134 MB instead of 45 MB while responses lived until the cyclic GC, before
    :func:`unbind_stream`).
    """
    if response.is_success:
        with contextlib.suppress(ServerError):
            _PARSED[response] = parse_page(response)


_PARSED: weakref.WeakKeyDictionary[httpx.Response, Page] = weakref.WeakKeyDictionary()


def _etag_version(response: httpx.Response) -> str | None:
    etag = response.headers.get("ETag")
    if not etag:
        return None
    try:
        return version_from_etag(etag)
    except ValueError:
        return None


def as_item(body: Any, response: httpx.Response) -> dict[str, Any] | None:
    """``body`` as an item if it is an object with an id; the ETag wins over its version."""
    if not isinstance(body, dict) or not isinstance(body.get("id"), str):
        return None
    item: dict[str, Any] = dict(body)
    version = _etag_version(response)
    if version is not None:
        item["version"] = version
    return item


def item_from_response(response: httpx.Response) -> dict[str, Any]:
    """The item a successful single-item response carries; ``ServerError`` if it is not one."""
    item = as_item(decode_body(response), response)
    if item is None:
        raise ServerError(
            f"{_what(response)} answered {response.status_code} without an item in the body",
            status_code=response.status_code,
            body=decode_body(response),
        )
    return item


def _what(response: httpx.Response) -> str:
    request = response.request
    return f"{request.method} {request.url.copy_with(query=None)}"


def _message(body: Any) -> str:
    if isinstance(body, dict):
        for key in ("error", "message", "title", "detail"):
            if isinstance(body.get(key), str):
                return str(body[key])
    if isinstance(body, str) and body.strip():
        return body.strip()[:200]
    return "no detail"


def error_for_response(response: httpx.Response) -> ServerError:
    """The exception of the tree that matches an error response."""
    status, body = response.status_code, decode_body(response)
    message = f"{_what(response)} failed with {status}: {_message(body)}"
    if status in (409, 412):
        return ConflictError(
            message, status_code=status, body=body, server_item=as_item(body, response)
        )
    if status == 401:
        return AuthenticationError(message, status_code=status, body=body)
    if status in (404, 410):
        return NotFoundError(message, status_code=status, body=body)
    return ServerError(message, status_code=status, body=body)


def check(response: httpx.Response) -> httpx.Response:
    """Return ``response`` when it is a success (2xx), else raise its mapped error."""
    if not response.is_success:
        raise error_for_response(response)
    return response


# -- pages and links -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a query response."""

    items: list[dict[str, Any]]
    count: int | None
    """The filtered total, when it was asked for."""
    next_link: str | None
    """The server's next-page link (v3 ``nextLink`` or the v2 ``Link`` header), unresolved."""
    skipped: int = 0
    """Entries of the page that were not objects with an id."""
    source: bytes | None = None
    """The page's JSON text, when ``items`` are all its entries (``skipped`` is 0)."""
    path: str | None = None
    """Where the items are in ``source``, as a SQLite JSON path (``$.items``, ``$``)."""


def parse_page(response: httpx.Response) -> Page:
    """Read any page shape: bare array, ``{"results","count"}``, ``{"items","count","nextLink"}``.

    A lone object is one item (as the official .NET client reads it).
    """
    parsed = _PARSED.pop(response, None)  # handed out once, as decode_body's pages
    if parsed is not None:
        return parsed
    check(response)
    body = decode_body(response)
    count: Any = None
    link: Any = None
    path: str | None = None
    if isinstance(body, dict) and isinstance(body.get("items"), list):
        rows, count, link, path = body["items"], body.get("count"), body.get("nextLink"), "$.items"
    elif isinstance(body, dict) and isinstance(body.get("results"), list):
        rows, count, path = body["results"], body.get("count"), "$.results"
    elif isinstance(body, dict) and "id" in body:
        rows = [body]
    elif isinstance(body, list):
        rows, path = body, "$"
    else:
        raise ServerError(
            f"{_what(response)} answered {response.status_code} with a body that is not a page",
            status_code=response.status_code,
            body=body,
        )
    items = _items_with_ids(rows)
    if not isinstance(link, str) or not link.strip():
        link = next_link_header(response.headers.get_list("Link"))
    skipped = len(rows) - len(items)
    return Page(
        items=items,
        count=count if isinstance(count, int) and not isinstance(count, bool) else None,
        next_link=link,
        skipped=skipped,
        source=response.content if path is not None and not skipped else None,
        path=path,
    )


def _items_with_ids(rows: list[Any]) -> list[dict[str, Any]]:
    """The entries that are objects with a string id (C-level checks for the usual page)."""
    if set(map(type, rows)) == {dict} and set(map(type, values_of(rows, "id"))) == {str}:
        return rows
    return [row for row in rows if isinstance(row, dict) and isinstance(row.get("id"), str)]


def values_of(items: Sequence[dict[str, Any]], key: str) -> list[Any]:
    """``item.get(key)`` of each dict, in one C-level pass when every dict has ``key``.

    ``itemgetter`` is four times as fast as ``methodcaller("get", key)`` over a page (whose
    three or four passes per page cost the flow a tenth of a row's work).
    """
    try:
        return list(map(operator.itemgetter(key), items))
    except KeyError:
        return [item.get(key) for item in items]


def next_link_header(values: Sequence[str]) -> str | None:
    """The ``rel=next`` URL of ``Link`` headers, with or without angle brackets."""
    for value in values:
        for match in _LINK.finditer(value):
            if match["rel"].lower() == "next" and match["url"]:
                return match["url"]
    return None


def resolve_next_link(link: str, table_url: httpx.URL) -> httpx.URL:
    """The URL of the next page from an absolute URL, a path or a bare query string.

    A link that does not point at this table (the Node server's ``Link`` loses the port and
    the ``/tables/<name>`` path; a proxy may rewrite the host) keeps only its query, re-based
    onto the table URL: the query string is what carries the paging.
    """
    link = link.strip()
    head = link.split("?", 1)[0]
    if "://" in head:
        target = httpx.URL(link)
    elif link.startswith("/") or (head and "=" not in head and "?" in link):
        target = table_url.join(link)  # a path, absolute or relative to the table URL
    else:
        return table_url.copy_with(query=link.lstrip("?").encode())
    if _same_resource(target, table_url):
        return target
    return table_url.copy_with(query=target.query or None)


def _same_resource(url: httpx.URL, table_url: httpx.URL) -> bool:
    return (
        url.scheme == table_url.scheme
        and url.host == table_url.host
        and url.port == table_url.port
        and url.path.rstrip("/").lower() == table_url.path.rstrip("/").lower()
    )


def query_param(url: httpx.URL, name: str) -> str | None:
    """A query parameter of ``url`` (name matched case-insensitively)."""
    for key, value in url.params.multi_items():
        if key.lower() == name.lower():
            return value
    return None
