"""Two users on an owner-scoped table: B can neither read, count, infer, change nor delete A's rows.

Every route and query form is probed as B, on SQLite and PostgreSQL; A's rows (seen through an
admin token, including tombstones) must be byte-for-byte the same afterwards.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.testclient import TestClient

from .conftest import V2, V3, bearer

A_IDS = ("a1", "a2", "a3", "a4")
SECRET_TEXT = "alice-private"


def seed(client: TestClient) -> None:
    for n, item_id in enumerate(A_IDS):
        body = {"id": item_id, "text": f"{SECRET_TEXT}-{n}", "n": n}
        assert client.post("/tables/notes", json=body, headers=bearer("alice")).status_code == 201
    assert client.delete("/tables/notes/a4", headers=bearer("alice")).status_code == 204
    body = {"id": "b1", "text": "bob-own", "n": 100}
    assert client.post("/tables/notes", json=body, headers=bearer("bob")).status_code == 201


def snapshot(client: TestClient) -> list[dict[str, Any]]:
    """Every row of the table (tombstones too) as an admin sees it."""
    response = client.get(
        "/tables/notes",
        params={"__includedeleted": "true", "$top": "1000", "$orderby": "id"},
        headers=bearer("root", roles=("admin",)),
    )
    assert response.status_code == 200
    items: list[dict[str, Any]] = []
    page = response.json()
    items.extend(page["items"])
    while page["nextLink"]:
        page = client.get(page["nextLink"], headers=bearer("root", roles=("admin",))).json()
        items.extend(page["items"])
    return items


def leaks(response: Any) -> bool:
    """Whether a response mentions any of A's ids or texts (body or headers)."""
    text = response.text + json.dumps(dict(response.headers))
    return SECRET_TEXT in text or any(f'"{item_id}"' in text for item_id in A_IDS)


@pytest.fixture(scope="module")
def probed(module_client: TestClient) -> TestClient:
    """The seeded app shared by the probes: each proves it changed nothing."""
    seed(module_client)
    return module_client


@pytest.fixture
def seeded(client: TestClient) -> TestClient:
    """A freshly seeded app for tests that write."""
    seed(client)
    return client


QUERIES = [
    pytest.param({}, id="all"),
    pytest.param({"$count": "true"}, id="count"),
    pytest.param({"$filter": "id eq 'a1'", "$count": "true"}, id="filter-id"),
    pytest.param({"$filter": "owner eq 'alice'", "$count": "true"}, id="filter-owner"),
    pytest.param({"$filter": "startswith(text, 'alice')", "$count": "true"}, id="filter-text"),
    pytest.param({"$filter": "owner ne 'bob'", "$count": "true"}, id="filter-not-mine"),
    pytest.param({"$filter": "n lt 100", "$count": "true"}, id="filter-n"),
    pytest.param({"__includedeleted": "true", "$count": "true"}, id="include-deleted"),
    pytest.param({"$orderby": "text desc", "$top": "1"}, id="orderby-top"),
    pytest.param({"$orderby": "updatedAt", "$count": "true"}, id="keyset-order"),
    pytest.param({"$select": "id,owner,text"}, id="select"),
    pytest.param({"$skip": "0", "$top": "1000", "$count": "true"}, id="skip-top"),
    pytest.param({"$filter": "id in ('a1','a2','b1')", "$count": "true"}, id="filter-in"),
]


@pytest.mark.parametrize("params", QUERIES)
def test_queries_and_counts_show_only_own_rows(probed: TestClient, params: dict[str, str]) -> None:
    before = snapshot(probed)
    response = probed.get("/tables/notes", params=params, headers=bearer("bob"))
    if response.status_code == 400:  # e.g. a dialect without "in": still must not leak
        assert not leaks(response)
        return
    assert response.status_code == 200
    page = response.json()
    assert {item["id"] for item in page["items"]} <= {"b1"}
    assert not leaks(response)
    if params.get("$count") == "true":
        assert page["count"] == len([i for i in page["items"] if i["id"] == "b1"])
    assert snapshot(probed) == before


