"""Keyset paging: a query ordered by ``updatedAt`` continues with ``$skiptoken``, not ``$skip``."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tablesync.protocol import parse_datetime, to_millis
from tablesync.server import Table, create_app
from tests._testclient import TestClient

V2 = {"ZUMO-API-VERSION": "2.0.0"}
V3 = {"ZUMO-API-VERSION": "3.0.0"}
ROWS = 45


@pytest.fixture(
    scope="module",
    params=[pytest.param("sqlite", id="sqlite"), pytest.param("postgres", id="postgres")],
)
def client(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    """Tables ``notes`` (read only by the tests) and ``moving`` (written by one test), page
    size 10, each holding ``ROWS`` rows written in id order. Shared by the module's tests."""
    if request.param == "sqlite":
        database = f"sqlite:///{tmp_path_factory.mktemp('keyset') / 'keyset.db'}"
    else:
        database = request.getfixturevalue("postgres_database_factory")()
    tables = [Table(name, columns={"n": "integer"}, page_size=10) for name in ("notes", "moving")]
    with TestClient(create_app(database, tables), raise_server_exceptions=False) as http:
        for name in ("notes", "moving"):
            for n in range(ROWS):
                body = {"id": f"n{n:02d}", "n": n}
                assert http.post(f"/tables/{name}", json=body, headers=V3).is_success
        yield http


def _params(link: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(link).query)


def _walk(http: TestClient, url: str) -> tuple[list[dict[str, Any]], list[str]]:
    items: list[dict[str, Any]] = []
    links: list[str] = []
    next_url: str | None = url
    while next_url is not None:
        page = http.get(next_url, headers=V3).json()
        items += page["items"]
        next_url = page["nextLink"]
        if next_url is not None:
            links.append(next_url)
    return items, links


def test_pull_order_pages_by_skiptoken_and_sees_every_row_once(client: TestClient) -> None:
    items, links = _walk(client, "/tables/notes?$orderby=updatedAt&$count=true")
    assert [item["id"] for item in items] == [f"n{n:02d}" for n in range(ROWS)]
    assert len(links) == 4
    for link in links:
        params = _params(link)
        assert "$skip" not in params and len(params["$skiptoken"]) == 1
        assert params["$orderby"] == ["updatedAt"] and params["$count"] == ["true"]


def test_count_ignores_the_keyset_position(client: TestClient) -> None:
    first = client.get("/tables/notes?$orderby=updatedAt&$count=true", headers=V3).json()
    second = client.get(first["nextLink"], headers=V3).json()
    assert first["count"] == second["count"] == ROWS
    assert [i["id"] for i in second["items"]] == [f"n{n:02d}" for n in range(10, 20)]


def test_rows_written_between_pages_are_neither_skipped_nor_lost(client: TestClient) -> None:
    first = client.get("/tables/moving?$orderby=updatedAt", headers=V3).json()
    # Moving an already-read row to the end would shift every later row by one under $skip,
    # so the row at the page boundary would be skipped; the keyset continues after n09.
    assert client.patch("/tables/moving/n03", json={"n": 100}, headers=V3).is_success
    assert client.post("/tables/moving", json={"id": "late", "n": 99}, headers=V3).is_success
    rest, _ = _walk(client, first["nextLink"])
    ids = [item["id"] for item in rest]
    assert ids == [*(f"n{n:02d}" for n in range(10, ROWS)), "n03", "late"]


def test_skip_from_the_client_still_works_and_hands_over_to_the_keyset(
    client: TestClient,
) -> None:
    page = client.get("/tables/notes?$orderby=updatedAt&$skip=5&$top=12", headers=V3).json()
    assert [i["id"] for i in page["items"]] == [f"n{n:02d}" for n in range(5, 15)]
    params = _params(page["nextLink"])
    assert params["$top"] == ["2"] and "$skip" not in params
    rest = client.get(page["nextLink"], headers=V3).json()
    assert [i["id"] for i in rest["items"]] == ["n15", "n16"] and rest["nextLink"] is None


def test_other_orders_keep_skip_links(client: TestClient) -> None:
    page = client.get("/tables/notes?$orderby=n desc", headers=V3).json()
    params = _params(page["nextLink"])
    assert params["$skip"] == ["10"] and "$skiptoken" not in params


def test_descending_updated_at_pages_by_keyset(client: TestClient) -> None:
    items, links = _walk(client, "/tables/notes?$orderby=updatedAt desc")
    assert [item["id"] for item in items] == [f"n{n:02d}" for n in reversed(range(ROWS))]
    assert all("$skiptoken" in _params(link) for link in links)


def test_v2_link_header_carries_the_skiptoken(client: TestClient) -> None:
    response = client.get("/tables/notes?$orderby=updatedAt", headers=V2)
    link = response.headers["Link"]
    assert link.endswith("; rel=next") and "$skiptoken=" in link
    follow = client.get(link.removesuffix("; rel=next"), headers=V2)
    assert [item["id"] for item in follow.json()] == [f"n{n:02d}" for n in range(10, 20)]


def _token(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        pytest.param("$orderby=updatedAt&$skiptoken=%%%", "$skiptoken is not valid", id="junk"),
        pytest.param("$orderby=updatedAt&$skiptoken=", "$skiptoken is not valid", id="empty"),
        pytest.param(
            f"$orderby=updatedAt&$skiptoken={_token('k9|1|n01')}", "not valid", id="version"
        ),
        pytest.param(
            f"$orderby=updatedAt&$skiptoken={_token('k1|-5|n01')}", "not valid", id="negative"
        ),
        pytest.param(
            f"$orderby=updatedAt&$skiptoken={_token('k1|99999999999999999|n01')}",
            "not valid",
            id="past-year-9999",
        ),
        pytest.param(
            f"$orderby=updatedAt&$skiptoken={_token('k1|1|a/b')}", "not valid", id="bad-id"
        ),
        pytest.param(f"$orderby=updatedAt&$skiptoken={'A' * 2000}", "not valid", id="too-long"),
        pytest.param(
            f"$orderby=n&$skiptoken={_token('k1|1|n01')}", "needs the $orderby", id="wrong-order"
        ),
        pytest.param(f"$skiptoken={_token('k1|1|n01')}", "needs the $orderby", id="no-order"),
    ],
)
def test_bad_skiptokens_are_a_clear_400(client: TestClient, query: str, message: str) -> None:
    response = client.get(f"/tables/notes?{query}", headers=V3)
    assert response.status_code == 400, response.text
    assert message in response.text


def test_a_valid_token_from_elsewhere_only_narrows_the_query(client: TestClient) -> None:
    # The token is opaque, not secret: a hand-made one selects rows after that position.
    last = client.get("/tables/notes/n39", headers=V3).json()
    millis = to_millis(parse_datetime(last["updatedAt"]))
    page = client.get(
        f"/tables/notes?$orderby=updatedAt&$skiptoken={_token(f'k1|{millis}|n39')}", headers=V3
    ).json()
    assert [item["id"] for item in page["items"]] == [f"n{n:02d}" for n in range(40, ROWS)]
    assert page["nextLink"] is None
