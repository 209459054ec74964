"""Whatever a client sends in headers, paths or query strings, the answer is never a 5xx."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import V2, V3

HEADER_TEXT = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)
FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
CONDITIONAL = ["If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since"]


@FUZZ
@given(
    name=st.sampled_from(CONDITIONAL),
    value=HEADER_TEXT,
    method=st.sampled_from(["GET", "PATCH", "DELETE"]),
)
def test_conditional_headers_never_5xx(client: Any, name: str, value: str, method: str) -> None:
    client.post("/tables/todo", json={"id": "h"}, headers=V3)
    body = {"text": "x"} if method == "PATCH" else None
    response = client.request(method, "/tables/todo/h", json=body, headers={**V3, name: value})
    assert response.status_code < 500, response.text


@FUZZ
@given(
    name=st.sampled_from(
        [
            "X-ZUMO-Options",
            "Idempotency-Key",
            "Content-Encoding",
            "Content-Type",
            "ZUMO-API-VERSION",
        ]
    ),
    value=HEADER_TEXT,
)
def test_other_headers_never_5xx(client: Any, name: str, value: str) -> None:
    response = client.post("/tables/todo", json={"text": "x"}, headers={**V2, name: value})
    assert response.status_code < 500, response.text
    listing = client.get("/tables/todo", headers={**V3, name: value})
    assert listing.status_code < 500, listing.text


@FUZZ
@given(
    when=st.sampled_from(
        [
            "Fri, 31 Dec 9999 23:59:59 GMT",
            "Mon, 01 Jan 0001 00:00:00 GMT",
            "Thu, 01 Jan 1970 00:00:00 GMT",
            "not a date",
            "Sun, 06 Nov 1994 08:49:37 +1400",
        ]
    ),
    name=st.sampled_from(CONDITIONAL[2:]),
)
def test_extreme_http_dates_are_ignored_or_applied(client: Any, when: str, name: str) -> None:
    client.post("/tables/todo", json={"id": "d"}, headers=V3)
    for method in ("GET", "PATCH"):
        body = {"text": "x"} if method == "PATCH" else None
        response = client.request(method, "/tables/todo/d", json=body, headers={**V3, name: when})
        assert response.status_code in (200, 304, 412), response.text


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
FIELDS = st.sampled_from(
    [
        "id",
        "text",
        "count",
        "price",
        "done",
        "due",
        "extra",
        "version",
        "deleted",
        "updatedAt",
        "x-y",
    ]
)


@FUZZ
@given(
    body=st.dictionaries(FIELDS, JSON_VALUES, max_size=6),
    method=st.sampled_from(["PATCH", "PUT"]),
    version=st.sampled_from([V2, V3]),
)
def test_any_update_body_never_5xx(
    client: Any, body: dict[str, Any], method: str, version: dict[str, str]
) -> None:
    client.post("/tables/todo", json={"id": "u"}, headers=V3)
    response = client.request(method, "/tables/todo/u", json=body, headers=version)
    assert response.status_code < 500, response.text
    if response.status_code == 200:
        assert response.json()["id"] == "u"
