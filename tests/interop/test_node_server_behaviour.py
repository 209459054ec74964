"""The official Node server (azure-mobile-apps 4.0.2) as observed on the wire.

These tests prove the harness works and pin down the peer's behaviour that tablesync's client
must cope with (docs/compatibility.md lists each as a known difference). If a test here fails,
the peer is not the one peers.md describes and every other interop result is suspect.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.interop.peers import NodeServer

V2 = {"ZUMO-API-VERSION": "2.0.0"}


@pytest.fixture
def http(node_server: NodeServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=node_server.url, headers=V2, timeout=10) as client:
        yield client


def insert(http: httpx.Client, item: dict[str, Any], table: str = "todoitem") -> httpx.Response:
    response = http.post(f"/tables/{table}", json=item)
    assert response.status_code == 201, response.text
    return response


@pytest.mark.parametrize(
    "headers,params",
    [
        pytest.param({}, {}, id="missing"),
        pytest.param({"ZUMO-API-VERSION": "3.0.0"}, {}, id="v3-header"),
        pytest.param({}, {"zumo-api-version": "3.0.0"}, id="v3-query"),
    ],
)
def test_api_version_other_than_2_is_rejected(
    node_server: NodeServer, headers: dict[str, str], params: dict[str, str]
) -> None:
    response = httpx.get(f"{node_server.url}/tables/todoitem", headers=headers, params=params)
    assert response.status_code == 400
    assert "ZUMO-API-VERSION" in response.json()["error"]


def test_version_as_lowercase_query_parameter_is_accepted(node_server: NodeServer) -> None:
    response = httpx.get(f"{node_server.url}/tables/todoitem", params={"zumo-api-version": "2.0.0"})
    assert response.status_code == 200
    assert response.json() == []


def test_insert_returns_201_with_etag_equal_to_quoted_version(http: httpx.Client) -> None:
    response = insert(http, {"text": "milk", "complete": False})
    body = response.json()
    assert response.headers["ETag"] == f'"{body["version"]}"'
    # The sqlite provider's version is a base64 integer counter, starting at 1.
    assert base64.b64decode(body["version"]) == b"1"
    assert uuid.UUID(body["id"]).version == 4
    assert body["deleted"] is False
    assert body["createdAt"] == body["updatedAt"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", body["updatedAt"])


def test_duplicate_insert_is_409_echoing_the_submitted_item(http: httpx.Client) -> None:
    insert(http, {"id": "dup", "text": "stored"})
    response = http.post("/tables/todoitem", json={"id": "dup", "text": "submitted"})
    assert response.status_code == 409
    # Not the server row: the request's own item comes back (peers.md, protocol.md §3.2).
    assert response.json() == {"id": "dup", "text": "submitted"}


def test_stale_if_match_is_412_with_current_row_and_etag(http: httpx.Client) -> None:
    first = insert(http, {"id": "c1", "text": "v1"}).json()
    second = http.patch("/tables/todoitem/c1", json={"text": "v2"}).json()
    response = http.patch(
        "/tables/todoitem/c1", json={"text": "v3"}, headers={"If-Match": f'"{first["version"]}"'}
    )
    assert response.status_code == 412
    assert response.json()["text"] == "v2"
    assert response.json()["version"] == second["version"]
    assert response.headers["ETag"] == f'"{second["version"]}"'


def test_stale_body_version_without_if_match_is_409_with_current_row(http: httpx.Client) -> None:
    first = insert(http, {"id": "c2", "text": "v1"}).json()
    http.patch("/tables/todoitem/c2", json={"text": "v2"})
    response = http.patch("/tables/todoitem/c2", json={"text": "v3", "version": first["version"]})
    assert response.status_code == 409
    assert response.json()["text"] == "v2"


def test_soft_delete_returns_200_with_the_deleted_row(http: httpx.Client) -> None:
    row = insert(http, {"id": "d1", "text": "x"}).json()
    response = http.delete("/tables/todoitem/d1")
    assert response.status_code == 200
    assert response.json()["deleted"] is True
    assert response.json()["version"] != row["version"]
    assert http.get("/tables/todoitem/d1").status_code == 404
    assert http.get("/tables/todoitem/d1", params={"__includeDeleted": "true"}).status_code == 404


@pytest.mark.parametrize(
    "params,sees_deleted",
    [
        pytest.param({}, False, id="absent"),
        pytest.param({"__includeDeleted": "true"}, True, id="true"),
        # Presence semantics: `!!req.query.__includeDeleted` is true for the string "false".
        pytest.param({"__includeDeleted": "false"}, True, id="false-still-includes"),
        # The lower-case spelling (v3's, AMA's) is ignored by this server.
        pytest.param({"__includedeleted": "true"}, False, id="lowercase-ignored"),
    ],
)
def test_include_deleted_flag(
    http: httpx.Client, params: dict[str, str], sees_deleted: bool
) -> None:
    insert(http, {"id": "keep", "text": "k"})
    insert(http, {"id": "gone", "text": "g"})
    assert http.delete("/tables/todoitem/gone").status_code == 200
    ids = {row["id"] for row in http.get("/tables/todoitem", params=params).json()}
    assert ids == ({"keep", "gone"} if sees_deleted else {"keep"})


def test_undelete_is_post_by_id_returning_201(http: httpx.Client) -> None:
    insert(http, {"id": "u1", "text": "x"})
    http.delete("/tables/todoitem/u1")
    response = http.post("/tables/todoitem/u1")
    assert response.status_code == 201
    assert response.json()["deleted"] is False
    assert http.get("/tables/todoitem/u1").status_code == 200


def test_link_header_has_no_brackets_and_loses_port_and_path(
    node_server_factory: Any,
) -> None:
    server = node_server_factory(page_size=3)
    with httpx.Client(base_url=server.url, headers=V2, timeout=10) as http:
        for n in range(5):
            insert(http, {"id": f"p{n}", "n": n})
        response = http.get("/tables/todoitem")
        explicit_top = http.get("/tables/todoitem", params={"$top": "4"})
    assert [row["id"] for row in response.json()] == ["p0", "p1", "p2"]
    link = response.headers["Link"]
    assert not link.startswith("<")
    url, rel = link.split("; ")
    assert rel == "rel=next"
    parsed = httpx.URL(url)
    assert parsed.host == "127.0.0.1"
    assert parsed.port is None, "the server port is lost"
    assert parsed.path == "/", "the /tables/<name> path is lost"
    # Without $top the link asks for the next page of page-size rows.
    assert parsed.params["$top"] == "3"
    assert parsed.params["$skip"] == "3"
    # An explicit $top is honoured even above the page size (no cap at pageSize), and because
    # the page is "full" a Link to the NEXT $top rows comes back: a client that follows Link
    # blindly overshoots the $top it asked for (4.0.2's nextLink.js; protocol.md §4.3 describes
    # an older fork that subtracted the rows returned).
    assert [row["id"] for row in explicit_top.json()] == ["p0", "p1", "p2", "p3"]
    overshoot = httpx.URL(explicit_top.headers["Link"].split("; ")[0])
    assert (overshoot.params["$top"], overshoot.params["$skip"]) == ("4", "4")


def test_top_above_max_top_is_400(http: httpx.Client) -> None:
    assert http.get("/tables/todoitem", params={"$top": "1001"}).status_code == 400
    assert http.get("/tables/todoitem", params={"$top": "1000"}).status_code == 200


def test_inlinecount_gives_results_and_count(http: httpx.Client) -> None:
    for n in range(3):
        insert(http, {"id": f"i{n}", "n": n})
    body = http.get("/tables/todoitem", params={"$inlinecount": "allpages", "$top": "1"}).json()
    assert body["count"] == 3
    assert [row["id"] for row in body["results"]] == ["i0"]


def test_bulk_route_gives_rows_one_shared_updated_at(http: httpx.Client) -> None:
    insert(http, {"id": "seed", "text": "s", "n": 0})
    rows = [{"id": f"b{n:02d}", "text": "t", "n": n} for n in range(10)]
    assert http.post("/_interop/bulk/todoitem", json=rows).status_code == 201
    stored = http.get("/tables/todoitem", params={"$filter": "text eq 't'"}).json()
    assert len(stored) == 10
    assert len({row["updatedAt"] for row in stored}) == 1


def test_reserved_system_property_in_body_is_400(http: httpx.Client) -> None:
    response = http.post(
        "/tables/todoitem", json={"text": "x", "updatedAt": "2020-01-01T00:00:00Z"}
    )
    assert response.status_code == 400
    assert "reserved" in response.json()["error"]
