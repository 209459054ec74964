"""Insert, read, update, delete in both versions (protocol.md §2, §3.1, §11.1-§11.3, §12)."""

from __future__ import annotations

import datetime as dt
import json
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import pytest

from tablesync.protocol import is_valid_id, parse_datetime

from ._wire import (
    assert_entity,
    assert_error,
    assert_status,
    call,
    etag_of,
    fetch_all,
    find,
    item_url,
    new_id,
)

ITEMS = "items"


def _insert(server: Any, version: str, table: str = ITEMS, **fields: Any) -> dict[str, Any]:
    body = {"id": new_id(), "title": "first", "count": 1, "price": 2.5, "done": False, **fields}
    response = call(server.http, "POST", f"/tables/{table}", version, json=body)
    return assert_entity(response, version, 201)


def _stamp(item: dict[str, Any]) -> dt.datetime:
    return parse_datetime(str(item["updatedAt"]))


def test_insert_returns_201_with_etag_location_and_system_properties(
    server: Any, version: str
) -> None:
    sent = {"id": new_id(), "title": "t", "count": 3, "price": 1.25, "done": True}
    response = call(server.http, "POST", "/tables/items", version, json=sent)
    body = assert_entity(response, version, 201)
    assert {key: body[key] for key in sent} == sent
    assert body["deleted"] is False
    location = response.headers.get("location", "")
    assert unquote(urlsplit(location).path).lower() == f"/tables/items/{sent['id']}", location


def test_insert_without_id_generates_one(server: Any, version: str) -> None:
    response = call(server.http, "POST", "/tables/items", version, json={"title": "no id"})
    body = assert_entity(response, version, 201)
    assert is_valid_id(body["id"]), body
    read = call(server.http, "GET", item_url(ITEMS, body["id"]), version)
    assert assert_entity(read, version, 200)["title"] == "no id"


def test_insert_with_null_id_generates_one(server: Any, version: str) -> None:
    response = call(server.http, "POST", "/tables/items", version, json={"id": None, "title": "n"})
    assert is_valid_id(assert_entity(response, version, 201)["id"])


def test_generated_ids_are_unique(server: Any) -> None:
    made = {_insert(server, "3", id=None)["id"] for _ in range(5)}
    assert len(made) == 5


def test_client_system_properties_are_never_stored(server: Any, version: str) -> None:
    # protocol.md §3.2/§11.8: reject them (NODE: 400) or ignore them (AMA); never store them.
    item_id = new_id()
    forged = {
        "id": item_id,
        "title": "forged",
        "updatedAt": "2000-01-01T00:00:00.000Z",
        "createdAt": "2000-01-01T00:00:00.000Z",
        "version": "Zm9yZ2Vk",
    }
    response = call(server.http, "POST", "/tables/items", version, json=forged)
    if response.status_code == 400:
        assert_error(response, 400)
        assert find(server.http, ITEMS, item_id) == []
        return
    body = assert_entity(response, version, 201)
    stored = assert_entity(
        call(server.http, "GET", item_url(ITEMS, item_id), version), version, 200
    )
    for item in (body, stored):
        assert item["version"] != forged["version"]
        assert not str(item["updatedAt"]).startswith("2000-01-01")
        assert not str(item.get("createdAt", "")).startswith("2000-01-01")


def test_types_round_trip(server: Any, version: str) -> None:
    item = _insert(server, version, due="2024-02-29T13:14:15.678Z", price=0.1, count=-7)
    read = assert_entity(
        call(server.http, "GET", item_url(ITEMS, item["id"]), version), version, 200
    )
    assert parse_datetime(read["due"]) == parse_datetime("2024-02-29T13:14:15.678Z")
    assert (read["price"], read["count"], read["done"]) == (0.1, -7, False)


def test_datetime_column_accepts_offsets_and_returns_utc(server: Any) -> None:
    item = _insert(server, "3", due="2024-03-01T01:00:00.1234567+01:00")
    assert parse_datetime(item["due"]) == parse_datetime("2024-03-01T00:00:00.123Z")


def test_read_by_id(server: Any, version: str) -> None:
    item = _insert(server, version)
    read = call(server.http, "GET", item_url(ITEMS, item["id"]), version)
    assert assert_entity(read, version, 200) == item


