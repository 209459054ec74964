"""``ZUMO-API-VERSION``: header or query parameter (any case, the parameter wins), 400 otherwise.

protocol.md §1.1 and §13: the query parameter is read first; a missing or invalid version is a
400 with the one error shape ``{"status", "error"}`` (server_api.md).
"""

from __future__ import annotations

from typing import Any

import pytest

from ._wire import HEADER, assert_error, assert_status, call


def _shape(response: Any) -> str:
    """Which protocol answered a query: v2 is a bare array, v3 an ``items`` object."""
    assert_status(response, 200)
    body = response.json()
    if isinstance(body, list):
        return "2"
    assert isinstance(body, dict) and "items" in body, response.text[:200]
    return "3"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("2.0.0", "2", id="2.0.0"),
        pytest.param("2.0.1", "2", id="2.0.1"),
        pytest.param("3.0.0", "3", id="3.0.0"),
        pytest.param("3.0.4", "3", id="3.0.4"),
    ],
)
def test_header_selects_protocol(server: Any, value: str, expected: str) -> None:
    response = server.http.get("/tables/movies?$top=2", headers={HEADER: value})
    assert _shape(response) == expected


@pytest.mark.parametrize(
    "name",
    ["ZUMO-API-VERSION", "zumo-api-version", "Zumo-Api-Version"],
)
@pytest.mark.parametrize(
    ("query_value", "header_value"),
    [
        pytest.param("3.0.0", "2.0.0", id="query-v3-header-v2"),
        pytest.param("2.0.0", "3.0.0", id="query-v2-header-v3"),
    ],
)
def test_query_parameter_wins_over_header(
    server: Any, name: str, query_value: str, header_value: str
) -> None:
    response = server.http.get(
        f"/tables/movies?$top=2&{name}={query_value}", headers={HEADER: header_value}
    )
    assert _shape(response) == query_value[0]


def test_query_parameter_alone(server: Any) -> None:
    assert _shape(server.http.get("/tables/movies?zumo-api-version=2.0.0")) == "2"


@pytest.mark.parametrize(
    ("method", "url"),
    [
        pytest.param("GET", "/tables/movies", id="query"),
        pytest.param("GET", "/tables/movies/id-000", id="read"),
        pytest.param("POST", "/tables/items", id="insert"),
        pytest.param("DELETE", "/tables/items/never-there", id="delete"),
    ],
)
def test_missing_version_is_400(server: Any, method: str, url: str) -> None:
    body = {"id": "conf-version-missing"} if method == "POST" else None
    assert_error(call(server.http, method, url, None, json=body), 400)


@pytest.mark.parametrize(
    "value",
    ["4.0.0", "garbage", "1.0.0", "2.1.0", "3.1.0", "", "3.0.0.0", "v3.0.0"],
)
def test_invalid_header_is_400(server: Any, value: str) -> None:
    response = server.http.get("/tables/movies", headers={HEADER: value})
    assert_error(response, 400)


@pytest.mark.parametrize("value", ["4.0.0", "garbage"])
def test_invalid_query_parameter_is_400_even_with_valid_header(server: Any, value: str) -> None:
    response = server.http.get(
        f"/tables/movies?ZUMO-API-VERSION={value}", headers={HEADER: "3.0.0"}
    )
    assert_error(response, 400)


def test_rejected_insert_writes_nothing(server: Any) -> None:
    item_id = "conf-version-rejected"
    assert_error(call(server.http, "POST", "/tables/items", None, json={"id": item_id}), 400)
    response = call(server.http, "GET", f"/tables/items/{item_id}", "3")
    assert_error(response, 404)
