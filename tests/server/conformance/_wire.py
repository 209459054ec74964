"""Wire helpers for the conformance suite: versioned requests, paging, and shape assertions.

Everything here is written from protocol.md and the server API file, not from the server's code:
the suite is the project's independent statement of what the wire must look like.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from tablesync.protocol import etag_from_version

V2 = "2.0.0"
V3 = "3.0.0"
HEADER = "ZUMO-API-VERSION"
MAX_PAGES = 40  # bounds every paging loop: no table here needs more than ~10 pages

#: protocol.md §2.3: ``…sss`` then ``Z`` (NS, NODE, CTK) or ``+00:00`` (AMA), at ms precision.
UPDATED_AT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}(Z|\+00:00)$")
#: protocol.md §1.2: ``Link: {url}; rel=next``, the URL NOT in angle brackets.
LINK_NEXT = re.compile(r"^\s*(?P<url>[^<>\s;]+)\s*;\s*rel\s*=\s*\"?next\"?\s*$")


def api_version(version: str) -> str:
    """The ``ZUMO-API-VERSION`` value for ``"2"`` or ``"3"``."""
    return V2 if version == "2" else V3


def call(
    http: httpx.Client,
    method: str,
    url: str,
    version: str | None,
    *,
    headers: Mapping[str, str] | None = None,
    json: Any = None,
    content: bytes | str | None = None,
) -> httpx.Response:
    """Send one request with ``ZUMO-API-VERSION`` for ``version`` (``None``: no header)."""
    sent: dict[str, str] = {"Accept": "application/json"}
    if version is not None:
        sent[HEADER] = api_version(version)
    sent.update(headers or {})
    if json is not None:
        return http.request(method, url, headers=sent, json=json)
    if content is not None:
        sent.setdefault("Content-Type", "application/json")
        return http.request(method, url, headers=sent, content=content)
    return http.request(method, url, headers=sent)


def item_url(table: str, item_id: str) -> str:
    """The item route with the id percent-encoded once, as NC's EscapeDataString does."""
    return f"/tables/{table}/{quote(item_id, safe='')}"


def new_id(prefix: str = "conf") -> str:
    """A fresh id, so tests that write never touch each other's rows."""
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def etag_of(body: Mapping[str, Any]) -> str:
    """The ETag a single-item response must carry for ``body`` (protocol.md §2.2)."""
    return etag_from_version(str(body["version"]))


def describe(response: httpx.Response) -> str:
    """A short text for assertion messages: status and the start of the body."""
    request = response.request
    return f"{request.method} {request.url} -> {response.status_code} {response.text[:400]}"


def assert_status(response: httpx.Response, *expected: int) -> None:
    """Fail with the request and body when the status is not one of ``expected``."""
    assert response.status_code in expected, describe(response)


def assert_json(response: httpx.Response) -> Any:
    """Assert a JSON content type (clients send ``Accept: application/json``) and decode."""
    content_type = response.headers.get("content-type", "")
    assert content_type.split(";")[0].strip().lower() == "application/json", describe(response)
    return response.json()


def assert_error(response: httpx.Response, *expected: int) -> dict[str, Any]:
    """Assert an error status and the one error shape ``{"status": int, "error": str}``."""
    assert_status(response, *expected)
    body = assert_json(response)
    assert isinstance(body, dict), describe(response)
    assert body.get("status") == response.status_code, describe(response)
    assert isinstance(body.get("error"), str) and body["error"].strip(), describe(response)
    return body


