"""Query: friendly construction, replace(), the wire parameters of both versions, and reading
them back as a server does."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from tablesync._exceptions import ODataSyntaxError, QueryError, UnsupportedQueryError
from tablesync.odata import F, OrderBy, Query, parse_filter
from tablesync.odata.ast import Member
from tablesync.protocol import ApiVersion


def test_defaults() -> None:
    query = Query()
    assert query.filter is None
    assert query.order_by == ()
    assert (query.skip, query.top) == (None, None)
    assert query.select == ()
    assert not query.include_deleted and not query.include_count
    assert query.parameters == ()
    assert query.to_params(ApiVersion.V3) == []


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("rating eq 'PG'", id="text"),
        pytest.param(parse_filter("rating eq 'PG'"), id="expr"),
        pytest.param(F.rating == "PG", id="term"),
    ],
)
def test_filter_accepts_text_expressions_and_terms(value: Any) -> None:
    assert Query(value).filter == parse_filter("rating eq 'PG'")


def test_blank_filter_text_means_no_filter() -> None:
    assert Query("   ").filter is None


def test_bad_filter_text_fails_at_construction_with_its_position() -> None:
    with pytest.raises(ODataSyntaxError) as caught:
        Query("rating eq")
    assert caught.value.position == 9


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("title desc, year", (OrderBy("title", True), OrderBy("year")), id="text"),
        pytest.param(["title", "-year"], (OrderBy("title"), OrderBy("year", True)), id="list"),
        pytest.param(["title desc"], (OrderBy("title", True),), id="list-with-direction"),
        pytest.param(OrderBy("title"), (OrderBy("title"),), id="one-term"),
        pytest.param(F.title.desc(), (OrderBy("title", True),), id="builder-desc"),
        pytest.param(F.title, (OrderBy("title"),), id="builder-term"),
        pytest.param([F.year, F.title.desc()], (OrderBy("year"), OrderBy("title", True)), id="mix"),
        pytest.param(None, (), id="none"),
    ],
)
def test_order_by_forms(value: Any, expected: tuple[OrderBy, ...]) -> None:
    assert Query(order_by=value).order_by == expected


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("top", -1, id="negative-top"),
        pytest.param("skip", -5, id="negative-skip"),
        pytest.param("top", True, id="bool-top"),
        pytest.param("top", "5", id="text-top"),
        pytest.param("skip", 1.5, id="float-skip"),
        pytest.param("select", ["id", "ti tle"], id="bad-select-name"),
        pytest.param("select", [1], id="non-text-select"),
        pytest.param("select", 5, id="select-not-iterable"),
        pytest.param("order_by", 5, id="order-by-number"),
        pytest.param("order_by", [5], id="order-by-list-of-numbers"),
        pytest.param("order_by", "title sideways", id="order-by-bad-direction"),
        pytest.param("order_by", ["-"], id="order-by-bare-minus"),
        pytest.param("include_deleted", "yes", id="flag-not-bool"),
        pytest.param("include_count", 1, id="count-not-bool"),
        pytest.param("parameters", {"$filter": "x"}, id="reserved-dollar"),
        pytest.param("parameters", {"__includeDeleted": "true"}, id="reserved-include-deleted"),
        pytest.param("parameters", {"zumo-api-version": "2.0.0"}, id="reserved-version"),
        pytest.param("parameters", [("a",)], id="not-a-pair"),
        pytest.param("parameters", {"a": 1}, id="non-text-value"),
        pytest.param("parameters", "a=b", id="text"),
        pytest.param("filter", 42, id="filter-number"),
    ],
)
def test_bad_values_are_query_errors(field: str, value: Any) -> None:
    with pytest.raises(QueryError):
        Query(**{field: value})


def test_select_forms() -> None:
    assert Query(select="id, title").select == ("id", "title")
    assert Query(select=["id", "title", "id"]).select == ("id", "title")
    assert Query(select=[]).select == ()
    assert Query(select="*").select == ()


def test_parameters_keep_order_and_accept_pairs() -> None:
    query = Query(parameters=[("b", "2"), ("a", "1")])
    assert query.parameters == (("b", "2"), ("a", "1"))
    assert Query(parameters={"x": "y"}).parameters == (("x", "y"),)


def test_query_is_a_frozen_hashable_value() -> None:
    query = Query("year gt 2000", top=5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        query.top = 6  # type: ignore[misc]
    assert query == Query(F.year > 2000, top=5)
    assert hash(query) == hash(Query(F.year > 2000, top=5))


def test_replace_normalises_and_keeps_the_rest() -> None:
    query = Query("year gt 2000", order_by="title", top=5)
    changed = query.replace(filter="rating eq 'R'", order_by=["-year"], skip=10)
    assert changed.filter == parse_filter("rating eq 'R'")
    assert changed.order_by == (OrderBy("year", True),)
    assert (changed.skip, changed.top) == (10, 5)
    assert query.skip is None  # the original is untouched
    assert query.replace(filter=None).filter is None


def test_replace_rejects_unknown_fields() -> None:
    with pytest.raises(TypeError, match="no field"):
        Query().replace(limit=5)


FULL = Query(
    "rating eq 'PG' and releaseDate ge cast(2001-02-03T00:00:00.000Z,Edm.DateTimeOffset)",
    order_by="title desc, year",
    skip=10,
    top=5,
    select=["id", "title"],
    include_deleted=True,
    include_count=True,
    parameters={"tag": "a b"},
)


def test_to_params_v3() -> None:
    assert FULL.to_params(ApiVersion.V3) == [
        (
            "$filter",
            "rating eq 'PG' and releaseDate ge cast(2001-02-03T00:00:00.000Z,Edm.DateTimeOffset)",
        ),
        ("$orderby", "title desc,year"),
        ("$skip", "10"),
        ("$top", "5"),
        ("$select", "id,title"),
        ("$count", "true"),
        ("__includedeleted", "true"),
        ("tag", "a b"),
    ]


def test_to_params_v2() -> None:
    assert FULL.to_params(ApiVersion.V2) == [
        ("$filter", "rating eq 'PG' and releaseDate ge datetimeoffset'2001-02-03T00:00:00.000Z'"),
        ("$orderby", "title desc,year"),
        ("$skip", "10"),
        ("$top", "5"),
        ("$select", "id,title"),
        ("$inlinecount", "allpages"),
        ("__includeDeleted", "true"),
        ("tag", "a b"),
    ]


@pytest.mark.parametrize("version", list(ApiVersion))
def test_to_params_reads_back_to_the_same_query(version: ApiVersion) -> None:
    assert Query.from_params(FULL.to_params(version)) == FULL


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        pytest.param([("$inlinecount", "allpages")], Query(include_count=True), id="inlinecount"),
        pytest.param([("$inlinecount", "none")], Query(), id="inlinecount-none"),
        pytest.param([("$count", "TRUE")], Query(include_count=True), id="count-case"),
        pytest.param([("$count", "false")], Query(), id="count-false"),
        pytest.param(
            [("__IncludeDeleted", "true")], Query(include_deleted=True), id="include-deleted-case"
        ),
        pytest.param([("ZUMO-API-VERSION", "3.0.0")], Query(), id="version-dropped"),
        pytest.param([("$filter", "")], Query(), id="empty-filter"),
        pytest.param([("$skip", " 7 ")], Query(skip=7), id="skip-spaces"),
        pytest.param([("$format", "json")], Query(), id="format-ignored"),
        pytest.param(
            [("x", "1"), ("x", "2")],
            Query(parameters=[("x", "1"), ("x", "2")]),
            id="repeated-user-param",
        ),
    ],
)
def test_from_params(params: list[tuple[str, str]], expected: Query) -> None:
    assert Query.from_params(params) == expected


@pytest.mark.parametrize(
    ("params", "error"),
    [
        pytest.param([("$skip", "-1")], QueryError, id="negative-skip"),
        pytest.param([("$top", "abc")], QueryError, id="non-numeric-top"),
        pytest.param([("$top", "2.5")], QueryError, id="fraction-top"),
        pytest.param([("$top", "99999999999999999999999")], QueryError, id="huge-top"),
        pytest.param([("$top", "\uff11\uff12")], QueryError, id="non-ascii-digits"),
        pytest.param([("$count", "yes")], QueryError, id="bad-count"),
        pytest.param([("$inlinecount", "some")], QueryError, id="bad-inlinecount"),
        pytest.param([("__includedeleted", "1")], QueryError, id="bad-include-deleted"),
        pytest.param([("$top", "1"), ("$TOP", "2")], QueryError, id="repeated-option"),
        pytest.param([("$expand", "x")], UnsupportedQueryError, id="expand"),
        pytest.param([("$filter", "year gt")], ODataSyntaxError, id="bad-filter"),
        pytest.param([("$orderby", "year,,x")], ODataSyntaxError, id="bad-orderby"),
        pytest.param([("$select", "a,,b")], ODataSyntaxError, id="bad-select"),
    ],
)
def test_from_params_errors(params: list[tuple[str, str]], error: type[Exception]) -> None:
    with pytest.raises(error):
        Query.from_params(params)


def test_member_order_by_term_accepts_a_plain_name() -> None:
    assert OrderBy("title").expr == Member("title")
