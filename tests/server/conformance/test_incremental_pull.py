"""Incremental-pull queries exactly as the official clients send them.

protocol.md §8.3 (NC v2: ``ge datetimeoffset'…%2B00:00'``, ``$skip``/``$top=50``, re-based on the
largest ``updatedAt``), §8.4 and §12 (AMA v3: ``gt cast(…,Edm.DateTimeOffset)``, nextLink),
peers.md (the JS client's form). ``soft_movies`` is used so deleted rows must come down too: they
were deleted after every insert, so in ``updatedAt`` order they come last.
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

from tablesync.protocol import format_datetime, parse_datetime

from ._wire import MAX_PAGES, call, fetch_pages, ids, page_items

NC_EPOCH = "1970-01-01T00:00:00.0000000%2B00:00"
PATH_OPTION = {"X-ZUMO-Options": "nextLink=path"}


def _nc_url(bound: str, skip: int) -> str:
    return (
        f"/tables/soft_movies?$filter=(updatedAt ge datetimeoffset'{bound}')"
        f"&$orderby=updatedAt&$skip={skip}&$top=50&__includeDeleted=true"
    )


def _nc_token(value: dt.datetime) -> str:
    """``DateTimeOffset.ToString("o")`` with the ``+`` escaped, as NC puts it in the URL."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond:06d}0%2B00:00"


def _expected_order(server: Any) -> list[str]:
    kept = [m["id"] for m in server.movies if m["rating"] != "R"]
    return kept + [m["id"] for m in server.movies if m["rating"] == "R"]


def _assert_strictly_increasing(rows: list[dict[str, Any]]) -> None:
    stamps = [parse_datetime(row["updatedAt"]) for row in rows]
    assert all(a < b for a, b in itertools.pairwise(stamps)), stamps[:5]


def test_v2_fixed_bound_skip_paging_returns_every_row_once(server: Any) -> None:
    rows: list[dict[str, Any]] = []
    for _ in range(MAX_PAGES):
        page = page_items("2", call(server.http, "GET", _nc_url(NC_EPOCH, len(rows)), "2"))
        if not page:
            break
        rows += page
    assert ids(rows) == _expected_order(server)
    _assert_strictly_increasing(rows)
    assert [row["deleted"] for row in rows].count(True) == 95


def test_v2_nc_rebasing_pull_reaches_every_row(server: Any) -> None:
    token = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    skip, received, requests = 0, [], 0
    while requests < MAX_PAGES:
        requests += 1
        page = page_items("2", call(server.http, "GET", _nc_url(_nc_token(token), skip), "2"))
        if not page:
            break
        received += page
        newest = max(parse_datetime(row["updatedAt"]) for row in page)
        skip, token = (0, newest) if newest > token else (skip + len(page), token)
    assert requests < MAX_PAGES
    assert sorted(set(ids(received))) == sorted(m["id"] for m in server.movies)
    # `ge` re-downloads the boundary row of each page, and only that one (stamps are unique).
    assert len(received) - len(set(ids(received))) <= requests


def test_v2_js_client_first_pull_page(server: Any) -> None:
    url = (
        "/tables/soft_movies?$filter=(updatedAt ge datetimeoffset'1969-12-31T00:00:00.000Z')"
        "&$orderby=updatedAt&$top=50&__includeDeleted=true"
    )
    headers = {"X-ZUMO-FEATURES": "OL,TR,QS,TR,QS", "X-ZUMO-VERSION": "ZUMO/2.0 (lang=Web)"}
    page = page_items("2", call(server.http, "GET", url, "2", headers=headers))
    assert ids(page) == _expected_order(server)[:50]


def test_v3_gt_cast_pull_follows_next_links(server: Any) -> None:
    url = (
        "/tables/soft_movies?$filter=(updatedAt gt cast(1970-01-01T00:00:00.000Z,"
        "Edm.DateTimeOffset))&$orderby=updatedAt&$count=true&__includedeleted=true"
    )
    pages = fetch_pages(server.http, "3", url, headers=PATH_OPTION)
    rows = [row for page in pages for row in page_items("3", page)]
    assert ids(rows) == _expected_order(server)
    assert {page.json()["count"] for page in pages} == {len(server.movies)}
    _assert_strictly_increasing(rows)


def test_v3_second_pull_from_a_token(server: Any) -> None:
    every = fetch_pages(
        server.http,
        "3",
        "/tables/soft_movies?$orderby=updatedAt&__includedeleted=true",
        headers=PATH_OPTION,
    )
    rows = [row for page in every for row in page_items("3", page)]
    token = format_datetime(parse_datetime(rows[149]["updatedAt"]))
    url = (
        f"/tables/soft_movies?$filter=(updatedAt gt cast({token},Edm.DateTimeOffset))"
        "&$orderby=updatedAt&$count=true&__includedeleted=true"
    )
    later = fetch_pages(server.http, "3", url, headers=PATH_OPTION)
    assert later[0].json()["count"] == len(rows) - 150
    assert ids([row for page in later for row in page_items("3", page)]) == ids(rows[150:])


def test_v3_first_pull_without_token_hides_deleted(server: Any) -> None:
    # AMA's first pull sends neither the updatedAt filter nor __includedeleted (§8.4).
    pages = fetch_pages(server.http, "3", "/tables/soft_movies?$orderby=updatedAt&$count=true")
    rows = [row for page in pages for row in page_items("3", page)]
    assert ids(rows) == [m["id"] for m in server.soft_visible]
    assert pages[0].json()["count"] == len(server.soft_visible)


def _by_updated_at(server: Any) -> list[dict[str, Any]]:
    url = "/tables/soft_movies?$orderby=updatedAt&__includedeleted=true"
    pages = fetch_pages(server.http, "3", url, headers=PATH_OPTION)
    return [row for page in pages for row in page_items("3", page)]


def test_updated_at_equality_is_exact_to_the_millisecond(server: Any) -> None:
    # §10: stored and compared at the precision the client sees, so `eq T` finds the row and
    # `gt T` never returns it again.
    row = _by_updated_at(server)[10]
    stamp = parse_datetime(row["updatedAt"])
    v3 = f"/tables/soft_movies?$filter=updatedAt eq cast({format_datetime(stamp)},"
    v3 += "Edm.DateTimeOffset)&__includedeleted=true"
    assert ids(page_items("3", call(server.http, "GET", v3, "3"))) == [row["id"]]
    v2 = f"/tables/soft_movies?$filter=updatedAt eq datetimeoffset'{_nc_token(stamp)}'"
    v2 += "&__includeDeleted=true"
    assert ids(page_items("2", call(server.http, "GET", v2, "2"))) == [row["id"]]


def test_orderby_updated_at_desc(server: Any, version: str) -> None:
    rows = _by_updated_at(server)
    url = "/tables/soft_movies?$orderby=updatedAt desc&__includedeleted=true&$top=20"
    newest = page_items(version, call(server.http, "GET", url, version))
    assert ids(newest) == ids(rows[::-1][:20])


def test_v2_nc_pull_with_a_user_filter_and_parameter(server: Any) -> None:
    # The second NC form of protocol.md §8.3: user filter ANDed in, a user parameter passed on.
    url = (
        "/tables/soft_movies?$filter=((rating eq 'PG') and (updatedAt ge "
        f"datetimeoffset'{NC_EPOCH}'))&$orderby=updatedAt&$skip=0&$top=50&param1=val1"
        "&__includeDeleted=true"
    )
    page = page_items("2", call(server.http, "GET", url, "2"))
    assert ids(page) == [m["id"] for m in server.movies if m["rating"] == "PG"]
