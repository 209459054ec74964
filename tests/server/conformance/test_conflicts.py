"""Optimistic concurrency: 412 on a stale If-Match, 409 on duplicates and stale body versions.

protocol.md §3.2, §3.3, §10 ("412 without the server record"), §11.1-§11.2: conflict bodies are the
server's CURRENT entity with a matching ETag, so a client can resolve.
"""

from __future__ import annotations

from typing import Any

import pytest

from ._wire import assert_entity, assert_status, call, etag_of, item_url, new_id

STALE_WRITES = [
    pytest.param("2", "PATCH", id="v2-patch"),
    pytest.param("2", "DELETE", id="v2-delete"),
    pytest.param("3", "PATCH", id="v3-patch"),
    pytest.param("3", "PUT", id="v3-put"),
    pytest.param("3", "DELETE", id="v3-delete"),
]


def _insert(server: Any, version: str, title: str = "original") -> dict[str, Any]:
    body = {"id": new_id(), "title": title, "count": 1}
    return assert_entity(
        call(server.http, "POST", "/tables/items", version, json=body), version, 201
    )


def _stale_and_current(server: Any, version: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """An item, and its state after someone else changed it (so the first ETag is stale)."""
    first = _insert(server, version)
    url = item_url("items", first["id"])
    current = call(server.http, "PATCH", url, version, json={"title": "changed elsewhere"})
    return first, assert_entity(current, version, 200)


def _write(server: Any, version: str, method: str, item: dict[str, Any], **kw: Any) -> Any:
    url = item_url("items", item["id"])
    body = None if method == "DELETE" else {"id": item["id"], "title": "mine", "count": 2}
    return call(server.http, method, url, version, json=body, **kw)


def _read(server: Any, version: str, item_id: str) -> dict[str, Any]:
    return assert_entity(
        call(server.http, "GET", item_url("items", item_id), version), version, 200
    )


@pytest.mark.parametrize(("version", "method"), STALE_WRITES)
def test_stale_if_match_is_412_with_current_entity(server: Any, version: str, method: str) -> None:
    stale, current = _stale_and_current(server, version)
    response = _write(server, version, method, stale, headers={"If-Match": etag_of(stale)})
    body = assert_entity(response, version, 412)
    assert body == current
    assert _read(server, version, stale["id"]) == current


@pytest.mark.parametrize(("version", "method"), STALE_WRITES)
def test_matching_if_match_passes(server: Any, version: str, method: str) -> None:
    item = _insert(server, version)
    response = _write(server, version, method, item, headers={"If-Match": etag_of(item)})
    assert_status(response, 200, 204)


@pytest.mark.parametrize(("version", "method"), STALE_WRITES)
def test_if_match_star_passes(server: Any, version: str, method: str) -> None:
    _, current = _stale_and_current(server, version)
    response = _write(server, version, method, current, headers={"If-Match": "*"})
    assert_status(response, 200, 204)


@pytest.mark.parametrize(
    "tags",
    ['"c3RhbGU=", {current}', '{current}, "c3RhbGU="'],
    ids=["current-second", "current-first"],
)
def test_if_match_list_passes_when_any_tag_matches(server: Any, tags: str) -> None:
    item = _insert(server, "3")
    header = tags.format(current=etag_of(item))
    response = _write(server, "3", "PATCH", item, headers={"If-Match": header})
    assert_status(response, 200)


@pytest.mark.parametrize("version", ["2", "3"], ids=["v2", "v3"])
def test_duplicate_insert_is_409_with_existing_entity(server: Any, version: str) -> None:
    existing = _insert(server, version)
    duplicate = {"id": existing["id"], "title": "the request, not the row", "count": 99}
    response = call(server.http, "POST", "/tables/items", version, json=duplicate)
    assert assert_entity(response, version, 409) == existing
    assert _read(server, version, existing["id"]) == existing


@pytest.mark.parametrize("version", ["2", "3"], ids=["v2", "v3"])
def test_duplicate_of_soft_deleted_row_is_409_with_it(server: Any, version: str) -> None:
    existing = _insert(server, version)
    url = item_url("items", existing["id"])
    assert_status(call(server.http, "DELETE", url, version), 200, 204)
    duplicate = {"id": existing["id"], "title": "again"}
    response = call(server.http, "POST", "/tables/items", version, json=duplicate)
    body = assert_entity(response, version, 409)
    assert (body["id"], body["title"], body["deleted"]) == (existing["id"], "original", True)
    assert body["version"] != existing["version"]  # the delete was a write


def test_v2_stale_body_version_without_if_match_is_409(server: Any) -> None:
    stale, current = _stale_and_current(server, "2")
    body = {"title": "mine", "version": stale["version"]}
    response = call(server.http, "PATCH", item_url("items", stale["id"]), "2", json=body)
    assert assert_entity(response, "2", 409) == current
    assert _read(server, "2", stale["id"]) == current


def test_v2_current_body_version_without_if_match_passes(server: Any) -> None:
    item = _insert(server, "2")
    body = {"title": "mine", "version": item["version"]}
    response = call(server.http, "PATCH", item_url("items", item["id"]), "2", json=body)
    assert assert_entity(response, "2", 200)["title"] == "mine"


@pytest.mark.parametrize("method", ["PATCH", "PUT", "DELETE"])
def test_v3_if_none_match_on_write_is_412(server: Any, method: str) -> None:
    item = _insert(server, "3")
    response = _write(server, "3", method, item, headers={"If-None-Match": etag_of(item)})
    assert assert_entity(response, "3", 412) == item
    assert _read(server, "3", item["id"]) == item


def test_v3_if_unmodified_since_before_update_is_412(server: Any) -> None:
    item = _insert(server, "3")
    headers = {"If-Unmodified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"}
    response = _write(server, "3", "PUT", item, headers=headers)
    assert assert_entity(response, "3", 412) == item


def test_v3_if_modified_since_in_the_past_reads_200(server: Any) -> None:
    item = _insert(server, "3")
    headers = {"If-Modified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"}
    response = call(server.http, "GET", item_url("items", item["id"]), "3", headers=headers)
    assert assert_entity(response, "3", 200) == item


@pytest.mark.parametrize(
    "tag",
    ['W/"{current}"', "not-a-tag", '"not base64 at all!"'],
    ids=["weak", "unquoted-garbage", "quoted-garbage"],
)
@pytest.mark.parametrize("version", ["2", "3"], ids=["v2", "v3"])
def test_unusable_if_match_never_writes(server: Any, version: str, tag: str) -> None:
    # §2.2/§11.2: weak tags are rejected (NS: 400) or never match (AMA: 412); a value that is
    # not one of ours cannot match either. Either answer is allowed; a write is not.
    item = _insert(server, version)
    header = tag.format(current=item["version"])
    response = _write(server, version, "PATCH", item, headers={"If-Match": header})
    assert response.status_code in (400, 412), response.text[:200]
    assert _read(server, version, item["id"]) == item


def test_v3_if_unmodified_since_in_the_future_passes(server: Any) -> None:
    item = _insert(server, "3")
    headers = {"If-Unmodified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"}
    assert_status(_write(server, "3", "PUT", item, headers=headers), 200)


def test_v3_if_match_takes_precedence_over_if_unmodified_since(server: Any) -> None:
    # §3.3 step 2 applies only when there is no If-Match: a matching tag wins.
    item = _insert(server, "3")
    headers = {
        "If-Match": etag_of(item),
        "If-Unmodified-Since": "Sat, 01 Jan 2000 00:00:00 GMT",
    }
    assert_status(_write(server, "3", "PUT", item, headers=headers), 200)
