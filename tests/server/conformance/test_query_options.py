"""``$orderby`` (ties broken by id), ``$select``, ``$skip``, ``$top`` and counts, both versions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ._wire import UPDATED_AT, call, fetch_all, get_json, ids, page_items

Movie = dict[str, Any]

SYSTEM = {"id", "updatedAt", "createdAt", "version", "deleted"}
USER_FIELDS = {"title", "duration", "rating", "releaseDate", "bestPictureWinner", "year"}


def _order(*keys: Callable[[Movie], Any]) -> Callable[[list[Movie]], list[str]]:
    def sort(movies: list[Movie]) -> list[str]:
        return [m["id"] for m in sorted(movies, key=lambda m: (*[k(m) for k in keys], m["id"]))]

    return sort


def _desc_date(movie: Movie) -> tuple[int, ...]:
    # releaseDate descending: negate the digits of the fixed-width ISO text.
    return tuple(-ord(char) for char in movie["releaseDate"])


ORDERS = [
    pytest.param("year desc", _order(lambda m: -m["year"]), id="desc-int"),
    pytest.param("duration", _order(lambda m: m["duration"]), id="asc-int-ties-by-id"),
    pytest.param(
        "year, duration desc",
        _order(lambda m: m["year"], lambda m: -m["duration"]),
        id="multi-term",
    ),
    pytest.param("releaseDate desc", _order(_desc_date), id="desc-date"),
    pytest.param(
        "bestPictureWinner desc,year asc",
        _order(lambda m: not m["bestPictureWinner"], lambda m: m["year"]),
        id="bool-desc-no-space-after-comma",
    ),
    pytest.param("id desc", lambda ms: [m["id"] for m in reversed(ms)], id="id-desc"),
]


@pytest.mark.parametrize(("orderby", "expected"), ORDERS)
def test_orderby(
    server: Any, version: str, orderby: str, expected: Callable[[list[Movie]], list[str]]
) -> None:
    rows = fetch_all(server.http, version, f"/tables/movies?$orderby={orderby}")
    assert ids(rows) == expected(server.movies)


def test_orderby_nullable_column(server: Any, version: str) -> None:
    # Where nulls sort is not fixed by protocol.md (SQL engines differ, OData puts them first
    # ascending): accept nulls first or last, but the rest must be ordered, ties by id.
    rows = fetch_all(server.http, version, "/tables/movies?$orderby=rating desc,year")
    # Two stable sorts: year then id ascending inside each rating, ratings descending.
    rated = sorted(
        (m for m in server.movies if m["rating"] is not None), key=lambda m: (m["year"], m["id"])
    )
    rated.sort(key=lambda m: m["rating"], reverse=True)
    unrated = sorted(
        (m for m in server.movies if m["rating"] is None), key=lambda m: (m["year"], m["id"])
    )
    expected_first = [m["id"] for m in unrated + rated]
    expected_last = [m["id"] for m in rated + unrated]
    assert ids(rows) in (expected_first, expected_last)


def test_default_order_is_id(server: Any, version: str) -> None:
    rows = fetch_all(server.http, version, "/tables/movies?$filter=year gt 2000")
    assert ids(rows) == sorted(m["id"] for m in server.movies if m["year"] > 2000)


@pytest.mark.parametrize(
    ("select", "wanted"),
    [
        pytest.param("id,title", {"id", "title"}, id="id-title"),
        pytest.param("title", {"title"}, id="title-only"),
        pytest.param("year, rating", {"year", "rating"}, id="space-after-comma"),
    ],
)
def test_select(server: Any, version: str, select: str, wanted: set[str]) -> None:
    rows = fetch_all(server.http, version, f"/tables/movies?$select={select}&$filter=year eq 1994")
    expected = {m["id"]: m for m in server.movies if m["year"] == 1994}
    assert len(rows) == len(expected) > 0
    for row in rows:
        # The id always comes back (clients key on it); system properties may (NS forces them
        # in, protocol.md §2.1) or may not; unselected user fields never do.
        assert "id" in row and set(row) <= wanted | SYSTEM, row
        assert set(row) & USER_FIELDS == wanted - SYSTEM, row
        assert all(row[name] == expected[row["id"]][name] for name in wanted), row


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param("$top=7", slice(0, 7), id="top"),
        pytest.param("$skip=240", slice(240, 248), id="skip"),
        pytest.param("$skip=5&$top=3", slice(5, 8), id="skip-top"),
        pytest.param("$top=3&$skip=5", slice(5, 8), id="top-skip-order"),
    ],
)
def test_skip_top(server: Any, version: str, query: str, expected: slice) -> None:
    rows = fetch_all(server.http, version, f"/tables/movies?{query}")
    assert ids(rows) == [m["id"] for m in server.movies][expected]


def test_skip_top_with_filter_and_order(server: Any, version: str) -> None:
    chosen = [m for m in server.movies if m["rating"] == "PG"]
    ordered = [m["id"] for m in sorted(chosen, key=lambda m: (-m["duration"], m["id"]))]
    url = "/tables/movies?$filter=rating eq 'PG'&$orderby=duration desc&$skip=4&$top=6"
    assert ids(fetch_all(server.http, version, url)) == ordered[4:10]


def test_v3_count_true(server: Any) -> None:
    response = call(server.http, "GET", "/tables/movies?$count=true&$top=5", "3")
    assert len(page_items("3", response)) == 5
    assert response.json()["count"] == 248


@pytest.mark.parametrize("query", ["", "?$count=false"], ids=["absent", "false"])
def test_v3_count_null_unless_asked(server: Any, query: str) -> None:
    body = get_json(server.http, f"/tables/movies{query}", "3")
    assert "count" in body and body["count"] is None


def test_v2_inlinecount_allpages(server: Any) -> None:
    url = "/tables/movies?$inlinecount=allpages&$filter=rating eq 'PG'&$top=3"
    body = get_json(server.http, url, "2")
    assert set(body) == {"results", "count"}
    assert body["count"] == sum(1 for m in server.movies if m["rating"] == "PG")
    assert len(body["results"]) == 3


def test_v2_inlinecount_none_is_a_bare_array(server: Any) -> None:
    body = get_json(server.http, "/tables/movies?$inlinecount=none&$top=3", "2")
    assert isinstance(body, list) and ids(body) == ["id-000", "id-001", "id-002"]


def test_unknown_user_parameters_are_ignored(server: Any, version: str) -> None:
    # NC passes user parameters through and still sends __systemproperties (protocol.md §2.1).
    url = "/tables/movies?$top=3&param1=val1&__systemproperties=*"
    assert ids(fetch_all(server.http, version, url)) == ["id-000", "id-001", "id-002"]


def test_include_deleted_on_a_table_without_soft_delete(server: Any, version: str) -> None:
    rows = fetch_all(server.http, version, "/tables/movies?__includedeleted=true")
    assert ids(rows) == [m["id"] for m in server.movies]


def test_top_at_the_maximum(server: Any, version: str) -> None:
    rows = fetch_all(server.http, version, "/tables/movies?$top=1000")
    assert ids(rows) == [m["id"] for m in server.movies]


def test_v3_skip_past_the_end_keeps_the_count(server: Any) -> None:
    body = get_json(server.http, "/tables/movies?$skip=500&$count=true", "3")
    assert (body["items"], body["count"], body["nextLink"]) == ([], 248, None)


def test_rows_carry_system_properties(server: Any, version: str) -> None:
    # §2.1: v2 returns every system property; v3 has no createdAt on the wire (server_api.md).
    rows = fetch_all(server.http, version, "/tables/movies?$top=5")
    for row in rows:
        assert UPDATED_AT.match(row["updatedAt"]) and isinstance(row["version"], str), row
        assert row["deleted"] is False, row
        if version == "2":
            assert UPDATED_AT.match(row["createdAt"]), row
        else:
            assert "createdAt" not in row, row
        movie = next(m for m in server.movies if m["id"] == row["id"])
        assert {key: row[key] for key in movie} == movie