def test_alice_sees_her_rows_and_counts(probed: TestClient) -> None:
    response = probed.get("/tables/notes", params={"$count": "true"}, headers=bearer("alice"))
    assert response.json()["count"] == 3  # a4 is a tombstone
    ids = [item["id"] for item in response.json()["items"]]
    assert ids == ["a1", "a2"]  # page_size 2
    assert all(item["owner"] == "alice" for item in response.json()["items"])


def test_next_links_stay_inside_the_view(seeded: TestClient) -> None:
    for n in range(3):
        body = {"id": f"b{n + 2}", "text": "bob", "n": n}
        assert seeded.post("/tables/notes", json=body, headers=bearer("bob")).status_code == 201
    for params in ({}, {"$orderby": "updatedAt"}, {"__includedeleted": "true"}):
        seen: list[str] = []
        page = seeded.get("/tables/notes", params=params, headers=bearer("bob")).json()
        seen.extend(item["id"] for item in page["items"])
        for _ in range(10):
            if not page["nextLink"]:
                break
            response = seeded.get(page["nextLink"], headers=bearer("bob"))
            assert not leaks(response)
            page = response.json()
            seen.extend(item["id"] for item in page["items"])
        assert sorted(seen) == ["b1", "b2", "b3", "b4"], params
        # Alice following Bob's link sees her rows, never his.
        link = seeded.get("/tables/notes", params=params, headers=bearer("bob")).json()["nextLink"]
        page = seeded.get(link, headers=bearer("alice")).json()
        assert all(item["owner"] == "alice" for item in page["items"])


def test_v2_queries_and_link_headers_stay_inside_the_view(probed: TestClient) -> None:
    headers = {**V2, "Authorization": bearer("bob")["Authorization"]}
    response = probed.get(
        "/tables/notes", params={"$inlinecount": "allpages", "__includedeleted": "true"},
        headers=headers,
    )  # fmt: skip
    assert response.status_code == 200
    assert response.json()["count"] == 1
    assert [item["id"] for item in response.json()["results"]] == ["b1"]
    assert "Link" not in response.headers
    assert not leaks(response)


ITEM_PROBES = [
    pytest.param("GET", {}, None, id="get"),
    pytest.param("GET", {"__includedeleted": "true"}, None, id="get-deleted"),
    pytest.param("GET", {}, {"If-None-Match": '"x"'}, id="get-if-none-match"),
    pytest.param("GET", {}, {"If-Match": '"x"'}, id="get-if-match"),
    pytest.param("PATCH", {}, None, id="patch"),
    pytest.param("PATCH", {}, {"If-Match": '"x"'}, id="patch-if-match-wrong"),
    pytest.param("PATCH", {}, {"If-Match": "*"}, id="patch-if-match-star"),
    pytest.param("PATCH", {"__includedeleted": "true"}, None, id="patch-deleted"),
    pytest.param("PUT", {}, None, id="put"),
    pytest.param("PUT", {"__includedeleted": "true"}, {"If-Match": "*"}, id="put-deleted"),
    pytest.param("DELETE", {}, None, id="delete"),
    pytest.param("DELETE", {}, {"If-Match": '"x"'}, id="delete-if-match-wrong"),
    pytest.param("DELETE", {}, {"If-Match": "*"}, id="delete-if-match-star"),
]


@pytest.mark.parametrize("item_id", ["a1", "a4", "zz-missing"])
@pytest.mark.parametrize(("method", "params", "extra"), ITEM_PROBES)
def test_item_routes_answer_as_if_the_row_did_not_exist(
    probed: TestClient,
    method: str,
    params: dict[str, str],
    extra: dict[str, str] | None,
    item_id: str,
) -> None:
    """A's live row, A's tombstone and a missing id get the same answer: B learns nothing."""
    before = snapshot(probed)
    body = {"text": "hijacked", "n": 9, "owner": "bob"} if method in ("PATCH", "PUT") else None
    if method == "PUT":
        body = {**(body or {}), "id": item_id}
    response = probed.request(
        method, f"/tables/notes/{item_id}", params=params, json=body,
        headers={**bearer("bob"), **(extra or {})},
    )  # fmt: skip
    assert response.status_code == 404, response.text
    assert not leaks(response)
    assert "ETag" not in response.headers
    assert snapshot(probed) == before


