"""Soft delete, the include-deleted switches, 410/404 for deleted rows, and undelete.

protocol.md §3.2, §3.4, §7.2, §11.3-§11.4; peers.md (soft_movies: every R movie deleted).
"""

from __future__ import annotations

from typing import Any

import pytest

from tablesync.protocol import parse_datetime

from ._wire import (
    assert_entity,
    assert_error,
    assert_status,
    call,
    etag_of,
    fetch_all,
    find,
    get_json,
    ids,
    item_url,
    new_id,
)

INCLUDE_DELETED = [
    pytest.param("2", "?__includeDeleted=true", {}, id="v2-includeDeleted"),
    pytest.param("2", "?__includedeleted=true", {}, id="v2-lowercase"),
    pytest.param("2", "?__includeDeleted=TRUE", {}, id="v2-value-uppercase"),
    pytest.param("3", "?__includedeleted=true", {}, id="v3-includedeleted"),
    pytest.param("3", "?__includeDeleted=TRUE", {}, id="v3-any-case"),
    pytest.param("3", "?__INCLUDEDELETED=True", {}, id="v3-name-uppercase"),
    pytest.param("3", "", {"X-ZUMO-Options": "include:deleted"}, id="v3-options-header"),
]


def test_deleted_rows_are_hidden_by_default(server: Any, version: str) -> None:
    rows = fetch_all(server.http, version, "/tables/soft_movies")
    assert ids(rows) == [movie["id"] for movie in server.soft_visible]
    assert all(row["deleted"] is False for row in rows)


@pytest.mark.parametrize(("version", "query", "headers"), INCLUDE_DELETED)
def test_include_deleted_shows_them(
    server: Any, version: str, query: str, headers: dict[str, str]
) -> None:
    rows = fetch_all(server.http, version, f"/tables/soft_movies{query}", headers=headers)
    assert ids(rows) == [movie["id"] for movie in server.movies]
    assert [row["deleted"] for row in rows] == [movie["rating"] == "R" for movie in server.movies]


def test_v3_include_deleted_false_keeps_them_hidden(server: Any) -> None:
    # protocol.md §3.4: the value is compared with "true" (NODE's presence test is its own quirk).
    rows = fetch_all(server.http, "3", "/tables/soft_movies?__includedeleted=false")
    assert len(rows) == len(server.soft_visible)


def test_counts_follow_the_switch(server: Any) -> None:
    plain = get_json(server.http, "/tables/soft_movies?$count=true", "3")
    every = get_json(server.http, "/tables/soft_movies?$count=true&__includedeleted=true", "3")
    assert plain["count"] == len(server.soft_visible)
    assert every["count"] == len(server.movies)


def test_filter_on_deleted_column(server: Any) -> None:
    url = "/tables/soft_movies?$filter=deleted eq true&__includedeleted=true"
    rows = fetch_all(server.http, "3", url)
    assert ids(rows) == [m["id"] for m in server.movies if m["rating"] == "R"]


def _deleted_item(server: Any, version: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Insert then delete an item; returns it as inserted and as stored after the delete."""
    body = {"id": new_id(), "title": "doomed", "count": 5}
    item = assert_entity(
        call(server.http, "POST", "/tables/items", version, json=body), version, 201
    )
    assert_status(call(server.http, "DELETE", item_url("items", item["id"]), version), 200, 204)
    rows = find(server.http, "items", item["id"], version=version)
    assert len(rows) == 1 and rows[0]["deleted"] is True, rows
    return item, rows[0]


def test_delete_bumps_version_and_updated_at(server: Any, version: str) -> None:
    item, deleted = _deleted_item(server, version)
    assert deleted["version"] != item["version"]
    assert parse_datetime(deleted["updatedAt"]) > parse_datetime(item["updatedAt"])
    assert (deleted["title"], deleted["count"]) == ("doomed", 5)
    assert find(server.http, "items", item["id"], include_deleted=False) == []


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
def test_v3_deleted_row_is_410(server: Any, method: str) -> None:
    item, deleted = _deleted_item(server, "3")
    body = None if method in ("GET", "DELETE") else {"id": item["id"], "title": "zombie"}
    assert_error(call(server.http, method, item_url("items", item["id"]), "3", json=body), 410)
    assert find(server.http, "items", item["id"], version="3") == [deleted]


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_v2_deleted_row_is_404(server: Any, method: str) -> None:
    item, deleted = _deleted_item(server, "2")
    body = {"title": "zombie"} if method == "PATCH" else None
    assert_error(call(server.http, method, item_url("items", item["id"]), "2", json=body), 404)
    assert find(server.http, "items", item["id"], version="2") == [deleted]


@pytest.mark.parametrize(
    ("query", "headers"),
    [
        pytest.param("?__includedeleted=true", {}, id="parameter"),
        pytest.param("", {"X-ZUMO-Options": "include:deleted"}, id="options-header"),
    ],
)
def test_v3_read_deleted_with_include_deleted(
    server: Any, query: str, headers: dict[str, str]
) -> None:
    item, deleted = _deleted_item(server, "3")
    url = item_url("items", item["id"]) + query
    response = call(server.http, "GET", url, "3", headers=headers)
    assert assert_entity(response, "3", 200) == deleted


def test_v2_undelete(server: Any) -> None:
    item, deleted = _deleted_item(server, "2")
    url = item_url("items", item["id"])
    response = call(server.http, "POST", url, "2", headers={"If-Match": etag_of(deleted)})
    restored = assert_entity(response, "2", 201)
    assert restored["deleted"] is False and restored["title"] == "doomed"
    assert restored["version"] not in (item["version"], deleted["version"])
    assert parse_datetime(restored["updatedAt"]) > parse_datetime(deleted["updatedAt"])
    assert assert_entity(call(server.http, "GET", url, "2"), "2", 200) == restored
    assert find(server.http, "items", item["id"], include_deleted=False, version="2") == [restored]


def test_v2_undelete_without_if_match(server: Any) -> None:
    item, _ = _deleted_item(server, "2")
    response = call(server.http, "POST", item_url("items", item["id"]), "2")
    assert assert_entity(response, "2", 201)["deleted"] is False


def test_v2_undelete_with_stale_if_match_is_412(server: Any) -> None:
    item, deleted = _deleted_item(server, "2")
    headers = {"If-Match": etag_of(item)}  # the version from before the delete
    response = call(server.http, "POST", item_url("items", item["id"]), "2", headers=headers)
    assert assert_entity(response, "2", 412) == deleted


def test_v3_undelete_with_patch(server: Any) -> None:
    item, deleted = _deleted_item(server, "3")
    url = item_url("items", item["id"])
    response = call(server.http, "PATCH", url, "3", json={"deleted": False})
    restored = assert_entity(response, "3", 200)
    assert restored["deleted"] is False and restored["title"] == "doomed"
    assert restored["version"] not in (item["version"], deleted["version"])
    assert parse_datetime(restored["updatedAt"]) > parse_datetime(deleted["updatedAt"])
    assert assert_entity(call(server.http, "GET", url, "3"), "3", 200) == restored


def test_filter_cannot_reach_hidden_rows(server: Any, version: str) -> None:
    rows = fetch_all(server.http, version, "/tables/soft_movies?$filter=deleted eq true")
    assert rows == []


def test_v2_undelete_of_a_missing_row_is_404(server: Any) -> None:
    assert_error(call(server.http, "POST", item_url("items", new_id()), "2"), 404)
