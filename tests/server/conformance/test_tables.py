"""Table names are case-insensitive; unknown tables are 404 (protocol.md §2.4, §11.14)."""

from __future__ import annotations

from typing import Any

import pytest

from ._wire import (
    assert_entity,
    assert_error,
    assert_status,
    call,
    fetch_all,
    ids,
    item_url,
    new_id,
)


@pytest.mark.parametrize("name", ["MOVIES", "Movies", "mOvIeS"])
def test_query_table_name_any_case(server: Any, version: str, name: str) -> None:
    rows = fetch_all(server.http, version, f"/tables/{name}?$filter=year eq 1994")
    assert ids(rows) == [m["id"] for m in server.movies if m["year"] == 1994]


def test_read_table_name_any_case(server: Any, version: str) -> None:
    response = call(server.http, "GET", "/tables/MOVIES/id-000", version)
    assert assert_entity(response, version, 200)["title"] == server.movies[0]["title"]


def test_write_table_name_any_case(server: Any, version: str) -> None:
    item_id = new_id()
    body = {"id": item_id, "title": "upper"}
    assert_entity(call(server.http, "POST", "/tables/ITEMS", version, json=body), version, 201)
    read = call(server.http, "GET", item_url("items", item_id), version)
    assert assert_entity(read, version, 200)["title"] == "upper"
    assert_status(call(server.http, "DELETE", item_url("Items", item_id), version), 200, 204)


@pytest.mark.parametrize(
    ("method", "url"),
    [
        pytest.param("GET", "/tables/nosuch", id="query"),
        pytest.param("POST", "/tables/nosuch", id="insert"),
        pytest.param("GET", "/tables/nosuch/id-000", id="read"),
        pytest.param("PATCH", "/tables/nosuch/id-000", id="patch"),
        pytest.param("DELETE", "/tables/nosuch/id-000", id="delete"),
    ],
)
def test_unknown_table_is_404(server: Any, version: str, method: str, url: str) -> None:
    body = {"id": "id-000", "title": "x"} if method in ("POST", "PATCH") else None
    assert_error(call(server.http, method, url, version, json=body), 404)


def test_health(server: Any) -> None:
    response = server.http.get("/health")
    assert_status(response, 200)
    assert response.json() == {"status": "ok"}
    assert_status(server.http.get("/health/ready"), 200)


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_collection_write_methods_are_a_clean_4xx(server: Any, version: str, method: str) -> None:
    # No SDK writes to the collection URL with these verbs (protocol.md §3.1): any 4xx in the
    # error shape will do, and nothing may change.
    body = {"id": "id-000", "title": "overwritten"} if method != "DELETE" else None
    response = call(server.http, method, "/tables/movies", version, json=body)
    assert 400 <= response.status_code < 500, response.text[:200]
    assert_error(response, response.status_code)
    read = call(server.http, "GET", "/tables/movies/id-000", version)
    assert assert_entity(read, version, 200)["title"] == server.movies[0]["title"]


def test_v2_put_is_not_a_server_error(server: Any) -> None:
    # PUT is the v3 update verb; for v2 it is unspecified (protocol.md §3.1): 2xx or a clean 4xx.
    item_id = new_id()
    body = {"id": item_id, "title": "v2 put"}
    created = call(server.http, "POST", "/tables/items", "2", json=body)
    assert_entity(created, "2", 201)
    response = call(server.http, "PUT", item_url("items", item_id), "2", json=body)
    if response.status_code >= 400:
        assert_error(response, *range(400, 500))
    else:
        assert_status(response, 200)
