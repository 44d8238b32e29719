"""Grouping-key paths, escaped as Pushgateway and vigil.sdk.push escape them."""

from __future__ import annotations

import pytest

from vigil.push.grouping import GroupingError, parse_grouping_path
from vigil.sdk.push import grouping_path


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("job/etl", {"job": "etl"}),
        ("job/etl/", {"job": "etl"}),
        ("job/etl/instance/h1/zone/eu", {"job": "etl", "instance": "h1", "zone": "eu"}),
        ("job@base64/ZXRsL25pZ2h0bHk", {"job": "etl/nightly"}),
        ("job@base64/ZXRsL25pZ2h0bHk=", {"job": "etl/nightly"}),
        ("job/etl/path@base64/L3Zhci90bXA=", {"job": "etl", "path": "/var/tmp"}),
        # empty value: the same group as no such label (Vigil drops empty labels)
        ("job/etl/instance@base64/=", {"job": "etl"}),
        ("job/a%20b/k/%C3%A9t%C3%A9", {"job": "a b", "k": "été"}),
    ],
)
def test_valid_paths(path: str, expected: dict[str, str]) -> None:
    assert parse_grouping_path(path).to_dict() == expected


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("", "must be /metrics/job/"),
        ("job", "odd number"),
        ("job/etl/instance", "odd number"),
        ("instance/h1", "must start with /metrics/job/"),
        ("job@base64/=", "job name is required"),
        ("job/etl/1bad/v", "improper label name"),
        ("job/etl/__name__/v", "improper label name"),
        ("job/etl/a-b/v", "improper label name"),
        ("job/etl/k/v/k/w", "appears twice"),
        ("job/etl/k@base64/!!!", "invalid base64url"),
    ],
)
def test_invalid_paths(path: str, message: str) -> None:
    with pytest.raises(GroupingError, match=message):
        parse_grouping_path(path)


@pytest.mark.parametrize(
    "key", [{}, {"instance": "h1"}, {"path": "/a/b", "empty": "", "sp": "a b?&"}]
)
def test_round_trip_with_the_sdk_client(key: dict[str, str]) -> None:
    path = grouping_path("batch/job", key).removeprefix("/metrics/")
    want = {"job": "batch/job", **{k: v for k, v in key.items() if v}}
    assert parse_grouping_path(path).to_dict() == want
