"""Requests, pages, links and error mapping: the pure wire helpers of the client."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tablesync import AuthenticationError, ConflictError, NotFoundError, ServerError, UsageError
from tablesync.client._http import (
    RequestBuilder,
    check,
    error_for_response,
    item_from_response,
    next_link_header,
    parse_api_version_arg,
    parse_page,
    resolve_next_link,
)
from tablesync.protocol import ApiVersion

TABLE = httpx.URL("http://server:8080/api/tables/todo")


def response(
    status: int, body: Any = None, headers: dict[str, str] | None = None, text: str | None = None
) -> httpx.Response:
    request = httpx.Request("GET", TABLE)
    if text is not None:
        return httpx.Response(status, text=text, headers=headers, request=request)
    if body is None:
        return httpx.Response(status, headers=headers, request=request)
    return httpx.Response(status, json=body, headers=headers, request=request)


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        pytest.param(
            "http://server:8080/api/tables/todo?$skip=50",
            "http://server:8080/api/tables/todo?$skip=50",
            id="absolute-same",
        ),
        pytest.param(
            "/api/tables/todo?$skip=50", "http://server:8080/api/tables/todo?$skip=50", id="path"
        ),
        pytest.param(
            "$skip=50&$top=10",
            "http://server:8080/api/tables/todo?$skip=50&$top=10",
            id="bare-query",
        ),
        pytest.param(
            "?$skip=50", "http://server:8080/api/tables/todo?$skip=50", id="question-mark-query"
        ),
        pytest.param(
            "http://server/?$top=10&$skip=50",
            "http://server:8080/api/tables/todo?$top=10&$skip=50",
            id="node-lost-port-and-path",
        ),
        pytest.param(
            "/tables/todo?$skip=5",
            "http://server:8080/api/tables/todo?$skip=5",
            id="path-without-prefix",
        ),
        pytest.param(
            "todo?$skip=7",
            "http://server:8080/api/tables/todo?$skip=7",
            id="relative-path",
        ),
        pytest.param(
            "$skip=7",
            "http://server:8080/api/tables/todo?$skip=7",
            id="bare-query-no-question-mark",
        ),
        pytest.param(
            "https://evil.example/x?$skip=5",
            "http://server:8080/api/tables/todo?$skip=5",
            id="other-host-rebased",
        ),
    ],
)
def test_resolve_next_link(link: str, expected: str) -> None:
    assert str(resolve_next_link(link, TABLE)) == expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param(["http://h/?$skip=1; rel=next"], "http://h/?$skip=1", id="no-brackets"),
        pytest.param(['<http://h/?$skip=1>; rel="next"'], "http://h/?$skip=1", id="rfc5988"),
        pytest.param(
            ["<http://h/a>; rel=prev, <http://h/b>; rel=next"], "http://h/b", id="several"
        ),
        pytest.param(["http://h/?$skip=1; rel=prev"], None, id="not-next"),
        pytest.param([], None, id="absent"),
    ],
)
def test_next_link_header(headers: list[str], expected: str | None) -> None:
    assert next_link_header(headers) == expected


@pytest.mark.parametrize(
    ("body", "headers", "items", "count", "link"),
    [
        pytest.param([{"id": "a"}], {}, ["a"], None, None, id="v2-bare-array"),
        pytest.param({"results": [{"id": "a"}], "count": 7}, {}, ["a"], 7, None, id="v2-results"),
        pytest.param(
            [{"id": "a"}],
            {"Link": "http://h/?$skip=1; rel=next"},
            ["a"],
            None,
            "http://h/?$skip=1",
            id="v2-link",
        ),
        pytest.param(
            {"items": [{"id": "a"}], "count": None, "nextLink": "/tables/t?$skip=1"},
            {},
            ["a"],
            None,
            "/tables/t?$skip=1",
            id="v3",
        ),
        pytest.param({"items": [], "count": 0, "nextLink": None}, {}, [], 0, None, id="v3-empty"),
        pytest.param({"id": "a"}, {}, ["a"], None, None, id="lone-object"),
        pytest.param([{"id": "a"}, 3, {"no": "id"}], {}, ["a"], None, None, id="non-items-dropped"),
    ],
)
def test_parse_page_shapes(
    body: Any, headers: dict[str, str], items: list[str], count: int | None, link: str | None
) -> None:
    page = parse_page(response(200, body, headers))
    assert ([i["id"] for i in page.items], page.count, page.next_link) == (items, count, link)


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(response(200, text="<html>oops</html>"), id="html"),
        pytest.param(response(200, {"x": 1}), id="object-without-items"),
        pytest.param(response(200, text=""), id="empty"),
    ],
)
def test_a_body_that_is_not_a_page_is_a_server_error(bad: httpx.Response) -> None:
    with pytest.raises(ServerError, match="not a page"):
        parse_page(bad)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        pytest.param(401, AuthenticationError, id="401"),
        pytest.param(404, NotFoundError, id="404"),
        pytest.param(410, NotFoundError, id="410"),
        pytest.param(409, ConflictError, id="409"),
        pytest.param(412, ConflictError, id="412"),
        pytest.param(400, ServerError, id="400"),
        pytest.param(500, ServerError, id="500"),
    ],
)
def test_error_mapping(status: int, kind: type[Exception]) -> None:
    error = error_for_response(response(status, {"status": status, "error": "why"}))
    assert type(error) is kind and error.status_code == status
    assert "why" in str(error) and "GET http://server:8080/api/tables/todo" in str(error)


def test_a_conflict_carries_the_server_item_with_the_etag_version() -> None:
    error = error_for_response(response(412, {"id": "a", "version": "body"}, {"ETag": '"tag"'}))
    assert isinstance(error, ConflictError) and error.server_item == {"id": "a", "version": "tag"}


def test_a_conflict_body_that_is_not_an_item_gives_no_server_item() -> None:
    error = error_for_response(response(409, {"message": "duplicate"}))
    assert isinstance(error, ConflictError) and error.server_item is None


def test_a_non_json_error_keeps_its_text() -> None:
    error = error_for_response(response(502, text="Bad Gateway"))
    assert error.body == "Bad Gateway" and "Bad Gateway" in str(error)


def test_item_from_response_needs_an_item() -> None:
    assert item_from_response(response(200, {"id": "a"}, {"ETag": '"v"'})) == {
        "id": "a",
        "version": "v",
    }
    with pytest.raises(ServerError):
        item_from_response(response(200, [1, 2]))
    assert check(response(204)).status_code == 204


def test_requests_carry_the_protocol_headers() -> None:
    builder = RequestBuilder("http://server:8080/api", ApiVersion.V3, {"X-App": "1"})
    request = builder.build(
        "GET",
        builder.table_url("todo"),
        params=[("$top", "5")],
        query=True,
        version='a"b',
        idempotency_key="k",
    )
    assert str(request.url) == "http://server:8080/api/tables/todo?%24top=5"
    assert request.headers["ZUMO-API-VERSION"] == "3.0.0"
    assert request.headers["X-ZUMO-Options"] == "nextLink=path"
    assert request.headers["Accept-Encoding"] == "zstd, gzip"
    assert request.headers["If-Match"] == '"a\\"b"'
    assert (request.headers["Idempotency-Key"], request.headers["X-App"]) == ("k", "1")
    assert request.headers["User-Agent"].startswith("tablesync/")


def test_v2_queries_do_not_send_the_v3_options_header() -> None:
    builder = RequestBuilder("http://server", ApiVersion.V2)
    request = builder.build("GET", builder.table_url("todo"), query=True)
    assert (
        "X-ZUMO-Options" not in request.headers and request.headers["ZUMO-API-VERSION"] == "2.0.0"
    )


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("server:8080", id="no-scheme"),
        pytest.param("ftp://server", id="ftp"),
        pytest.param("/relative", id="relative"),
    ],
)
def test_a_bad_service_url_is_a_usage_error(url: str) -> None:
    with pytest.raises(UsageError):
        RequestBuilder(url, ApiVersion.V3)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("", id="empty"),
        pytest.param("a/b", id="slash"),
        pytest.param("a?b", id="question"),
        pytest.param("1abc", id="digit-first"),
    ],
)
def test_a_bad_table_name_is_a_usage_error(name: str) -> None:
    with pytest.raises(UsageError):
        RequestBuilder("http://server", ApiVersion.V3).table_url(name)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("3.0.0", ApiVersion.V3, id="3.0.0"),
        pytest.param("2.0.0", ApiVersion.V2, id="2.0.0"),
        pytest.param("2.0", ApiVersion.V2, id="2.0"),
        pytest.param(ApiVersion.V3, ApiVersion.V3, id="enum"),
    ],
)
def test_api_version_argument(value: Any, expected: ApiVersion) -> None:
    assert parse_api_version_arg(value) is expected


def test_an_unknown_api_version_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        parse_api_version_arg("4.0.0")
