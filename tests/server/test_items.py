"""Single-item routes: insert, read, merge, replace, delete, undelete, ids and system properties."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import pytest

from .conftest import V2, V3

STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def insert(client: Any, body: dict[str, Any], headers: dict[str, str] = V3) -> dict[str, Any]:
    response = client.post("/tables/todo", json=body, headers=headers)
    assert response.status_code == 201, response.text
    item: dict[str, Any] = response.json()
    return item


def test_insert_returns_201_with_etag_location_and_system_properties(client: Any) -> None:
    response = client.post("/tables/todo", json={"id": "a1", "text": "milk"}, headers=V3)
    assert response.status_code == 201
    item = response.json()
    assert response.headers["etag"] == f'"{item["version"]}"'
    assert response.headers["location"] == "http://testserver/tables/todo/a1"
    assert "last-modified" in response.headers
    assert STAMP.match(item["updatedAt"])
    assert item["deleted"] is False and "createdAt" not in item
    assert item["text"] == "milk" and item["count"] is None


def test_v2_insert_includes_created_at_and_no_last_modified(client: Any) -> None:
    response = client.post("/tables/todo", json={"text": "eggs"}, headers=V2)
    item = response.json()
    assert response.status_code == 201
    assert len(item["id"]) == 32 and item["createdAt"] == item["updatedAt"]
    assert "last-modified" not in response.headers


def test_client_cannot_set_system_properties(client: Any) -> None:
    body = {
        "id": "sys",
        "updatedAt": "2001-01-01T00:00:00.000Z",
        "createdAt": "2001-01-01T00:00:00.000Z",
        "version": "mine",
    }
    item = insert(client, body, V2)
    assert item["version"] != "mine"
    assert not item["updatedAt"].startswith("2001") and not item["createdAt"].startswith("2001")
    patched = client.patch(
        "/tables/todo/sys",
        json={"updatedAt": "2001-01-01T00:00:00.000Z", "text": "x"},
        headers=V3,
    ).json()
    assert patched["updatedAt"] > item["updatedAt"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("count", "12", id="string-into-integer"),
        pytest.param("count", 1.5, id="fraction-into-integer"),
        pytest.param("count", 2**63, id="integer-overflow"),
        pytest.param("count", -(2**63) - 1, id="integer-underflow"),  # not rounded to -2^63
        pytest.param("count", -(2**64), id="integer-underflow-far"),
        pytest.param("price", True, id="bool-into-number"),
        pytest.param("done", "yes", id="string-into-boolean"),
        pytest.param("due", "tomorrow", id="bad-datetime"),
        pytest.param("text", 5, id="number-into-string"),
        pytest.param("text", "nul\x00char", id="nul-in-string"),
        pytest.param("nosuch", 1, id="unknown-column"),
        pytest.param("id", 5, id="numeric-id"),
        pytest.param("id", "a/b", id="invalid-id"),
        pytest.param("deleted", "no", id="deleted-not-bool"),
    ],
)
def test_bad_field_is_400_and_writes_nothing(client: Any, field: str, value: Any) -> None:
    body = {"id": "bad", field: value}
    response = client.post("/tables/todo", json=body, headers=V3)
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["status"] == 400 and isinstance(error["error"], str) and error["error"]
    assert client.get("/tables/todo/bad", headers=V3).status_code == 404


def test_values_round_trip_with_their_types(client: Any) -> None:
    body = {
        "id": "typed",
        "text": "ü ✓",
        "count": -(2**62),
        "price": 3,
        "done": True,
        "due": "2024-02-29T23:59:59.1234567+01:00",
        "extra": {"tags": ["a", 1, None]},
    }
    item = insert(client, body)
    assert item["count"] == -(2**62) and item["price"] == 3.0 and item["done"] is True
    assert item["due"] == "2024-02-29T22:59:59.123Z"
    assert item["extra"] == {"tags": ["a", 1, None]}
    assert client.get("/tables/todo/typed", headers=V3).json() == item


@pytest.mark.parametrize(
    "item_id",
    [
        pytest.param("with:colon", id="colon"),
        pytest.param("with space", id="space"),
        pytest.param("ünïcødé-✓", id="unicode"),
        pytest.param("50%off", id="percent"),
        pytest.param("x" * 255, id="max-length"),
    ],
)
def test_ids_are_decoded_exactly_once(client: Any, item_id: str) -> None:
    insert(client, {"id": item_id, "text": "t"})
    url = "/tables/todo/" + quote(item_id, safe="")
    response = client.get(url, headers=V3)
    assert response.status_code == 200 and response.json()["id"] == item_id


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("a%2Fb", id="encoded-slash"),
        pytest.param("%2E%2E", id="dot-dot"),
        pytest.param("%01", id="control"),
        pytest.param("x" * 256, id="too-long"),
        pytest.param("a%2Bb", id="plus"),
    ],
)
def test_invalid_url_ids_are_400(client: Any, raw: str) -> None:
    response = client.get(f"/tables/todo/{raw}", headers=V3)
    assert response.status_code == 400
    assert response.json()["status"] == 400


def test_v2_patch_merges_and_v3_put_replaces(client: Any) -> None:
    insert(client, {"id": "m", "text": "a", "count": 1})
    merged = client.patch("/tables/todo/m", json={"count": 2}, headers=V2)
    assert merged.status_code == 200
    assert merged.json()["text"] == "a" and merged.json()["count"] == 2
    replaced = client.put("/tables/todo/m", json={"id": "m", "count": 3}, headers=V3)
    assert replaced.status_code == 200
    assert replaced.json()["text"] is None and replaced.json()["count"] == 3
    assert replaced.headers["etag"] == f'"{replaced.json()["version"]}"'


def test_every_write_changes_version_and_strictly_increases_updated_at(client: Any) -> None:
    seen = [insert(client, {"id": "w", "text": "0"})]
    for n in range(1, 6):
        seen.append(client.patch("/tables/todo/w", json={"text": str(n)}, headers=V3).json())
    assert client.delete("/tables/todo/w", headers=V3).status_code == 204
    seen.append(client.post("/tables/todo/w", headers=V2).json())
    assert len({item["version"] for item in seen}) == len(seen)
    stamps = [item["updatedAt"] for item in seen]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)


def test_body_id_differing_from_url_is_400(client: Any) -> None:
    insert(client, {"id": "mine", "text": "a"})
    for method in ("PATCH", "PUT"):
        response = client.request(method, "/tables/todo/mine", json={"id": "other"}, headers=V3)
        assert response.status_code == 400
    assert client.get("/tables/todo/mine", headers=V3).json()["text"] == "a"


def test_missing_item_is_404_on_every_verb(client: Any) -> None:
    for method in ("GET", "PATCH", "PUT", "DELETE"):
        body = {"text": "x"} if method in ("PATCH", "PUT") else None
        response = client.request(method, "/tables/todo/nope", json=body, headers=V3)
        assert response.status_code == 404, method
        assert response.json() == {"status": 404, "error": "The item does not exist"}


def test_soft_delete_then_410_v3_404_v2_and_undelete(client: Any) -> None:
    insert(client, {"id": "sd", "text": "a"})
    assert client.delete("/tables/todo/sd", headers=V3).status_code == 204
    assert client.get("/tables/todo/sd", headers=V3).status_code == 410
    assert client.get("/tables/todo/sd", headers=V2).status_code == 404
    assert client.patch("/tables/todo/sd", json={"text": "b"}, headers=V3).status_code == 410
    assert client.delete("/tables/todo/sd", headers=V3).status_code == 410
    shown = client.get("/tables/todo/sd?__IncludeDeleted=TRUE", headers=V3)
    assert shown.status_code == 200 and shown.json()["deleted"] is True
    restored = client.patch("/tables/todo/sd", json={"deleted": False}, headers=V3)
    assert restored.status_code == 200 and restored.json()["deleted"] is False
    assert client.delete("/tables/todo/sd", headers=V2).status_code == 204
    undeleted = client.post("/tables/todo/sd", headers=V2)
    assert undeleted.status_code == 201 and undeleted.json()["deleted"] is False


def test_hard_delete_table_removes_the_row(make_client: Any) -> None:
    from tablesync.server import Table

    client = make_client([Table("todo", columns={"text": "string"}, soft_delete=False)])
    insert(client, {"id": "h", "text": "a"})
    assert client.delete("/tables/todo/h", headers=V3).status_code == 204
    assert client.get("/tables/todo/h?__includedeleted=true", headers=V3).status_code == 404


def test_verbs_of_the_other_protocol_version_are_405(client: Any) -> None:
    insert(client, {"id": "v", "text": "a"})
    assert client.put("/tables/todo/v", json={"text": "b"}, headers=V2).status_code == 405
    assert client.post("/tables/todo/v", headers=V3).status_code == 405


def test_deleted_true_in_a_write_body_is_400(client: Any) -> None:
    insert(client, {"id": "d", "text": "a"})
    response = client.patch("/tables/todo/d", json={"deleted": True}, headers=V3)
    assert response.status_code == 400
    assert (
        client.post("/tables/todo", json={"id": "d2", "deleted": True}, headers=V3).status_code
        == 400
    )


def test_v3_put_with_deleted_false_does_not_resurrect_a_tombstone(client: Any) -> None:
    insert(client, {"id": "t", "text": "a"})
    assert client.delete("/tables/todo/t", headers=V3).status_code == 204
    body = {"id": "t", "text": "b", "deleted": False}
    assert client.put("/tables/todo/t", json=body, headers=V3).status_code == 410
    restored = client.put("/tables/todo/t?__includedeleted=true", json=body, headers=V3)
    assert restored.status_code == 200 and restored.json()["deleted"] is False
    assert restored.json()["text"] == "b"


def test_head_requests_answer_like_get_without_a_body(client: Any) -> None:
    insert(client, {"id": "hd", "text": "a"})
    item = client.head("/tables/todo/hd", headers=V3)
    assert item.status_code == 200 and item.content == b"" and item.headers["etag"]
    assert client.head("/tables/todo", headers=V3).status_code == 200
    assert client.head("/tables/todo/none", headers=V3).status_code == 404
