"""Size and nesting limits: whatever the compilers accept runs on every database; past the
limits a filter is refused with a QueryError (a 400), never a database error (a 500)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tablesync._exceptions import ODataSyntaxError, QueryError
from tablesync.odata import F, _typing, parse_filter
from tablesync.odata._typing import check_complexity
from tablesync.odata.ast import Expr

from .conftest import Runner

SHAPES: list[tuple[str, Callable[[int], str]]] = [
    (
        "substring",
        lambda k: "length(" + "substring(title, length(" * k + "title" + "))" * k + ") ge 0",
    ),
    ("tolower", lambda k: "tolower(" * k + "title" + ")" * k + " eq 'x'"),
    ("floor", lambda k: "floor(" * k + "score" + ")" * k + " eq 1"),
    ("not", lambda k: "not " * k + "bestPictureWinner"),
    ("add", lambda k: "score" + " add 1" * k + " eq 1"),
    ("add-right", lambda k: "score add (" * k + "1" + ")" * k + " eq 1"),
    ("concat-right", lambda k: "concat(title, " * k + "title" + ")" * k + " eq 'x'"),
    ("mod", lambda k: "(" * k + "score" + " mod 2)" * k + " eq 1"),
    ("eq-chain", lambda k: "(" * k + "bestPictureWinner" + " eq true)" * k),
    ("replace", lambda k: "replace(title, title, " * k + "title" + ")" * k + " eq 'x'"),
    ("endswith", lambda k: "endswith(" + "concat(title, " * k + "title" + ")" * k + ", 'x')"),
    ("in-chain", lambda k: "(" * k + "bestPictureWinner" + " in (true, year eq 1))" * k),
    ("year", lambda k: "year(releaseDate) add " * k + "1 eq 2"),
    ("and-or", lambda k: "(year eq 1 or (rating eq 'R' and " * k + "true" + "))" * k),
]


def _parse(text: str) -> Expr:
    return parse_filter(text, max_length=100_000, max_depth=10_000)


def _deepest_accepted(shape: Callable[[int], str]) -> int:
    for k in range(1, 400):
        try:
            check_complexity(_parse(shape(k)))
        except QueryError:
            return k - 1
    return 399


@pytest.mark.parametrize(("name", "shape"), [pytest.param(n, s, id=n) for n, s in SHAPES])
def test_deepest_accepted_filter_runs_and_the_next_is_refused(
    name: str, shape: Callable[[int], str], run_filter: Runner
) -> None:
    k = _deepest_accepted(shape)
    assert k >= 2, name
    run_filter(_parse(shape(k)))  # must not raise: no parser stack overflow, no type error
    with pytest.raises(QueryError):
        run_filter(_parse(shape(k + 1)))


def test_http_filters_past_the_parser_limits_are_syntax_errors() -> None:
    with pytest.raises(ODataSyntaxError):
        parse_filter("(" * 100 + "a" + ")" * 100)
    with pytest.raises(ODataSyntaxError):
        parse_filter("a eq 1" + " or a eq 1" * 500)


def test_shared_subtrees_from_the_builder_are_refused_quickly() -> None:
    term = F.score
    for _ in range(25):
        term = term + term  # a tree of 2**25 nodes, sharing every subtree
    started = time.monotonic()
    with pytest.raises(QueryError, match="too complex"):
        check_complexity((term == 1).expr)
    assert time.monotonic() - started < 1.0


def test_very_deep_builder_trees_are_refused() -> None:
    term = F.score
    for _ in range(500):
        term = term + 1
    with pytest.raises(QueryError, match="too deeply"):
        check_complexity((term == 1).expr)


def test_long_in_lists_of_constants_are_fine(run_filter: Runner) -> None:
    ids = [f"id-{n:03d}" for n in range(0, 248, 2)] + [f"other-{n}" for n in range(2000)]
    assert run_filter(F.id.in_(ids).expr) == [f"id-{n:03d}" for n in range(0, 248, 2)]


# -- the backstop: a filter the estimate let through but the database cannot parse ----------

#: Parsed within the parser's limits, but past SQLite's parser stack (a 400 on the server:
#: tests/server/test_errors.py).
_TOO_DEEP_FOR_SQLITE = "tolower(" * 30 + "title" + ")" * 30 + " eq 'x'"


def test_a_filter_the_local_store_cannot_parse_is_a_query_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from tablesync import SQLiteStore
    from tablesync.odata import Query

    monkeypatch.setattr(_typing, "MAX_SQL_NESTING", 10_000)
    store = SQLiteStore(tmp_path / "local.db")
    try:
        store.upsert_items("notes", [{"id": "a", "title": "x"}])
        query = Query(filter=_parse(_TOO_DEEP_FOR_SQLITE))
        with pytest.raises(QueryError, match="too complex"):
            store.query_items("notes", query)
        with pytest.raises(QueryError, match="too complex"):
            store.count_items("notes", query)
        assert store.query_items("notes") == [{"id": "a", "title": "x"}]
    finally:
        store.close()
