"""parse_orderby and parse_select."""

from __future__ import annotations

import re

import pytest

from tablesync._exceptions import ODataSyntaxError
from tablesync.odata import parse_orderby, parse_select
from tablesync.odata.ast import Call, Member, OrderBy

ORDERBY = [
    pytest.param("title", (OrderBy("title"),), id="one"),
    pytest.param("title desc", (OrderBy("title", descending=True),), id="desc"),
    pytest.param("title asc", (OrderBy("title"),), id="asc"),
    pytest.param("title DESC", (OrderBy("title", descending=True),), id="desc-upper"),
    pytest.param(
        "title desc, year",
        (OrderBy("title", descending=True), OrderBy("year")),
        id="two",
    ),
    pytest.param(
        "title desc,year asc",
        (OrderBy("title", descending=True), OrderBy("year")),
        id="no-space",
    ),
    pytest.param(
        "year(releaseDate) desc",
        (OrderBy(Call("year", (Member("releaseDate"),)), descending=True),),
        id="expression",
    ),
    pytest.param("updatedAt", (OrderBy("updatedAt"),), id="pull"),
    pytest.param("desc desc", (OrderBy("desc", descending=True),), id="member-named-desc"),
]


@pytest.mark.parametrize(("text", "expected"), ORDERBY)
def test_parse_orderby(text: str, expected: tuple[OrderBy, ...]) -> None:
    assert parse_orderby(text) == expected


@pytest.mark.parametrize(
    ("text", "position", "message"),
    [
        pytest.param("", 0, "empty", id="empty"),
        pytest.param("year sideways", 5, "expected an operator", id="bad-direction"),
        pytest.param("year,,title", 5, "expected a value", id="empty-term"),
        pytest.param("year,", 5, "expected a value", id="trailing-comma"),
        pytest.param("year desc desc", 10, "expected an operator", id="two-directions"),
        pytest.param("a,b,c,d", 6, "too many $orderby terms", id="too-many"),
    ],
)
def test_parse_orderby_invalid(text: str, position: int, message: str) -> None:
    with pytest.raises(ODataSyntaxError, match=re.escape(message)) as caught:
        parse_orderby(text, max_terms=3)
    assert caught.value.position == position


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("id,title", ("id", "title"), id="two"),
        pytest.param(" id , title ", ("id", "title"), id="spaces"),
        pytest.param("id,title,id", ("id", "title"), id="duplicates"),
        pytest.param("*", (), id="star"),
        pytest.param("", (), id="empty"),
        pytest.param("updatedAt", ("updatedAt",), id="one"),
    ],
)
def test_parse_select(text: str, expected: tuple[str, ...]) -> None:
    assert parse_select(text) == expected


@pytest.mark.parametrize(
    ("text", "position"),
    [
        pytest.param("id,,title", 3, id="empty-term"),
        pytest.param("id, ti tle", 4, id="space-in-name"),
        pytest.param("id,1abc", 3, id="digit-start"),
        pytest.param("a/b", 0, id="path"),
        pytest.param("id,*", 3, id="star-in-list"),
    ],
)
def test_parse_select_invalid(text: str, position: int) -> None:
    with pytest.raises(ODataSyntaxError, match="expected a property name") as caught:
        parse_select(text)
    assert caught.value.position == position
