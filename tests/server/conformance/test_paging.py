"""Paging per peers.md ("The Datasync query suites") and protocol.md §4.3/§4.4.

v3: page size 100, ``{"items","count","nextLink"}`` with nulls included, nextLink per the AMA rule
(absolute, or a path with ``X-ZUMO-Options: nextLink=path``). v2: a bare array (or
``{"results","count"}``), page size 50, ``Link: url; rel=next`` without angle brackets.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from ._wire import call, fetch_all, fetch_pages, get_json, ids, next_link_v2, page_items

PATH_OPTION = {"X-ZUMO-Options": "nextLink=path"}


def _query_of(link: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(link).query)


def _all_ids(server: Any) -> list[str]:
    return [movie["id"] for movie in server.movies]


def test_v3_default_page_is_100_in_id_order(server: Any) -> None:
    response = call(server.http, "GET", "/tables/movies", "3")
    body = response.json()
    assert ids(page_items("3", response)) == _all_ids(server)[:100]
    assert body["count"] is None  # v3 includes nulls (protocol.md §2.1)
    assert isinstance(body["nextLink"], str)
    assert _query_of(body["nextLink"])["$skip"] == ["100"]


def test_v3_following_next_links_yields_every_row_once(server: Any) -> None:
    pages = fetch_pages(server.http, "3", "/tables/movies")
    assert [len(page_items("3", page)) for page in pages] == [100, 100, 48]
    assert pages[-1].json()["nextLink"] is None
    rows = [row for page in pages for row in page_items("3", page)]
    assert ids(rows) == _all_ids(server)


@pytest.mark.parametrize("version", ["2", "3"])
def test_a_sync_pull_gets_its_whole_top_in_one_page(server: Any, version: str) -> None:
    # Deleted rows included and $top given: a pull's page, not capped at the page size.
    query = "$top=200&$orderby=updatedAt,id&__includedeleted=true"
    response = call(server.http, "GET", f"/tables/movies?{query}", version)
    assert len(page_items(version, response)) == 200
    rest = call(server.http, "GET", f"/tables/movies?{query}&$skip=200", version)
    assert len(page_items(version, rest)) == len(server.movies) - 200
    plain = call(server.http, "GET", "/tables/movies?$top=200&$orderby=updatedAt,id", version)
    assert len(page_items(version, plain)) == (50 if version == "2" else 100)


def test_v3_top_125_gives_100_and_a_link_for_the_remaining_25(server: Any) -> None:
    response = call(server.http, "GET", "/tables/movies?$top=125", "3")
    link = response.json()["nextLink"]
    assert ids(page_items("3", response)) == _all_ids(server)[:100]
    assert isinstance(link, str)
    query = _query_of(link)
    assert query["$skip"] == ["100"] and query["$top"] == ["25"], link
    second = call(server.http, "GET", link, "3")
    assert ids(page_items("3", second)) == _all_ids(server)[100:125]
    assert second.json()["nextLink"] is None


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param("$top=100", slice(0, 100), id="top-exactly-page"),
        pytest.param("$top=50", slice(0, 50), id="top-below-page"),
        pytest.param("$skip=200", slice(200, 248), id="rows-run-out"),
        pytest.param("$skip=150&$top=98", slice(150, 248), id="top-equals-rest"),
        pytest.param("$skip=248", slice(248, 248), id="skip-past-end"),
        pytest.param("$skip=148", slice(148, 248), id="last-page-exactly-full"),
    ],
)
def test_v3_no_next_link_when_top_satisfied_or_rows_run_out(
    server: Any, query: str, expected: slice
) -> None:
    response = call(server.http, "GET", f"/tables/movies?{query}", "3")
    assert ids(page_items("3", response)) == _all_ids(server)[expected]
    assert response.json()["nextLink"] is None


@pytest.mark.parametrize(
    ("query", "skip", "top"),
    [
        pytest.param("$skip=10&$top=150", "110", ["50"], id="skip-and-top"),
        pytest.param("$skip=10", "110", [], id="skip-only"),
        pytest.param("$top=248", "100", ["148"], id="top-all"),
    ],
)
def test_v3_next_link_follows_the_ama_rule(
    server: Any, query: str, skip: str, top: list[str]
) -> None:
    link = get_json(server.http, f"/tables/movies?{query}", "3")["nextLink"]
    assert isinstance(link, str), query
    parsed = _query_of(link)
    assert parsed["$skip"] == [skip] and parsed.get("$top", []) == top, link


def test_v3_next_link_is_absolute_by_default(server: Any) -> None:
    link = get_json(server.http, "/tables/movies", "3")["nextLink"]
    parts = urlsplit(link)
    assert parts.scheme in ("http", "https") and parts.netloc, link
    assert parts.path.lower() == "/tables/movies", link


def test_v3_next_link_path_only_on_request(server: Any) -> None:
    response = call(server.http, "GET", "/tables/movies", "3", headers=PATH_OPTION)
    link = response.json()["nextLink"]
    assert isinstance(link, str) and link.lower().startswith("/tables/movies?"), link
    rows = fetch_all(server.http, "3", "/tables/movies", headers=PATH_OPTION)
    assert ids(rows) == _all_ids(server)


def test_v3_count_is_the_filtered_total_on_every_page(server: Any) -> None:
    expected = [movie["id"] for movie in server.movies if movie["rating"] != "R"]
    pages = fetch_pages(server.http, "3", "/tables/movies?$filter=rating ne 'R'&$count=true")
    assert [page.json()["count"] for page in pages] == [len(expected)] * len(pages)
    assert len(pages) == 2
    assert ids([row for page in pages for row in page_items("3", page)]) == expected


def test_v3_next_link_keeps_filter_and_order(server: Any) -> None:
    movies = [movie for movie in server.movies if movie["year"] > 1950]
    expected = [m["id"] for m in sorted(movies, key=lambda m: (-m["year"], m["id"]))]
    url = "/tables/movies?$filter=year gt 1950&$orderby=year desc&$count=true"
    first = get_json(server.http, url, "3")
    repeated = _query_of(first["nextLink"])
    assert repeated["$filter"] == ["year gt 1950"] and repeated["$orderby"] == ["year desc"]
    assert ids(fetch_all(server.http, "3", url)) == expected


def test_next_links_keep_select(server: Any, version: str) -> None:
    rows = fetch_all(server.http, version, "/tables/movies?$select=id,title")
    assert ids(rows) == _all_ids(server)
    assert all("year" not in row and "title" in row for row in rows)


def test_v3_next_link_keeps_include_deleted(server: Any) -> None:
    rows = fetch_all(server.http, "3", "/tables/soft_movies?__includedeleted=true")
    assert ids(rows) == _all_ids(server)


def test_v2_default_page_is_a_bare_array_of_50_with_a_link(server: Any) -> None:
    response = call(server.http, "GET", "/tables/movies", "2")
    assert isinstance(page_items("2", response), list) and isinstance(response.json(), list)
    assert ids(response.json()) == _all_ids(server)[:50]
    raw = response.headers.get("link", "")
    assert "<" not in raw and ">" not in raw, raw
    link = next_link_v2(response)
    assert link is not None
    parts = urlsplit(link)
    assert parts.scheme in ("http", "https") and parts.netloc, link
    assert _query_of(link)["$skip"] == ["50"], link


def test_v2_following_link_yields_every_row_once(server: Any) -> None:
    pages = fetch_pages(server.http, "2", "/tables/movies")
    assert next_link_v2(pages[-1]) is None
    assert all(len(page.json()) == 50 for page in pages[:-1])
    assert ids([row for page in pages for row in page.json()]) == _all_ids(server)


def test_v2_inline_count_pages_keep_the_total(server: Any) -> None:
    pages = fetch_pages(server.http, "2", "/tables/movies?$inlinecount=allpages")
    first = pages[0].json()
    assert set(first) == {"results", "count"} and first["count"] == 248
    assert ids([row for page in pages for row in page_items("2", page)]) == _all_ids(server)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param("$top=10", slice(0, 10), id="top-10"),
        pytest.param("$skip=240", slice(240, 248), id="rows-run-out"),
        pytest.param("$skip=10&$top=5", slice(10, 15), id="skip-and-top"),
        pytest.param("$skip=198", slice(198, 248), id="last-page-exactly-full"),
    ],
)
def test_v2_no_link_when_done(server: Any, query: str, expected: slice) -> None:
    response = call(server.http, "GET", f"/tables/movies?{query}", "2")
    assert ids(page_items("2", response)) == _all_ids(server)[expected]
    assert next_link_v2(response) is None


def test_v2_top_above_page_size_is_honoured_across_links(server: Any) -> None:
    # protocol.md §4.3 leaves it open: NODE returns all 60 at once, a 50-row page plus a Link
    # for the other 10 is the NS behaviour. Either way the client gets exactly 60 rows.
    pages = fetch_pages(server.http, "2", "/tables/movies?$top=60")
    assert [len(page.json()) for page in pages] in ([60], [50, 10])
    assert ids([row for page in pages for row in page.json()]) == _all_ids(server)[:60]


def test_next_links_use_the_request_host(server: Any, version: str) -> None:
    # An absolute link is built from the request (protocol.md §4.3), so it names the host the
    # client called, not an internal one.
    headers = {"Host": "sync.example.org:8443"}
    response = call(server.http, "GET", "/tables/movies", version, headers=headers)
    page_items(version, response)
    link = response.json()["nextLink"] if version == "3" else next_link_v2(response)
    assert isinstance(link, str)
    assert urlsplit(link).netloc == "sync.example.org:8443", link


def test_v3_updated_at_order_next_link_keeps_the_top_arithmetic(server: Any) -> None:
    # The AMA rule (protocol.md §4.3) puts $skip=100 in this link; an OData $skiptoken in its
    # place is accepted too, since clients follow next links without reading them (§4.3,
    # §8.4). What a client observes must not change: $top=25 left, then exactly rows 100-124.
    url = "/tables/movies?$orderby=updatedAt&$top=125"
    first = get_json(server.http, url, "3")
    query = _query_of(first["nextLink"])
    assert query["$top"] == ["25"], first["nextLink"]
    assert query.get("$skip") == ["100"] or "$skiptoken" in query, first["nextLink"]
    rest = get_json(server.http, first["nextLink"], "3")
    assert ids(first["items"] + rest["items"]) == _all_ids(server)[:125]
    assert rest["nextLink"] is None
