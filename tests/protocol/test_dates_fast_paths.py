"""The fast paths of parse_datetime/format_datetime agree with the general ones, value for value."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tablesync.protocol.dates import _ISO, format_datetime, parse_datetime, truncate_millis

UTC = dt.UTC
utc_datetimes = st.datetimes(
    min_value=dt.datetime(1000, 1, 1), max_value=dt.datetime(9999, 12, 31, 23, 59, 59)
).map(lambda value: value.replace(tzinfo=UTC))


def general_format(value: dt.datetime) -> str:
    v = truncate_millis(value)
    return (
        f"{v.year:04d}-{v.month:02d}-{v.day:02d}T{v.hour:02d}:{v.minute:02d}:{v.second:02d}"
        f".{v.microsecond // 1000:03d}Z"
    )


@settings(max_examples=300, deadline=None)
@given(utc_datetimes)
def test_format_matches_the_general_path(value: dt.datetime) -> None:
    text = format_datetime(value)
    assert text == general_format(value)
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z", text)


@settings(max_examples=300, deadline=None)
@given(utc_datetimes)
def test_canonical_text_parses_to_the_truncated_value(value: dt.datetime) -> None:
    parsed = parse_datetime(general_format(value))
    assert parsed == truncate_millis(value)
    assert parsed.utcoffset() == dt.timedelta(0)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("2026-11-26T15:32:10,381Z", id="comma-fraction"),
        pytest.param("2026-11-26T25:32:10.381Z", id="hour-25"),
        pytest.param("2026-02-30T15:32:10.381Z", id="february-30"),
        pytest.param("2026-11-26T15:32:10.381Q", id="bad-zone"),
    ],
)
def test_malformed_canonical_looking_text_is_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        parse_datetime(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("2026-11-26T15:32:10.381Z", "2026-11-26T15:32:10.381Z", id="canonical"),
        pytest.param("2026-11-26T16:32:10.3819+01:00", "2026-11-26T15:32:10.381Z", id="offset"),
        pytest.param("2026-11-26 15:32:10Z", "2026-11-26T15:32:10.000Z", id="space-no-frac"),
        pytest.param("0999-01-01T00:00:00.000Z", None, id="year-below-1000"),
    ],
)
def test_round_trip_through_both_paths(text: str, expected: str | None) -> None:
    value = parse_datetime(text)
    assert _ISO.match(text) is not None
    assert format_datetime(value) == (expected or general_format(value))


def test_a_non_utc_zone_takes_the_general_path() -> None:
    value = dt.datetime(2026, 1, 2, 4, 5, 6, 789999, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert format_datetime(value) == "2026-01-02T03:05:06.789Z"
