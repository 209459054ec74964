"""Differential v2 queries: the same OData against the official Node server and tablesync's server.

Both servers hold the 248 movies of the Datasync suites. For every query a small Python
reference evaluation (a predicate and a sort key written from the OData semantics) gives the
right answer; tablesync must match it. The Node server must match it too, except where it has a
known bug: then the test names the bug and asserts the Node server's observed (wrong) answer,
so a change in the peer is noticed as well.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.interop.peers import NodeServer, start_node_server
from tests.interop.tablesync_server import TablesyncServer, start_tablesync_server

V2 = {"ZUMO-API-VERSION": "2.0.0"}
Movie = dict[str, Any]

# What the Node server does with a query, when it is not the right answer.
SAME = "same"
NO_ROWS = "no rows"
HTTP_500 = "500"
DIFFERENT = "different rows"


@dataclass(frozen=True)
class Case:
    """One $filter, the OData answer as a Python predicate, and what Node does with it."""

    filter: str
    expected: Callable[[Movie], bool]
    node: str = SAME
    reason: str = ""
    extra: dict[str, str] = field(default_factory=dict)


def _year(m: Movie) -> int:
    return datetime.fromisoformat(m["releaseDate"].replace("Z", "+00:00")).year


def _round_half_away(x: float) -> int:
    return math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5)


BUG_LIKE = "Node's SQLite SQL for startswith/endswith/substringof never matches (peers.md)"
BUG_NULL = "Node compares with SQL `<>`, which drops null ratings; OData keeps them (peers.md)"

CASES = [
    pytest.param(Case("bestPictureWinner eq true", lambda m: m["bestPictureWinner"]), id="eq-true"),
    pytest.param(Case("bestPictureWinner", lambda m: m["bestPictureWinner"]), id="bare-boolean"),
    pytest.param(Case("rating eq null", lambda m: m["rating"] is None), id="eq-null"),
    pytest.param(
        Case("rating ne 'PG-13'", lambda m: m["rating"] != "PG-13", DIFFERENT, BUG_NULL),
        id="ne-keeps-null",
    ),
    pytest.param(
        Case("not(bestPictureWinner eq true)", lambda m: not m["bestPictureWinner"]), id="not"
    ),
    pytest.param(
        Case("year eq 1994 or year eq 1972", lambda m: m["year"] in (1994, 1972)), id="or"
    ),
    pytest.param(
        Case("rating eq 'R' and year ge 2000", lambda m: m["rating"] == "R" and m["year"] >= 2000),
        id="and",
    ),
    pytest.param(
        Case("title eq 'It''s a Wonderful Life'", lambda m: m["title"] == "It's a Wonderful Life"),
        id="quoted-quote",
    ),
    pytest.param(
        Case("duration sub 10 gt 140", lambda m: m["duration"] - 10 > 140), id="arith-sub"
    ),
    pytest.param(Case("duration add 5 eq 147", lambda m: m["duration"] + 5 == 147), id="arith-add"),
    pytest.param(Case("duration mul 2 gt 300", lambda m: m["duration"] * 2 > 300), id="arith-mul"),
    pytest.param(
        Case(
            "duration mod 2 eq 0",
            lambda m: m["duration"] % 2 == 0,
            NO_ROWS,
            "observed: Node's `mod` matches no row (its SQL for the operator is wrong)",
        ),
        id="arith-mod",
    ),
    pytest.param(
        Case(
            "round(duration div 60.0) eq 2",
            lambda m: _round_half_away(m["duration"] / 60.0) == 2,
        ),
        id="round",
    ),
    pytest.param(
        Case("floor(duration div 60.0) eq 2", lambda m: math.floor(m["duration"] / 60) == 2),
        id="floor",
    ),
    pytest.param(
        Case("ceiling(duration div 60.0) eq 2", lambda m: math.ceil(m["duration"] / 60) == 2),
        id="ceiling",
    ),
    pytest.param(
        Case("startswith(title,'The')", lambda m: m["title"].startswith("The"), NO_ROWS, BUG_LIKE),
        id="startswith",
    ),
    pytest.param(
        Case("endswith(title,'er')", lambda m: m["title"].endswith("er"), NO_ROWS, BUG_LIKE),
        id="endswith",
    ),
    pytest.param(
        Case("substringof('Wars',title)", lambda m: "Wars" in m["title"], NO_ROWS, BUG_LIKE),
        id="substringof",
    ),
    pytest.param(
        Case(
            "indexof(title,'The') eq 0",
            lambda m: m["title"].find("The") == 0,
            NO_ROWS,
            "Node's indexof has its arguments reversed (peers.md)",
        ),
        id="indexof",
    ),
    pytest.param(
        Case("tolower(title) eq 'casablanca'", lambda m: m["title"].lower() == "casablanca"),
        id="tolower",
    ),
    pytest.param(
        Case("toupper(rating) eq 'PG'", lambda m: (m["rating"] or "").upper() == "PG"),
        id="toupper",
    ),
    pytest.param(Case("trim(title) eq title", lambda m: True), id="trim"),
    pytest.param(
        Case(
            "replace(title,' ','') eq 'TheGodfather'",
            lambda m: m["title"].replace(" ", "") == "TheGodfather",
        ),
        id="replace",
    ),
    pytest.param(
        Case("concat(title,'!') eq 'Alien!'", lambda m: m["title"] + "!" == "Alien!"),
        id="concat",
    ),
    pytest.param(
        Case(
            "length(title) lt 10",
            lambda m: len(m["title"]) < 10,
            HTTP_500,
            "Node emits LEN(), which SQLite lacks (peers.md)",
        ),
        id="length",
    ),
    pytest.param(
        Case(
            "substring(title,1) eq 'he Godfather'",
            lambda m: m["title"][1:] == "he Godfather",
            HTTP_500,
            "observed: Node's substring also emits LEN()",
        ),
        id="substring",
    ),
    pytest.param(
        Case(
            "year(releaseDate) eq 1999",
            lambda m: _year(m) == 1999,
            HTTP_500,
            "Node emits YEAR(), which SQLite lacks (peers.md)",
        ),
        id="year-function",
    ),
    pytest.param(
        Case(
            "hour(releaseDate) eq 0",
            lambda m: True,
            NO_ROWS,
            "observed: Node's hour() matches no row although every release is at midnight UTC",
        ),
        id="hour-function",
    ),
    pytest.param(
        Case(
            "-duration lt -200",
            lambda m: -m["duration"] < -200,
            HTTP_500,
            "observed: Node's SQL for unary minus is a syntax error",
        ),
        id="unary-minus",
    ),
    pytest.param(
        Case(
            "releaseDate ge datetime'2000-01-01T00:00:00.000Z'",
            lambda m: m["releaseDate"] >= "2000-01-01T00:00:00.000Z",
        ),
        id="datetime-literal",
    ),
    pytest.param(
        Case(
            "releaseDate ge datetimeoffset'2000-01-01T00:00:00.0000000+00:00'",
            lambda m: m["releaseDate"] >= "2000-01-01T00:00:00.000Z",
        ),
        id="datetimeoffset-literal",
    ),
    pytest.param(
        Case(
            "releaseDate lt datetimeoffset'2000-01-01T02:00:00.0000000+02:00'",
            lambda m: m["releaseDate"] < "2000-01-01T00:00:00.000Z",
        ),
        id="datetimeoffset-with-offset",
    ),
]


def _load_tablesync(url: str, movies: list[Movie]) -> None:
    with httpx.Client(base_url=url, headers=V2, timeout=30) as http:
        for movie in movies:
            response = http.post("/tables/movies", json=movie)
            assert response.status_code == 201, response.text


@pytest.fixture(scope="module")
def node(
    npm_peers: Path, tmp_path_factory: pytest.TempPathFactory, movies: list[Movie]
) -> Iterator[NodeServer]:
    tmp = tmp_path_factory.mktemp("differential-node")
    server = start_node_server(page_size=1000, db_path=tmp / "node.sqlite", tables=("movies",))
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            assert http.post("/_interop/bulk/movies", json=movies).status_code == 201
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def tablesync(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    movies: list[Movie],
) -> Iterator[TablesyncServer]:
    """tablesync's server holding the movies, on each database it supports."""
    if request.param == "sqlite":
        database = f"sqlite:///{tmp_path_factory.mktemp('differential-ts') / 'ts.db'}"
    else:
        database = request.getfixturevalue("postgres_database_factory")()
    server = start_tablesync_server(database=database, page_size=1000)
    try:
        _load_tablesync(server.url, movies)
        yield server
    finally:
        server.stop()


