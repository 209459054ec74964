"""Queries: shapes (v2/v3), paging links, counts, $select, tombstones and v2 date literals."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tablesync.server import Table, create_app

from .conftest import TODO_COLUMNS, V2, V3, TestClient

ROWS = 23


@pytest.fixture(
    scope="module",
    params=[pytest.param("sqlite", id="sqlite"), pytest.param("postgres", id="postgres")],
)
def filled(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One read-only table per backend for the whole module (loading it is the slow part)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('queries') / 'q.db'}"
    else:
        url = request.getfixturevalue("postgres_database_factory")()
    app = create_app(url, [Table("todo", columns=TODO_COLUMNS, page_size=10, max_top=50)])
    with TestClient(app, raise_server_exceptions=False) as client:
        for n in range(ROWS):
            body = {
                "id": f"t{n:02d}",
                "count": n % 5,
                "text": f"item {n}",
                "due": f"2024-01-{n + 1:02d}T00:00:00Z",
            }
            assert client.post("/tables/todo", json=body, headers=V3).status_code == 201
        for n in (3, 4):
            assert client.delete(f"/tables/todo/t{n:02d}", headers=V3).status_code == 204
        yield client


def _query(link: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(link).query)


def test_v3_pages_follow_the_next_link_rule(filled: Any) -> None:
    page = filled.get("/tables/todo?$top=15&$count=true", headers=V3).json()
    assert len(page["items"]) == 10 and page["count"] == ROWS - 2
    link = page["nextLink"]
    assert link.startswith("http://testserver/tables/todo?")
    assert _query(link)["$skip"] == ["10"] and _query(link)["$top"] == ["5"]
    last = filled.get(link, headers=V3).json()
    assert len(last["items"]) == 5 and last["nextLink"] is None


def test_v3_next_link_is_a_path_with_the_option_and_keeps_the_query(filled: Any) -> None:
    headers = {**V3, "X-ZUMO-Options": "nextLink=path"}
    url = "/tables/todo?$filter=count eq 1 or count eq 2&$orderby=count desc"
    seen: list[tuple[int, str]] = []
    next_url: str | None = url
    while next_url:
        page = filled.get(next_url, headers=headers).json()
        seen += [(i["count"], i["id"]) for i in page["items"]]
        next_url = page["nextLink"]
        assert next_url is None or next_url.startswith("/tables/todo?$filter=")
    expected = sorted(
        ((n % 5, f"t{n:02d}") for n in range(ROWS) if n % 5 in (1, 2)), key=lambda t: (-t[0], t[1])
    )
    assert seen == expected


def test_v2_bare_array_with_link_header_and_inlinecount(filled: Any) -> None:
    response = filled.get("/tables/todo", headers=V2)
    assert isinstance(response.json(), list) and len(response.json()) == 10
    link = response.headers["link"]
    assert link.endswith("; rel=next") and not link.startswith("<")
    assert _query(link.removesuffix("; rel=next"))["$skip"] == ["10"]
    counted = filled.get("/tables/todo?$inlinecount=allpages&$skip=20", headers=V2)
    assert counted.json()["count"] == ROWS - 2 and len(counted.json()["results"]) == 1
    assert "link" not in counted.headers


def test_tombstones_only_on_request(filled: Any) -> None:
    def ids(url: str, headers: dict[str, str]) -> list[str]:
        return [i["id"] for i in filled.get(url, headers=headers).json()["items"]]

    assert "t03" not in ids("/tables/todo?$top=50", V3)
    assert "t03" in ids("/tables/todo?$top=50&__includedeleted=true", V3)
    assert "t03" in ids("/tables/todo?$top=50&__INCLUDEDELETED=True", V3)
    assert "t03" in ids("/tables/todo?$top=50", {**V3, "X-ZUMO-Options": "include:deleted"})
    assert "t03" not in ids("/tables/todo?$top=50&__includedeleted=false", V3)


def test_select_returns_the_fields_and_id(filled: Any) -> None:
    v3 = filled.get("/tables/todo?$select=text&$top=1", headers=V3).json()["items"][0]
    assert v3 == {"id": "t00", "text": "item 0"}
    v2 = filled.get("/tables/todo?$select=text&$top=1", headers=V2).json()[0]
    assert set(v2) == {"id", "text", "createdAt", "updatedAt", "version", "deleted"}


def test_orderby_always_breaks_ties_by_id(filled: Any) -> None:
    items = filled.get("/tables/todo?$orderby=count&$top=50", headers=V3).json()["items"]
    keys = [(i["count"], i["id"]) for i in items]
    assert keys == sorted(keys)


@pytest.mark.parametrize(
    "literal",
    [
        pytest.param("datetimeoffset'2024-01-10T00:00:00.0000000%2B00:00'", id="encoded-plus"),
        pytest.param("datetimeoffset'2024-01-10T00:00:00.0000000+00:00'", id="raw-plus"),
        pytest.param("datetime'2024-01-10T00:00:00.000Z'", id="datetime"),
        pytest.param("cast(2024-01-10T00:00:00.000Z,Edm.DateTimeOffset)", id="cast"),
    ],
)
def test_date_literals_of_both_dialects(filled: Any, literal: str) -> None:
    url = f"/tables/todo?$filter=due ge {literal}&$inlinecount=allpages"
    response = filled.get(url, headers=V2)
    assert response.status_code == 200, response.text
    assert response.json()["count"] == ROWS - 9
    assert [i["id"] for i in response.json()["results"]] == [f"t{n:02d}" for n in range(9, 19)]


def test_incremental_pull_by_updated_at_sees_every_row_once(filled: Any) -> None:
    seen: list[str] = []
    token = "1970-01-01T00:00:00.000Z"
    for _ in range(10):
        url = (
            f"/tables/todo?$filter=updatedAt gt cast({token},Edm.DateTimeOffset)"
            "&$orderby=updatedAt&$top=4&__includedeleted=true"
        )
        items = filled.get(url, headers=V3).json()["items"]
        if not items:
            break
        seen += [i["id"] for i in items]
        token = items[-1]["updatedAt"]
    assert sorted(seen) == sorted(set(seen)) and len(seen) == ROWS + 2 - 2


# Filters of one shape with other values, and which rows (by n, live rows t00..t22 without
# t03 and t04) each must match. The page is the first 10 by id; the count is all of them.
_SHAPES = {
    "count eq {0}": [(v, lambda n, v=v: n % 5 == v) for v in (0, 3, 4)],
    "count ge {0} and text ne 'item {1}'": [
        ((1, 7), lambda n: n % 5 >= 1 and n != 7),
        ((4, 9), lambda n: n % 5 >= 4 and n != 9),
    ],
    "count in ({0}, {1})": [
        ((0, 2), lambda n: n % 5 in (0, 2)),
        ((3, 1), lambda n: n % 5 in (3, 1)),
    ],
    "due gt cast(2024-01-{0:02d}T00:00:00Z,Edm.DateTimeOffset)": [
        (v, lambda n, v=v: n + 1 > v) for v in (5, 20)
    ],
    "substring(text, {0}) eq '{1}'": [
        ((5, "1"), lambda n: str(n) == "1"),
        ((6, ""), lambda n: n < 10),
    ],
}


def test_filters_of_one_shape_share_one_statement_each_bound_to_its_values(filled: Any) -> None:
    """A page statement is kept per filter shape (``_shapes``), values bound at each run: a
    wrong binding would answer one request with another's values."""
    from tablesync.server import _querying, _shapes

    _querying._page_statement.cache_clear()
    _shapes.named.cache_clear()
    for template, cases in _SHAPES.items():
        for values, matches in cases:
            text = (
                template.format(*values) if isinstance(values, tuple) else template.format(values)
            )
            response = filled.get(
                "/tables/todo", params={"$filter": text, "$count": "true"}, headers=V3
            )
            assert response.status_code == 200, (text, response.text)
            expected = [f"t{n:02d}" for n in range(ROWS) if n not in (3, 4) and matches(n)]
            page = response.json()
            assert [item["id"] for item in page["items"]] == expected[:10], text
            assert page["count"] == len(expected), text
    assert _shapes.named.cache_info().misses == len(_SHAPES)
    assert _querying._page_statement.cache_info().misses == len(_SHAPES)