@pytest.mark.parametrize("item_id", ["a1", "a4"])
def test_v2_undelete_and_conflicts_of_foreign_rows(probed: TestClient, item_id: str) -> None:
    before = snapshot(probed)
    headers = {**V2, "Authorization": bearer("bob")["Authorization"]}
    undelete = probed.post(f"/tables/notes/{item_id}", headers=headers)
    stale = probed.patch(
        f"/tables/notes/{item_id}", json={"text": "x", "version": "AAAA"}, headers=headers
    )
    for response in (undelete, stale):
        assert response.status_code == 404, response.text
        assert not leaks(response)
    assert snapshot(probed) == before


@pytest.mark.parametrize("item_id", ["a1", "a4"])
def test_duplicate_insert_of_a_foreign_id_reveals_no_body(probed: TestClient, item_id: str) -> None:
    """409 would carry the existing row: outside the view the answer is a 400 without it."""
    before = snapshot(probed)
    response = probed.post(
        "/tables/notes", json={"id": item_id, "text": "mine now"}, headers=bearer("bob")
    )
    assert response.status_code == 400
    assert not leaks(response) or item_id in response.json()["error"]  # only the id he sent
    assert SECRET_TEXT not in response.text
    assert "ETag" not in response.headers
    assert snapshot(probed) == before


def test_own_duplicate_insert_still_gets_the_409_body(probed: TestClient) -> None:
    response = probed.post("/tables/notes", json={"id": "b1"}, headers=bearer("bob"))
    assert response.status_code == 409
    assert response.json()["text"] == "bob-own"


def test_owner_is_stamped_by_the_server_and_never_writable(seeded: TestClient) -> None:
    response = seeded.post(
        "/tables/notes", json={"id": "b9", "text": "x", "owner": "alice"}, headers=bearer("bob")
    )
    assert response.status_code == 201
    assert response.json()["owner"] == "bob"
    etag = response.headers["ETag"]
    for method in ("PATCH", "PUT"):
        body = {"id": "b9", "text": method, "owner": "alice"}
        response = seeded.request(
            method, "/tables/notes/b9", json=body, headers={**bearer("bob"), "If-Match": etag}
        )
        assert response.status_code == 200, response.text
        assert response.json()["owner"] == "bob"
        etag = response.headers["ETag"]
    alice = seeded.get("/tables/notes/b9", headers=bearer("alice"))
    assert alice.status_code == 404


def test_idempotency_keys_are_per_user(seeded: TestClient) -> None:
    """Bob replaying Alice's key and request is evaluated as his own request, not replayed."""
    body = {"id": "k1", "text": f"{SECRET_TEXT}-k"}
    first = seeded.post(
        "/tables/notes", json=body, headers={**bearer("alice"), "Idempotency-Key": "key-1"}
    )
    assert first.status_code == 201
    replay = seeded.post(
        "/tables/notes", json=body, headers={**bearer("bob"), "Idempotency-Key": "key-1"}
    )
    assert replay.status_code == 400
    assert SECRET_TEXT not in replay.text
    again = seeded.post(
        "/tables/notes", json=body, headers={**bearer("alice"), "Idempotency-Key": "key-1"}
    )
    assert again.status_code == 201
    assert again.json() == first.json()


def test_admin_role_sees_every_row(probed: TestClient) -> None:
    rows = snapshot(probed)
    assert {row["id"] for row in rows} == {*A_IDS, "b1"}
    assert {row["owner"] for row in rows} == {"alice", "bob"}


def test_one_kept_statement_serves_every_owner_each_run_bound_to_its_caller(
    probed: TestClient,
) -> None:
    """Statements of owner views are kept per shape with the owner a named parameter
    (``_repository.kept``): a wrong binding would show one caller another's rows."""
    from tablesync.server import _item_reads, _querying, _repository

    def hits() -> tuple[int, int]:
        item_reads = (_item_reads._item_statement, _repository._read_statement)
        return _querying._page_statement.cache_info().hits, sum(
            read.cache_info().hits for read in item_reads
        )

    page_hits, read_hits = hits()
    query = {"$filter": "n ge 0", "$orderby": "id", "$count": "true"}
    for user, ids in [("alice", ["a1", "a2"]), ("bob", ["b1"]), ("alice", ["a1", "a2"])]:
        page = probed.get("/tables/notes", params=query, headers=bearer(user)).json()
        assert [item["id"] for item in page["items"]] == ids
        assert page["count"] == {"alice": 3, "bob": 1}[user]
        # A read by id (on the event loop on PostgreSQL, else ``read_row``) after the other.
        for item_id in ("a1", "b1"):
            response = probed.get(f"/tables/notes/{item_id}", headers=bearer(user))
            assert response.status_code == (200 if item_id[0] == user[0] else 404)
    # The second and third callers' pages, and five of the six reads, reused a statement.
    now_page_hits, now_read_hits = hits()
    assert now_page_hits >= page_hits + 2
    assert now_read_hits >= read_hits + 5