def test_read_missing_is_404(server: Any, version: str) -> None:
    assert_error(call(server.http, "GET", item_url(ITEMS, new_id()), version), 404)


@pytest.mark.parametrize("method", ["PATCH", "DELETE"])
def test_write_missing_is_404(server: Any, version: str, method: str) -> None:
    body = {"title": "x"} if method == "PATCH" else None
    assert_error(call(server.http, method, item_url(ITEMS, new_id()), version, json=body), 404)


def test_v3_put_missing_is_404(server: Any) -> None:
    item_id = new_id()
    response = call(server.http, "PUT", item_url(ITEMS, item_id), "3", json={"id": item_id})
    assert_error(response, 404)
    assert find(server.http, ITEMS, item_id) == []


def test_v3_if_none_match_current_is_304(server: Any) -> None:
    item = _insert(server, "3")
    url = item_url(ITEMS, item["id"])
    for tag in (etag_of(item), "*"):
        response = call(server.http, "GET", url, "3", headers={"If-None-Match": tag})
        assert_status(response, 304)
        assert response.content == b""
    other = call(server.http, "GET", url, "3", headers={"If-None-Match": '"c3RhbGU="'})
    assert assert_entity(other, "3", 200) == item


def test_v3_last_modified_is_updated_at(server: Any) -> None:
    item = _insert(server, "3")
    response = call(server.http, "GET", item_url(ITEMS, item["id"]), "3")
    modified = parsedate_to_datetime(response.headers["last-modified"])
    assert modified == _stamp(item).replace(microsecond=0)


def test_v2_patch_merges(server: Any) -> None:
    item = _insert(server, "2")
    url = item_url(ITEMS, item["id"])
    response = call(server.http, "PATCH", url, "2", json={"title": "second"})
    patched = assert_entity(response, "2", 200)
    assert (patched["title"], patched["count"], patched["price"]) == ("second", 1, 2.5)
    assert patched["version"] != item["version"]
    assert _stamp(patched) > _stamp(item)
    assert patched["createdAt"] == item["createdAt"]
    assert assert_entity(call(server.http, "GET", url, "2"), "2", 200) == patched


def test_v3_patch_merges(server: Any) -> None:
    item = _insert(server, "3")
    url = item_url(ITEMS, item["id"])
    patched = assert_entity(call(server.http, "PATCH", url, "3", json={"count": 9}), "3", 200)
    assert (patched["title"], patched["count"], patched["price"]) == ("first", 9, 2.5)
    assert patched["version"] != item["version"] and _stamp(patched) > _stamp(item)
    assert assert_entity(call(server.http, "GET", url, "3"), "3", 200) == patched


def test_v3_put_replaces(server: Any) -> None:
    item = _insert(server, "3")
    url = item_url(ITEMS, item["id"])
    replacement = {"id": item["id"], "title": "replaced", "done": True}
    put = assert_entity(call(server.http, "PUT", url, "3", json=replacement), "3", 200)
    # Fields left out of a replace are gone: null, or absent from the item.
    assert put.get("count") is None and put.get("price") is None
    assert (put["title"], put["done"]) == ("replaced", True)
    assert put["version"] != item["version"] and _stamp(put) > _stamp(item)
    assert assert_entity(call(server.http, "GET", url, "3"), "3", 200) == put


def test_v3_put_with_version_in_body_matching(server: Any) -> None:
    # The AMA client sends the item with its version (protocol.md §7.2) and If-Match.
    item = _insert(server, "3")
    body = {"id": item["id"], "title": "v", "version": item["version"]}
    headers = {"If-Match": etag_of(item)}
    response = call(
        server.http, "PUT", item_url(ITEMS, item["id"]), "3", json=body, headers=headers
    )
    assert assert_entity(response, "3", 200)["version"] != item["version"]


def test_every_write_changes_version_and_increases_updated_at(server: Any, version: str) -> None:
    item = _insert(server, version)
    url = item_url(ITEMS, item["id"])
    seen = [item]
    for n in range(3):
        response = call(server.http, "PATCH", url, version, json={"count": n + 10})
        seen.append(assert_entity(response, version, 200))
    seen.append(_insert(server, version))  # another row of the same table comes later still
    assert len({entry["version"] for entry in seen}) == len(seen)
    stamps = [_stamp(entry) for entry in seen]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)