def test_top_zero_and_skip_past_the_end(filled: Any) -> None:
    assert filled.get("/tables/todo?$top=0", headers=V3).json() == {
        "items": [],
        "count": None,
        "nextLink": None,
    }
    assert filled.get("/tables/todo?$skip=500", headers=V3).json()["items"] == []


def test_default_page_sizes_are_50_for_v2_and_100_for_v3(make_client: Any) -> None:
    client = make_client()
    for n in range(120):
        client.post("/tables/todo", json={"id": f"p{n:03d}"}, headers=V3)
    assert len(client.get("/tables/todo", headers=V2).json()) == 50
    page = client.get("/tables/todo", headers=V3).json()
    assert len(page["items"]) == 100 and "$skip=100" in page["nextLink"]


@pytest.mark.parametrize(
    ("host", "origin"),
    [
        pytest.param("api.example.com:8443", "http://api.example.com:8443", id="custom-port"),
        pytest.param("api.example.com:80", "http://api.example.com", id="default-port-dropped"),
        pytest.param("api.example.com", "http://api.example.com", id="no-port"),
    ],
)
def test_absolute_links_honour_the_host_header(filled: Any, host: str, origin: str) -> None:
    page = filled.get("/tables/todo", headers={**V3, "Host": host}).json()
    assert page["nextLink"].startswith(f"{origin}/tables/todo?")
    v2 = filled.get("/tables/todo", headers={**V2, "Host": host})
    assert v2.headers["link"].startswith(f"{origin}/tables/todo?")
