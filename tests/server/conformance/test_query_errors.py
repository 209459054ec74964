"""Invalid query options get 400 with the error shape, never a 500 (peers.md, protocol.md §3.2)."""

from __future__ import annotations

from typing import Any

import pytest

from ._wire import assert_error, call

# Malformed text: the parser can say where it went wrong.
BAD_SYNTAX = [
    pytest.param("rating eq", id="missing-operand"),
    pytest.param("(year gt 2000", id="unbalanced-paren"),
    pytest.param("year gt 2000)", id="extra-paren"),
    pytest.param("title eq 'Jaws", id="unterminated-string"),
    pytest.param("year gtt 2000", id="unknown-operator"),
    pytest.param("year eq 'abc' and", id="trailing-and"),
    pytest.param("title eq 'a' or", id="dangling-or"),
    pytest.param("year eq 1 eq 1 eq", id="chained-garbage"),
    pytest.param("year eq 1,", id="stray-comma"),
    pytest.param("%00", id="nul-byte"),
]

# Well-formed text the table cannot answer, or past the limits: 400, position optional.
BAD_MEANING = [
    pytest.param("nosuchfield eq 1", id="unknown-field"),
    pytest.param("nosuchfn(title) eq 1", id="unknown-function"),
    pytest.param("substring(title)", id="wrong-arity"),
    pytest.param("year(title) eq 2000", id="date-fn-on-string"),
    pytest.param("releaseDate gt datetime'not-a-date'", id="bad-datetime-literal"),
    pytest.param("year", id="not-boolean"),
    pytest.param("(" * 300 + "year eq 1" + ")" * 300, id="too-deep"),
]

BAD_OPTIONS = [
    pytest.param("$orderby=nosuchfield", id="orderby-unknown-field"),
    pytest.param("$orderby=year sideways", id="orderby-bad-direction"),
    pytest.param("$orderby=year,,title", id="orderby-empty-term"),
    pytest.param("$select=nosuchfield", id="select-unknown-field"),
    pytest.param("$select=title,,year", id="select-empty-term"),
    pytest.param("$skip=-1", id="skip-negative"),
    pytest.param("$skip=abc", id="skip-non-numeric"),
    pytest.param("$skip=1.5", id="skip-fraction"),
    pytest.param("$top=-1", id="top-negative"),
    pytest.param("$top=abc", id="top-non-numeric"),
    pytest.param("$top=2.5", id="top-fraction"),
    pytest.param("$top=5001", id="top-over-max"),
    pytest.param("$top=99999999999999999999999", id="top-huge"),
]


@pytest.mark.parametrize("text", BAD_SYNTAX)
def test_bad_filter_syntax_is_400_naming_a_position(server: Any, version: str, text: str) -> None:
    response = call(server.http, "GET", f"/tables/movies?$filter={text}", version)
    body = assert_error(response, 400)
    # server_api.md: a bad $filter names a position: a "position" key, or in the message.
    position = body.get("position")
    assert isinstance(position, int) or "position" in body["error"].lower(), body


@pytest.mark.parametrize("text", BAD_MEANING)
def test_unanswerable_filter_is_400(server: Any, version: str, text: str) -> None:
    assert_error(call(server.http, "GET", f"/tables/movies?$filter={text}", version), 400)


@pytest.mark.parametrize("query", BAD_OPTIONS)
def test_bad_query_option_is_400(server: Any, version: str, query: str) -> None:
    assert_error(call(server.http, "GET", f"/tables/movies?{query}", version), 400)


def test_filter_over_length_limit_is_a_clean_4xx(server: Any, version: str) -> None:
    text = " or ".join(f"year eq {1900 + n % 100}" for n in range(2000))
    assert_error(call(server.http, "GET", f"/tables/movies?$filter={text}", version), 400, 414)