def test_delete(server: Any, version: str) -> None:
    item = _insert(server, version)
    url = item_url(ITEMS, item["id"])
    response = call(server.http, "DELETE", url, version)
    # server_api.md: 204 for v3; v2 may answer 204, or 200 with the deleted item like NODE.
    allowed = (204,) if version == "3" else (200, 204)
    assert_status(response, *allowed)
    if response.status_code == 200:
        assert assert_entity(response, version, 200)["deleted"] is True
    gone = 410 if version == "3" else 404
    assert_error(call(server.http, "GET", url, version), gone)


def test_hard_delete_removes_the_row(server: Any, version: str) -> None:
    item = _insert(server, version, table="hard_items")
    url = item_url("hard_items", item["id"])
    assert_status(call(server.http, "DELETE", url, version), 200, 204)
    assert_error(call(server.http, "GET", url, version), 404)
    assert find(server.http, "hard_items", item["id"]) == []
    assert_error(call(server.http, "DELETE", url, version), 404)


@pytest.mark.parametrize("field", ["updatedAt", "createdAt"])
def test_patch_cannot_set_timestamps(server: Any, version: str, field: str) -> None:
    # protocol.md §3.2: AMA rejects a changed system property on PATCH (400); ignoring it is
    # the other allowed answer (§11.8). Either way the stored value is the server's.
    item = _insert(server, version)
    url = item_url(ITEMS, item["id"])
    forged = {"title": "t2", field: "2000-01-01T00:00:00.000Z"}
    response = call(server.http, "PATCH", url, version, json=forged)
    if response.status_code == 400:
        assert_error(response, 400)
        assert assert_entity(call(server.http, "GET", url, version), version, 200) == item
        return
    patched = assert_entity(response, version, 200)
    assert not str(patched.get(field, "")).startswith("2000-01-01")
    stored = assert_entity(call(server.http, "GET", url, version), version, 200)
    assert not str(stored.get(field, "")).startswith("2000-01-01")


def test_v3_put_with_stale_body_version_never_stores_it(server: Any) -> None:
    # protocol.md §3.2: for v3 PUT only If-Match is a precondition (AMA), while server_api.md
    # applies the v2 body-version rule (409) everywhere: accept either, never store the version.
    item = _insert(server, "3")
    url = item_url(ITEMS, item["id"])
    changed = assert_entity(call(server.http, "PATCH", url, "3", json={"count": 2}), "3", 200)
    body = {"id": item["id"], "title": "mine", "version": item["version"]}
    response = call(server.http, "PUT", url, "3", json=body)
    if response.status_code == 409:
        assert assert_entity(response, "3", 409) == changed
        return
    put = assert_entity(response, "3", 200)
    assert put["version"] not in (item["version"], changed["version"])


def test_empty_object_insert_gets_an_id(server: Any, version: str) -> None:
    response = call(server.http, "POST", "/tables/items", version, json={})
    assert is_valid_id(assert_entity(response, version, 201)["id"])


def test_json_with_charset_is_accepted(server: Any, version: str) -> None:
    body = json.dumps({"id": new_id(), "title": "charset"})
    headers = {"Content-Type": "application/json; charset=utf-8"}
    response = call(server.http, "POST", "/tables/items", version, content=body, headers=headers)
    assert assert_entity(response, version, 201)["title"] == "charset"


def test_unicode_values_round_trip_and_filter(server: Any, version: str) -> None:
    title = f"日本語 ✓ 🎬 {new_id()}"
    item = _insert(server, version, title=title)
    read = call(server.http, "GET", item_url(ITEMS, item["id"]), version)
    assert assert_entity(read, version, 200)["title"] == title
    literal = quote(title.replace("'", "''"), safe="")
    rows = fetch_all(server.http, version, f"/tables/items?$filter=title eq '{literal}'")
    assert [row["id"] for row in rows] == [item["id"]]


def test_json_column_round_trips(server: Any, version: str) -> None:
    meta = {"tags": ["a", "b"], "nested": {"n": 1, "ok": True, "none": None}}
    item = _insert(server, version, meta=meta)
    read = call(server.http, "GET", item_url(ITEMS, item["id"]), version)
    assert item["meta"] == meta and assert_entity(read, version, 200)["meta"] == meta