ANONYMOUS_ROUTES = [
    pytest.param("GET", "/tables/notes", id="query"),
    pytest.param("HEAD", "/tables/notes", id="head"),
    pytest.param("POST", "/tables/notes", id="insert"),
    pytest.param("GET", "/tables/notes/a1", id="read"),
    pytest.param("PATCH", "/tables/notes/a1", id="patch"),
    pytest.param("PUT", "/tables/notes/a1", id="put"),
    pytest.param("DELETE", "/tables/notes/a1", id="delete"),
    pytest.param("POST", "/tables/notes/a1", id="undelete"),
    pytest.param("GET", "/tables/locked", id="locked-query"),
    pytest.param("POST", "/tables/catalogue", id="catalogue-insert"),
    pytest.param("GET", "/tables/unknown", id="unknown-table"),
]


@pytest.mark.parametrize(("method", "path"), ANONYMOUS_ROUTES)
def test_anonymous_callers_get_401(probed: TestClient, method: str, path: str) -> None:
    before = snapshot(probed)
    body = {"id": "a1", "text": "anon"} if method in ("POST", "PATCH", "PUT") else None
    response = probed.request(method, path, json=body, headers=V3)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert not leaks(response)
    assert snapshot(probed) == before


def _batch(client: TestClient, headers: dict[str, str], operations: list[Any]) -> Any:
    return client.post("/tables/$batch", json={"operations": operations}, headers=headers)


FOREIGN_BATCH = [
    {"method": "PATCH", "table": "notes", "id": "a1", "body": {"text": "hijacked"}},
    {"method": "PUT", "table": "notes", "id": "a2", "body": {"id": "a2", "text": "hijacked"}},
    {"method": "DELETE", "table": "notes", "id": "a1", "headers": {"If-Match": "*"}},
    {"method": "PATCH", "table": "notes", "id": "a4", "body": {"deleted": False}},
    {"method": "POST", "table": "notes", "body": {"id": "a1", "text": "dup"}},
]


def test_batch_operations_on_foreign_rows_change_and_reveal_nothing(probed: TestClient) -> None:
    before = snapshot(probed)
    response = _batch(probed, bearer("bob"), FOREIGN_BATCH)
    assert response.status_code == 200, response.text
    statuses = [result["status"] for result in response.json()["results"]]
    assert statuses[:4] == [404, 404, 404, 404][: len(statuses)]
    assert all(status in (400, 404) for status in statuses)
    assert not leaks(response)
    assert snapshot(probed) == before


def test_anonymous_batches_are_refused(probed: TestClient) -> None:
    before = snapshot(probed)
    response = _batch(probed, V3, FOREIGN_BATCH)
    if response.status_code == 200:
        assert {result["status"] for result in response.json()["results"]} <= {401}
    else:
        assert response.status_code == 401
    assert not leaks(response)
    assert snapshot(probed) == before


def test_openapi_declares_security_per_operation(probed: TestClient) -> None:
    document = probed.get("/openapi.json").json()
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearer"]["scheme"] == "bearer"
    assert schemes["zumoAuth"]["name"] == "X-ZUMO-AUTH"
    assert schemes["apiKey"]["name"] == "X-API-Key"
    notes, catalogue = document["paths"]["/tables/notes"], document["paths"]["/tables/catalogue"]
    assert notes["get"]["security"] and "401" in notes["get"]["responses"]
    assert "security" not in catalogue["get"]  # read="anyone"
    assert catalogue["post"]["security"] and "403" in catalogue["post"]["responses"]
    assert document["paths"]["/tables/notes/{id}"]["delete"]["security"]
