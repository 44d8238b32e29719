from __future__ import annotations

import pytest

from vigil.web.params import (
    MAX_TIME_MS,
    MIN_TIME_MS,
    ApiError,
    parse_duration_ms,
    parse_limit,
    parse_time_ms,
)
from vigil.web.selectors import parse_match_params, parse_selector


@pytest.mark.parametrize(
    ("s", "ms"),
    [
        ("1700000000", 1_700_000_000_000),
        ("1700000000.123", 1_700_000_000_123),
        ("1700000000.1236", 1_700_000_000_124),
        ("-1.5", -1500),
        ("2023-11-14T22:13:20Z", 1_700_000_000_000),
        ("2023-11-14T22:13:20.5Z", 1_700_000_000_500),
        ("2023-11-14T23:13:20.123456789+01:00", 1_700_000_000_123),
        ("-292273086-05-16T16:47:06Z", MIN_TIME_MS),
        ("292277025-08-17T07:12:54.999999999Z", MAX_TIME_MS),
    ],
)
def test_parse_time(s: str, ms: int) -> None:
    assert parse_time_ms(s) == ms


@pytest.mark.parametrize("s", ["", "abc", "NaN", "Inf", "2023-13-01T00:00:00Z", "1_000", " 1"])
def test_parse_time_errors(s: str) -> None:
    with pytest.raises(ValueError, match="cannot parse"):
        parse_time_ms(s)


@pytest.mark.parametrize(
    ("s", "ms"),
    [
        ("15", 15_000),
        ("0.5", 500),
        ("15s", 15_000),
        ("1h30m", 5_400_000),
        ("100ms", 100),
        ("1d", 86_400_000),
        ("1y", 365 * 86_400_000),
        ("0", 0),
        ("-1", -1000),
    ],
)
def test_parse_duration(s: str, ms: int) -> None:
    assert parse_duration_ms(s) == ms


@pytest.mark.parametrize("s", ["", "15x", "1m1h", "s", "1e400"])
def test_parse_duration_errors(s: str) -> None:
    with pytest.raises(ValueError, match="cannot parse"):
        parse_duration_ms(s)


def test_parse_limit() -> None:
    assert parse_limit("") == 0
    assert parse_limit("5") == 5
    with pytest.raises(ApiError, match="non-negative"):
        parse_limit("-1")
    with pytest.raises(ApiError, match='invalid parameter "limit"'):
        parse_limit("x")


def test_selectors() -> None:
    ms = parse_selector('up{job="a", instance=~"b.*", x!="", y!~\'z\'}')
    assert sorted(str(m) for m in ms) == sorted(
        ['__name__="up"', 'job="a"', 'instance=~"b.*"', 'x!=""', 'y!~"z"']
    )
    assert sorted(str(m) for m in parse_selector('{"my.metric", a="\\n"}')) == [
        '__name__="my.metric"',
        'a="\\n"',
    ]
    with pytest.raises(ApiError, match="at least one non-empty matcher"):
        parse_match_params(['{a=""}'])
    for bad in ["{", "up{a=}", 'up{a=~"("}', "1+1", 'up{a="b"', "up}"]:
        with pytest.raises(ApiError):
            parse_match_params([bad])
