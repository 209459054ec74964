"""Ids: opaque strings, percent-encoded once in the URL, validated (protocol.md §2.4, §10)."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from ._wire import (
    assert_entity,
    assert_error,
    assert_status,
    call,
    find,
    item_url,
    new_id,
    row_count,
)

VALID = [
    pytest.param("with:colon", id="colon"),
    pytest.param("with space", id="space"),
    pytest.param("ünïcødé-日本-🎬", id="unicode"),
    pytest.param("50%off", id="percent"),
    pytest.param("a&b=c", id="ampersand-equals"),
    pytest.param("hash#tag", id="hash"),
    pytest.param("it's", id="apostrophe"),
    pytest.param("semi;colon,comma", id="semicolon-comma"),
    pytest.param("a.b", id="dot-inside"),
    pytest.param("%2F", id="looks-encoded"),
    pytest.param("x" * 255, id="255-chars"),
]

# The ids of protocol.md §2.4 that no server may accept, as they appear in the URL path.
INVALID_IN_URL = [
    pytest.param("%2E%2E", id="dot-dot"),
    pytest.param("%2E", id="dot"),
    pytest.param("a%2Fb", id="encoded-slash"),
    pytest.param("a%01b", id="control-char"),
    pytest.param("a%7Fb", id="del-char"),
    pytest.param("a%C2%85b", id="c1-control"),
    pytest.param("a%22b", id="double-quote"),
    pytest.param("a%2Bb", id="plus"),
    pytest.param("a%3Fb", id="question-mark"),
    pytest.param("a%5Cb", id="backslash"),
    pytest.param("a%60b", id="backtick"),
    pytest.param("x" * 256, id="256-chars"),
]

INVALID_IN_BODY = [
    pytest.param("..", id="dot-dot"),
    pytest.param(".", id="dot"),
    pytest.param("a/b", id="slash"),
    pytest.param("a\x01b", id="control-char"),
    pytest.param('a"b', id="double-quote"),
    pytest.param("a+b", id="plus"),
    pytest.param("a?b", id="question-mark"),
    pytest.param("a\\b", id="backslash"),
    pytest.param("a`b", id="backtick"),
    pytest.param("x" * 256, id="256-chars"),
]


def _fresh(raw: str) -> str:
    """Keep the special characters and the length, but make the id new for this test."""
    if len(raw) >= 255:
        return (new_id() + raw)[:255]
    return f"{raw}-{new_id()}"


@pytest.mark.parametrize("raw", VALID)
def test_valid_id_round_trips(server: Any, version: str, raw: str) -> None:
    item_id = _fresh(raw)
    response = call(server.http, "POST", "/tables/items", version, json={"id": item_id})
    created = assert_entity(response, version, 201)
    assert created["id"] == item_id
    location = response.headers.get("location", "")
    assert unquote(urlsplit(location).path).endswith(f"/{item_id}"), location
    url = item_url("items", item_id)
    assert assert_entity(call(server.http, "GET", url, version), version, 200)["id"] == item_id
    patched = call(server.http, "PATCH", url, version, json={"title": "renamed"})
    assert assert_entity(patched, version, 200)["title"] == "renamed"
    assert [row["id"] for row in find(server.http, "items", item_id)] == [item_id]
    assert_status(call(server.http, "DELETE", url, version), 200, 204)


@pytest.mark.parametrize("segment", INVALID_IN_URL)
@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_invalid_id_in_url_is_400(server: Any, version: str, method: str, segment: str) -> None:
    body = {"title": "x"} if method == "PATCH" else None
    response = call(server.http, method, f"/tables/items/{segment}", version, json=body)
    assert_error(response, 400)


@pytest.mark.parametrize("item_id", INVALID_IN_BODY)
def test_invalid_id_in_body_is_400_and_not_stored(server: Any, version: str, item_id: str) -> None:
    before = row_count(server.http, "items")
    response = call(server.http, "POST", "/tables/items", version, json={"id": item_id})
    assert_error(response, 400)
    assert row_count(server.http, "items") == before


def test_v2_undelete_with_invalid_id_is_400(server: Any) -> None:
    assert_error(call(server.http, "POST", "/tables/items/%2E%2E", "2"), 400)


def test_v3_put_with_invalid_id_is_400(server: Any) -> None:
    response = call(server.http, "PUT", "/tables/items/a%2Fb", "3", json={"id": "a/b"})
    assert_error(response, 400)
