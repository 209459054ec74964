from __future__ import annotations

import datetime as dt

import pytest

from tablesync.protocol import format_datetime, from_millis, parse_datetime, to_millis


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("2024-08-23T20:22:54.291Z", "2024-08-23T20:22:54.291Z", id="ms-z"),
        pytest.param(
            "2001-02-03T00:00:00.0000000+00:00", "2001-02-03T00:00:00.000Z", id="7-digits"
        ),
        pytest.param("2001-02-03T01:00:00.1239+01:00", "2001-02-03T00:00:00.123Z", id="truncated"),
        pytest.param("2001-02-03", "2001-02-03T00:00:00.000Z", id="date-only"),
        pytest.param("0099-01-01T00:00:00Z", "0099-01-01T00:00:00.000Z", id="early-year-padded"),
        pytest.param(
            "2021-08-21T12:30:15.123-05:30", "2021-08-21T18:00:15.123Z", id="negative-offset"
        ),
    ],
)
def test_parse_then_format_is_utc_milliseconds(text: str, expected: str) -> None:
    assert format_datetime(parse_datetime(text)) == expected


@pytest.mark.parametrize("text", ["", "yesterday", "2001-13-01T00:00:00Z", "2001-02-03T25:00:00Z"])
def test_malformed_dates_raise_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        parse_datetime(text)


def test_millis_round_trip() -> None:
    value = dt.datetime(2024, 1, 2, 3, 4, 5, 678999, tzinfo=dt.UTC)
    assert from_millis(to_millis(value)) == value.replace(microsecond=678000)
