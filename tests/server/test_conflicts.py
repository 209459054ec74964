"""Optimistic concurrency, conditional requests and the per-table conflict policies."""

from __future__ import annotations

import email.utils
from typing import Any

import pytest

from tablesync.server import Table

from .conftest import TODO_COLUMNS, V2, V3


def _insert(client: Any, item_id: str = "c", **fields: Any) -> dict[str, Any]:
    response = client.post("/tables/todo", json={"id": item_id, **fields}, headers=V3)
    assert response.status_code == 201, response.text
    item: dict[str, Any] = response.json()
    return item


def _policy_client(make_client: Any, policy: Any) -> Any:
    return make_client([Table("todo", columns=TODO_COLUMNS, conflict_policy=policy)])


@pytest.mark.parametrize("method", ["PATCH", "PUT", "DELETE"])
def test_stale_if_match_is_412_with_the_current_entity(client: Any, method: str) -> None:
    first = _insert(client, text="a")
    current = client.patch("/tables/todo/c", json={"text": "b"}, headers=V3).json()
    headers = {**V3, "If-Match": f'"{first["version"]}"'}
    body = {"text": "mine"} if method != "DELETE" else None
    response = client.request(method, "/tables/todo/c", json=body, headers=headers)
    assert response.status_code == 412
    assert response.json() == current
    assert response.headers["etag"] == f'"{current["version"]}"'
    assert client.get("/tables/todo/c", headers=V3).json() == current


def test_if_match_star_and_matching_tag_pass(client: Any) -> None:
    item = _insert(client, text="a")
    star = client.patch("/tables/todo/c", json={"text": "b"}, headers={**V3, "If-Match": "*"})
    assert star.status_code == 200
    tag = {**V3, "If-Match": star.headers["etag"]}
    assert client.patch("/tables/todo/c", json={"text": "c"}, headers=tag).status_code == 200
    assert item["version"] != star.json()["version"]


@pytest.mark.parametrize(
    "header",
    [pytest.param('W/"abc"', id="weak"), pytest.param('"abc", W/"def"', id="weak-in-list")],
)
def test_bad_if_match_is_400(client: Any, header: str) -> None:
    _insert(client, text="a")
    response = client.patch(
        "/tables/todo/c", json={"text": "b"}, headers={**V3, "If-Match": header}
    )
    assert response.status_code == 400


def test_v2_stale_body_version_without_if_match_is_409(client: Any) -> None:
    first = _insert(client, text="a")
    current = client.patch("/tables/todo/c", json={"text": "b"}, headers=V2).json()
    stale = {"text": "mine", "version": first["version"]}
    response = client.patch("/tables/todo/c", json=stale, headers=V2)
    assert response.status_code == 409 and response.json()["version"] == current["version"]
    assert response.headers["etag"] == f'"{current["version"]}"'
    fresh = {"text": "mine", "version": current["version"]}
    assert client.patch("/tables/todo/c", json=fresh, headers=V2).status_code == 200


def test_duplicate_insert_is_409_with_the_existing_entity_even_if_deleted(client: Any) -> None:
    existing = _insert(client, text="original")
    response = client.post("/tables/todo", json={"id": "c", "text": "copy"}, headers=V3)
    assert response.status_code == 409 and response.json() == existing
    assert response.headers["etag"] == f'"{existing["version"]}"'
    assert client.delete("/tables/todo/c", headers=V3).status_code == 204
    again = client.post("/tables/todo", json={"id": "c", "text": "copy"}, headers=V3)
    assert again.status_code == 409 and again.json()["deleted"] is True


def test_get_if_none_match_is_304_and_if_modified_since(client: Any) -> None:
    item = _insert(client, text="a")
    etag = f'"{item["version"]}"'
    not_modified = client.get("/tables/todo/c", headers={**V3, "If-None-Match": etag})
    assert not_modified.status_code == 304 and not_modified.headers["etag"] == etag
    other = client.get("/tables/todo/c", headers={**V3, "If-None-Match": '"other"'})
    assert other.status_code == 200
    since = client.get("/tables/todo/c", headers=V3).headers["last-modified"]
    assert (
        client.get("/tables/todo/c", headers={**V3, "If-Modified-Since": since}).status_code == 304
    )
    old = email.utils.format_datetime(
        email.utils.parsedate_to_datetime("Mon, 01 Jan 2001 00:00:00 GMT")
    )
    assert client.get("/tables/todo/c", headers={**V3, "If-Modified-Since": old}).status_code == 200


def test_writes_with_if_none_match_or_if_unmodified_since_are_checked(client: Any) -> None:
    item = _insert(client, text="a")
    match = {**V3, "If-None-Match": f'"{item["version"]}"'}
    assert client.patch("/tables/todo/c", json={"text": "b"}, headers=match).status_code == 412
    past = {**V3, "If-Unmodified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}
    assert client.patch("/tables/todo/c", json={"text": "b"}, headers=past).status_code == 412
    future = {**V3, "If-Unmodified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"}
    assert client.patch("/tables/todo/c", json={"text": "b"}, headers=future).status_code == 200


def test_server_wins_answers_200_with_the_server_row_and_writes_nothing(make_client: Any) -> None:
    client = _policy_client(make_client, "server_wins")
    first = _insert(client, text="a")
    current = client.patch("/tables/todo/c", json={"text": "b"}, headers=V3).json()
    stale = {**V3, "If-Match": f'"{first["version"]}"'}
    response = client.patch("/tables/todo/c", json={"text": "mine"}, headers=stale)
    assert response.status_code == 200 and response.json() == current
    assert client.get("/tables/todo/c", headers=V3).json() == current


def test_client_wins_writes_over_the_server_version(make_client: Any) -> None:
    client = _policy_client(make_client, "client_wins")
    first = _insert(client, text="a", count=1)
    current = client.patch("/tables/todo/c", json={"text": "b"}, headers=V3).json()
    stale = {**V3, "If-Match": f'"{first["version"]}"'}
    response = client.patch("/tables/todo/c", json={"text": "mine"}, headers=stale)
    assert response.status_code == 200
    assert response.json()["text"] == "mine" and response.json()["count"] == 1
    assert response.json()["version"] not in (first["version"], current["version"])


def test_merge_callable_combines_both_sides_in_the_transaction(make_client: Any) -> None:
    calls: list[tuple[dict[str, Any], dict[str, Any]]] = []

    def merge(server: dict[str, Any], client_item: dict[str, Any]) -> dict[str, Any]:
        calls.append((server, client_item))
        return {**server, "count": (server["count"] or 0) + (client_item.get("count") or 0)}

    client = _policy_client(make_client, merge)
    first = _insert(client, text="a", count=1)
    client.patch("/tables/todo/c", json={"count": 10}, headers=V3)
    stale = {**V3, "If-Match": f'"{first["version"]}"'}
    response = client.patch("/tables/todo/c", json={"count": 5}, headers=stale)
    assert response.status_code == 200 and response.json()["count"] == 15
    assert response.json()["text"] == "a"
    (server_item, client_item) = calls[0]
    assert server_item["count"] == 10 and client_item == {"count": 5}


def test_policies_do_not_hide_missing_items(make_client: Any) -> None:
    client = _policy_client(make_client, "client_wins")
    response = client.patch(
        "/tables/todo/none", json={"text": "x"}, headers={**V3, "If-Match": '"v"'}
    )
    assert response.status_code == 404
