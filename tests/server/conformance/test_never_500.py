"""Whatever a client sends, the answer is a success or a clean 4xx, never a 5xx (common rules).

Bounded, derandomized hypothesis runs (so CI sees the same examples every time): query options
built from OData-like tokens, random ids in the path, random JSON bodies.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ._wire import assert_error, call, item_url, new_id, page_items

FUZZ = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    # The fixtures (server, version) are fixed for all examples; a busy CI machine must not
    # turn slow example generation into a failure.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

TOKENS = [
    "title", "year", "rating", "releaseDate", "duration", "bestPictureWinner", "id", "nosuch",
    "updatedAt", "deleted", "eq", "ne", "gt", "ge", "lt", "le", "and", "or", "not", "add", "sub",
    "mul", "div", "mod", "in", "(", ")", ",", "-", "'x'", "'it''s'", "''", "1", "-5", "2.5", "0",
    "99999999999999999999", "null", "true", "false", "substringof(", "contains(", "startswith(",
    "endswith(", "year(", "month(", "length(", "tolower(", "indexof(", "substring(", "concat(",
    "round(", "floor(", "cast(", "Edm.DateTimeOffset", "datetime'2000-01-01T00:00:00Z'",
    "datetimeoffset'2000-01-01T00:00:00.0000000%2B00:00'", "2000-01-01T00:00:00.000Z",
    "guid'00000000-0000-0000-0000-000000000000'", "asc", "desc", "/", "$it", "any(", "*",
]  # fmt: skip

token_text = st.lists(st.sampled_from(TOKENS), min_size=1, max_size=12).map(" ".join)
option_values = st.one_of(
    token_text,
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.text(alphabet=st.characters(codec="utf-8", exclude_characters="&#%"), max_size=20),
)
options = st.sampled_from(["$filter", "$orderby", "$select", "$skip", "$top", "$count"])


def _url_safe(text: str) -> str:
    return quote(text, safe="()',$*-./: ")


@FUZZ
@given(name=options, value=option_values)
def test_query_options_never_5xx(server: Any, version: str, name: str, value: str) -> None:
    response = call(server.http, "GET", f"/tables/movies?{name}={_url_safe(value)}", version)
    if response.status_code == 200:
        page_items(version, response)
    else:
        assert_error(response, 400)


@FUZZ
@given(item_id=st.text(min_size=1, max_size=300))
def test_any_id_in_the_path_never_5xx(server: Any, version: str, item_id: str) -> None:
    response = call(server.http, "GET", item_url("movies", item_id), version)
    if response.status_code != 200:
        assert_error(response, 400, 404)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)
fields = st.sampled_from(["title", "count", "price", "done", "due", "meta", "deleted", "other"])


@FUZZ
@given(body=st.dictionaries(fields, json_values, max_size=4))
def test_any_insert_body_never_5xx(server: Any, version: str, body: dict[str, Any]) -> None:
    sent = {"id": new_id("fuzz"), **body}
    response = call(server.http, "POST", "/tables/items", version, content=json.dumps(sent))
    if response.status_code != 201:
        assert_error(response, 400)


@pytest.mark.parametrize(
    "value", ["3.0.0", " 3.0.0 ", "3.0.0, 2.0.0", "3.0.0\t", "2.0.0-beta", "3.0.0;q=1"]
)
def test_odd_version_headers_never_5xx(server: Any, value: str) -> None:
    response = server.http.get("/tables/movies?$top=1", headers={"ZUMO-API-VERSION": value})
    if response.status_code != 200:
        assert_error(response, 400)


@pytest.mark.parametrize("value", ["%EF%BC%93.0.0", "%00", "3.0.0%00", "%FF"])
def test_odd_version_parameters_never_5xx(server: Any, value: str) -> None:
    response = server.http.get(f"/tables/movies?$top=1&ZUMO-API-VERSION={value}")
    assert_error(response, 400)