def _get(url: str, params: dict[str, str]) -> httpx.Response:
    return httpx.get(f"{url}/tables/movies", params={"$top": "1000", **params}, headers=V2)


def _ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    body = response.json()
    rows = body["results"] if isinstance(body, dict) else body
    return [row["id"] for row in rows]


def _expected(movies: list[Movie], case: Case) -> list[str]:
    expected = [m["id"] for m in sorted(movies, key=lambda m: m["id"]) if case.expected(m)]
    assert expected, "every case selects at least one movie (a case must be able to fail)"
    return expected


@pytest.mark.parametrize("case", CASES)
def test_filter_tablesync(tablesync: TablesyncServer, movies: list[Movie], case: Case) -> None:
    response = _get(tablesync.url, {"$filter": case.filter})
    assert _ids(response) == _expected(movies, case)


@pytest.mark.parametrize("case", CASES)
def test_filter_node(node: NodeServer, movies: list[Movie], case: Case) -> None:
    expected = _expected(movies, case)
    answer = _get(node.url, {"$filter": case.filter})
    if case.node == SAME:
        assert _ids(answer) == expected
    elif case.node == HTTP_500:
        assert answer.status_code == 500, case.reason
    elif case.node == NO_ROWS:
        assert _ids(answer) == [], case.reason
    else:
        assert _ids(answer) != expected, case.reason


