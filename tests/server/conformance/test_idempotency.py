"""``Idempotency-Key`` (tablesync extension, server_api.md): a repeat answers as the first.

A client whose response was lost retries with the same key; it must get the first response
(status, body, ETag) and the write must not be applied twice, so the retry is not a 409/412.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from ._wire import assert_entity, assert_status, call, etag_of, find, item_url, new_id


def _key() -> dict[str, str]:
    return {"Idempotency-Key": uuid.uuid4().hex}


def test_repeated_insert_returns_the_first_response(server: Any, version: str) -> None:
    key, item_id = _key(), new_id()
    body = {"id": item_id, "title": "once"}
    first = call(server.http, "POST", "/tables/items", version, json=body, headers=key)
    again = call(server.http, "POST", "/tables/items", version, json=body, headers=key)
    assert assert_entity(again, version, 201) == assert_entity(first, version, 201)
    assert again.headers["etag"] == first.headers["etag"]
    assert len(find(server.http, "items", item_id)) == 1


@pytest.mark.parametrize("method", ["PATCH", "DELETE"])
def test_repeated_update_is_applied_once(server: Any, version: str, method: str) -> None:
    body = {"id": new_id(), "title": "start", "count": 1}
    item = assert_entity(
        call(server.http, "POST", "/tables/items", version, json=body), version, 201
    )
    url = item_url("items", item["id"])
    headers = {**_key(), "If-Match": etag_of(item)}
    patch = {"count": 2} if method == "PATCH" else None
    first = call(server.http, method, url, version, json=patch, headers=headers)
    assert_status(first, 200, 204)
    stored = find(server.http, "items", item["id"])
    # The retry carries the now-stale If-Match: without the key it would be a 412.
    again = call(server.http, method, url, version, json=patch, headers=headers)
    assert (again.status_code, again.content) == (first.status_code, first.content)
    assert again.headers.get("etag") == first.headers.get("etag")
    assert find(server.http, "items", item["id"]) == stored


def test_different_keys_are_different_writes(server: Any) -> None:
    body = {"id": new_id(), "title": "twice"}
    first = call(server.http, "POST", "/tables/items", "3", json=body, headers=_key())
    assert_status(first, 201)
    second = call(server.http, "POST", "/tables/items", "3", json=body, headers=_key())
    assert assert_entity(second, "3", 409) == first.json()
