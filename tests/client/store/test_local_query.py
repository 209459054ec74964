"""Local queries through the OData SQLite compiler, over the 248 movies of the Datasync suites.

Expected results come from plain Python over the same data, never from the store itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tablesync import QueueError
from tablesync.client._context import SyncContext
from tablesync.odata import F, Query

from .conftest import STORES

Movie = dict[str, Any]


def load(context: SyncContext, movies: list[Movie]) -> SyncContext:
    for start in range(0, len(movies), 100):
        context.apply_pulled_page("movies", movies[start : start + 100])
    return context


@pytest.fixture
def loaded(context: SyncContext, movies: list[Movie]) -> SyncContext:
    """A fresh store with the movies, for tests that change it."""
    return load(context, movies)


@pytest.fixture(scope="module", params=STORES)
def shared(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, movies: list[Movie]
) -> Iterator[SyncContext]:
    """One store with the movies per store class, shared by the read-only tests."""
    store = request.param(tmp_path_factory.mktemp("movies") / "movies.db")
    yield load(SyncContext(store), movies)
    store.close()


FILTERS: list[Any] = [
    pytest.param("rating eq 'PG'", lambda m: m["rating"] == "PG", id="eq-string"),
    pytest.param("rating eq null", lambda m: m["rating"] is None, id="eq-null"),
    pytest.param("rating ne 'PG-13'", lambda m: m["rating"] != "PG-13", id="ne-keeps-nulls"),
    pytest.param(
        "year gt 2000 and bestPictureWinner eq true",
        lambda m: m["year"] > 2000 and m["bestPictureWinner"],
        id="and-bool",
    ),
    pytest.param("not(bestPictureWinner)", lambda m: not m["bestPictureWinner"], id="not"),
    pytest.param(
        "contains(tolower(title), 'the')", lambda m: "the" in m["title"].lower(), id="contains"
    ),
    pytest.param(
        "startswith(title, 'The')", lambda m: m["title"].startswith("The"), id="startswith"
    ),
    pytest.param(
        "releaseDate lt cast(2000-01-01T00:00:00.000Z,Edm.DateTimeOffset)",
        lambda m: m["releaseDate"] < "2000-01-01T00:00:00.000Z",
        id="datetime-v3",
    ),
    pytest.param(
        "releaseDate ge datetimeoffset'1999-12-31T00:00:00.0000000%2B00:00'",
        lambda m: m["releaseDate"] >= "1999-12-31T00:00:00.000Z",
        id="datetime-v2",
    ),
    pytest.param("year(releaseDate) eq 1994", lambda m: m["releaseDate"][:4] == "1994", id="year"),
    pytest.param("duration div 60 ge 2", lambda m: m["duration"] // 60 >= 2, id="int-div"),
    pytest.param("rating in ('R','PG')", lambda m: m["rating"] in ("R", "PG"), id="in"),
    pytest.param(F.year == 1994, lambda m: m["year"] == 1994, id="builder"),
]


@pytest.mark.parametrize(("filter", "expected"), FILTERS)
def test_filters_select_the_same_rows_as_python(
    shared: SyncContext, movies: list[Movie], filter: Any, expected: Callable[[Movie], bool]
) -> None:
    query = Query(filter)
    want = sorted(m["id"] for m in movies if expected(m))
    assert want, "a case that selects nothing proves little"
    assert [m["id"] for m in shared.query("movies", query)] == want  # id order by default
    assert shared.count("movies", query) == len(want)


def test_order_by_skip_and_top(shared: SyncContext, movies: list[Movie]) -> None:
    query = Query("year ge 1990", order_by="year desc, title", skip=5, top=10)
    chosen = [m for m in movies if m["year"] >= 1990]
    chosen.sort(key=lambda m: m["title"])
    chosen.sort(key=lambda m: m["year"], reverse=True)
    assert [m["id"] for m in shared.query("movies", query)] == [m["id"] for m in chosen[5:15]]
    assert shared.count("movies", query) == len(chosen)  # ignores skip and top


def test_ties_are_broken_by_id_so_pages_are_stable(shared: SyncContext) -> None:
    pages = [
        shared.query("movies", Query(order_by="rating", skip=n, top=50)) for n in range(0, 250, 50)
    ]
    ids = [m["id"] for page in pages for m in page]
    assert len(ids) == len(set(ids)) == 248


def test_select_returns_only_the_chosen_fields(shared: SyncContext) -> None:
    rows = shared.query("movies", Query("year eq 1994", select=["id", "title"], top=3))
    assert rows and all(set(row) == {"id", "title"} for row in rows)


def test_query_of_a_table_never_stored_is_empty(context: SyncContext) -> None:
    assert context.query("nothing", Query("year gt 1")) == []
    assert context.count("nothing") == 0


def test_filtered_purge_deletes_only_matching_rows(
    loaded: SyncContext, movies: list[Movie]
) -> None:
    removed = loaded.purge("movies", Query("rating eq 'R'"))
    assert removed == sum(1 for m in movies if m["rating"] == "R")
    assert loaded.count("movies") == 248 - removed
    assert loaded.count("movies", Query("rating eq 'R'")) == 0


def test_filtered_purge_with_pending_operations_is_refused(loaded: SyncContext) -> None:
    loaded.update("movies", {"id": "id-000", "title": "edited"})
    with pytest.raises(QueueError):
        loaded.purge("movies", Query("rating eq 'R'"))
    assert loaded.count("movies") == 248