def _ordered(movies: list[Movie], *keys: tuple[str, bool]) -> list[str]:
    """Sort like OData: nulls first ascending (last descending), then id as the tie-break."""
    rows = sorted(movies, key=lambda m: m["id"])
    for name, descending in reversed(keys):
        present = [m for m in rows if m[name] is not None]
        nulls = [m for m in rows if m[name] is None]
        present.sort(key=lambda m: m[name], reverse=descending)
        rows = present + nulls if descending else nulls + present
    return [m["id"] for m in rows]


@pytest.mark.parametrize(
    "params,keys,window",
    [
        pytest.param({"$orderby": "year desc,title"}, [("year", True), ("title", False)], (0, 248),
                     id="orderby-two-keys"),
        pytest.param({"$orderby": "rating,title"}, [("rating", False), ("title", False)],
                     (0, 248), id="orderby-nulls-first"),
        pytest.param({"$orderby": "year desc,title", "$skip": "3", "$top": "5"},
                     [("year", True), ("title", False)], (3, 8), id="orderby-skip-top"),
        pytest.param({"$skip": "240"}, [], (240, 248), id="default-order-is-id"),
    ],
)  # fmt: skip
def test_order_skip_top(
    node: NodeServer,
    tablesync: TablesyncServer,
    movies: list[Movie],
    params: dict[str, str],
    keys: list[tuple[str, bool]],
    window: tuple[int, int],
) -> None:
    expected = _ordered(movies, *keys)[window[0] : window[1]]
    assert _ids(_get(node.url, params)) == expected
    assert _ids(_get(tablesync.url, params)) == expected


def test_inlinecount_both_v2_response_forms(
    node: NodeServer, tablesync: TablesyncServer, movies: list[Movie]
) -> None:
    params = {"$filter": "rating eq 'G'", "$top": "3"}
    expected = [m["id"] for m in movies if m["rating"] == "G"]
    for url in (node.url, tablesync.url):
        bare = _get(url, params)
        counted = _get(url, {**params, "$inlinecount": "allpages"})
        assert isinstance(bare.json(), list)
        assert _ids(bare) == expected[:3]
        assert counted.json()["count"] == len(expected) == 10
        assert _ids(counted) == expected[:3]


def test_select_returns_the_selected_fields(node: NodeServer, tablesync: TablesyncServer) -> None:
    params = {"$select": "title,year", "$top": "2"}
    node_rows = _get(node.url, params).json()
    ts_rows = _get(tablesync.url, params).json()
    assert node_rows == [
        {"title": "The Shawshank Redemption", "year": 1994},
        {"title": "The Godfather", "year": 1972},
    ]
    # tablesync may add system properties (NS always did); the selected fields must match.
    assert [{k: row[k] for k in ("title", "year")} for row in ts_rows] == node_rows