def assert_entity(response: httpx.Response, version: str, *expected: int) -> dict[str, Any]:
    """Assert a single-item response: status, ETag == quoted version, system properties."""
    assert_status(response, *expected)
    body = assert_json(response)
    assert isinstance(body, dict) and isinstance(body.get("id"), str), describe(response)
    assert isinstance(body.get("version"), str) and body["version"], describe(response)
    assert response.headers.get("etag") == etag_of(body), describe(response)
    assert UPDATED_AT.match(str(body.get("updatedAt"))), describe(response)
    assert isinstance(body.get("deleted"), bool), describe(response)
    if version == "2":
        assert UPDATED_AT.match(str(body.get("createdAt"))), describe(response)
    else:
        # server_api.md: createdAt is v2 only on the wire (AMA ITableData has none, §2.1).
        assert "createdAt" not in body, describe(response)
    return body


def get_json(
    http: httpx.Client, url: str, version: str, headers: Mapping[str, str] | None = None
) -> Any:
    """GET ``url``, require a 200, and return the decoded body."""
    response = call(http, "GET", url, version, headers=headers)
    assert_status(response, 200)
    return response.json()


def next_link_v2(response: httpx.Response) -> str | None:
    """The URL of a v2 ``Link: url; rel=next`` header, asserting its bracket-less form."""
    link = response.headers.get("link")
    if link is None:
        return None
    match = LINK_NEXT.match(link)
    assert match is not None, f"Link header not in the NC form 'url; rel=next': {link!r}"
    return match["url"]


def page_items(version: str, response: httpx.Response) -> list[dict[str, Any]]:
    """The rows of one query page in either version's shape."""
    assert_status(response, 200)
    body = assert_json(response)
    if version == "3":
        assert isinstance(body, dict) and set(body) >= {"items", "count", "nextLink"}, describe(
            response
        )
        items: list[dict[str, Any]] = body["items"]
    elif isinstance(body, list):
        items = body
    else:
        assert isinstance(body, dict) and set(body) == {"results", "count"}, describe(response)
        items = body["results"]
    assert isinstance(items, list), describe(response)
    return items


def next_url(version: str, response: httpx.Response) -> str | None:
    """The next page's URL: v3 ``nextLink`` in the body, v2 the ``Link`` header."""
    if version == "3":
        link = response.json()["nextLink"]
        assert link is None or isinstance(link, str), describe(response)
        return link
    return next_link_v2(response)


def fetch_pages(
    http: httpx.Client,
    version: str,
    url: str,
    headers: Mapping[str, str] | None = None,
) -> list[httpx.Response]:
    """GET ``url`` and follow next links to the end; every page must answer 200."""
    pages: list[httpx.Response] = []
    current: str | None = url
    while current is not None:
        assert len(pages) < MAX_PAGES, f"more than {MAX_PAGES} pages following {url}"
        response = call(http, "GET", current, version, headers=headers)
        page_items(version, response)
        pages.append(response)
        current = next_url(version, response)
    return pages


def fetch_all(
    http: httpx.Client,
    version: str,
    url: str,
    headers: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Every row of a query, following next links."""
    pages = fetch_pages(http, version, url, headers)
    return [item for page in pages for item in page_items(version, page)]


def ids(items: list[dict[str, Any]]) -> list[str]:
    """The ``id`` of each row, in order."""
    return [str(item["id"]) for item in items]


def find(
    http: httpx.Client,
    table: str,
    item_id: str,
    *,
    include_deleted: bool = True,
    version: str = "3",
) -> list[dict[str, Any]]:
    """Query for one id, deleted rows included by default: how tests prove what was stored."""
    flag = "&__includedeleted=true" if include_deleted else ""
    escaped = quote(item_id.replace("'", "''"), safe="")
    response = call(http, "GET", f"/tables/{table}?$filter=id eq '{escaped}'{flag}", version)
    return page_items(version, response)


def row_count(http: httpx.Client, table: str) -> int:
    """How many rows ``table`` holds, deleted ones included (v3 ``$count``)."""
    url = f"/tables/{table}?$count=true&$top=1&__includedeleted=true"
    response = call(http, "GET", url, "3")
    page_items("3", response)
    count = response.json()["count"]
    assert isinstance(count, int), describe(response)
    return count
