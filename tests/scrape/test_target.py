"""Target label computation, URL building and identity (Prometheus scrape/target.go)."""

from __future__ import annotations

from typing import Any

import pytest

from vigil.config import ScrapeConfig
from vigil.model.labels import Labels
from vigil.scrape.target import (
    HEALTH_DOWN,
    HEALTH_UNKNOWN,
    HEALTH_UP,
    Target,
    TargetError,
    build_url,
    discovered_labels,
    format_duration,
    parse_duration,
    populate_labels,
    targets_from_group,
)


def cfg(**kw: Any) -> ScrapeConfig:
    base: dict[str, Any] = {"job_name": "job1", "scrape_interval": "15s", "scrape_timeout": "10s"}
    base.update(kw)
    return ScrapeConfig.model_validate(base)


def lab(d: dict[str, str]) -> Labels:
    return Labels.from_dict(d)


BASE = {
    "__address__": "h:9100",
    "__metrics_path__": "/metrics",
    "__scheme__": "http",
    "__scrape_interval__": "15s",
    "__scrape_timeout__": "10s",
    "job": "job1",
}

# (case, config kwargs, target labels, group labels, expected final labels or None=dropped)
CASES: list[tuple[str, dict[str, Any], dict[str, str], dict[str, str], dict[str, str] | None]] = [
    (
        "defaults and instance from address",
        {},
        {"__address__": "h:9100"},
        {},
        {**BASE, "instance": "h:9100"},
    ),
    (
        "target labels win over group labels",
        {},
        {"__address__": "h:9100", "env": "t"},
        {"env": "g", "team": "x"},
        {**BASE, "instance": "h:9100", "env": "t", "team": "x"},
    ),
    (
        "discovered job/scheme/path kept over config",
        {},
        {"__address__": "h:1", "job": "other", "__scheme__": "https", "__metrics_path__": "/m"},
        {},
        {
            **BASE,
            "__address__": "h:1",
            "job": "other",
            "__scheme__": "https",
            "__metrics_path__": "/m",
            "instance": "h:1",
        },
    ),
    (
        "explicit instance kept",
        {},
        {"__address__": "h:9100", "instance": "nice-name"},
        {},
        {**BASE, "instance": "nice-name"},
    ),
    (
        "params become __param_ labels (first value)",
        {"params": {"module": ["if_mib", "x"]}},
        {"__address__": "h:9100"},
        {},
        {**BASE, "__param_module": "if_mib", "instance": "h:9100"},
    ),
    (
        "meta labels removed after relabeling",
        {
            "relabel_configs": [
                {"source_labels": ["__meta_zone"], "target_label": "zone"},
            ]
        },
        {"__address__": "h:9100", "__meta_zone": "eu"},
        {},
        {**BASE, "instance": "h:9100", "zone": "eu"},
    ),
    (
        "relabel drop",
        {"relabel_configs": [{"source_labels": ["env"], "regex": "dev", "action": "drop"}]},
        {"__address__": "h:9100", "env": "dev"},
        {},
        None,
    ),
    (
        "relabel rewrites address, instance follows",
        {
            "relabel_configs": [
                {"source_labels": ["__address__"], "target_label": "__param_target"},
                {"target_label": "__address__", "replacement": "exporter:9115"},
            ]
        },
        {"__address__": "example.com"},
        {},
        {
            **BASE,
            "__address__": "exporter:9115",
            "__param_target": "example.com",
            "instance": "exporter:9115",
        },
    ),
]


@pytest.mark.parametrize(("case", "kw", "tl", "gl", "want"), CASES, ids=[c[0] for c in CASES])
def test_populate_labels_table(
    case: str,
    kw: dict[str, Any],
    tl: dict[str, str],
    gl: dict[str, str],
    want: dict[str, str] | None,
) -> None:
    c = cfg(**kw)
    got = populate_labels(c, discovered_labels(c, lab(tl), lab(gl)))
    assert (got.to_dict() if got is not None else None) == want


ERRORS = [
    ("no address", {}, {"foo": "bar"}, "no address"),
    ("slash in address", {}, {"__address__": "http://h:1"}, '"http://h:1" is not a valid hostname'),
    (
        "bad interval label",
        {},
        {"__address__": "h:1", "__scrape_interval__": "soon"},
        'error parsing scrape interval: not a valid duration string: "soon"',
    ),
    (
        "zero interval",
        {},
        {"__address__": "h:1", "__scrape_interval__": "0s"},
        "scrape interval cannot be 0",
    ),
    (
        "zero timeout",
        {},
        {"__address__": "h:1", "__scrape_timeout__": "0s"},
        "scrape timeout cannot be 0",
    ),
    (
        "timeout over interval",
        {},
        {"__address__": "h:1", "__scrape_timeout__": "1m"},
        'scrape timeout cannot be greater than scrape interval ("1m" > "15s")',
    ),
]


@pytest.mark.parametrize(("case", "kw", "tl", "msg"), ERRORS, ids=[e[0] for e in ERRORS])
def test_populate_labels_errors(
    case: str, kw: dict[str, Any], tl: dict[str, str], msg: str
) -> None:
    c = cfg(**kw)
    with pytest.raises(TargetError) as ei:
        populate_labels(c, discovered_labels(c, lab(tl), Labels.EMPTY))
    assert str(ei.value) == msg


def test_targets_from_group_splits_active_dropped_failed() -> None:
    c = cfg(
        relabel_configs=[{"source_labels": ["__address__"], "regex": "skip.*", "action": "drop"}]
    )
    res = targets_from_group(
        c,
        "file.json:0",
        [lab({"__address__": "a:1"}), lab({"__address__": "skip:1"}), lab({"__address__": "x/y"})],
        lab({"g": "1"}),
    )
    assert [t.public_labels.to_dict() for t in res.active] == [
        {"g": "1", "instance": "a:1", "job": "job1"}
    ]
    assert [d.get("__address__") for d in res.dropped] == ["skip:1"]
    assert res.dropped[0].get("__scrape_interval__") == "15s"  # discovered labels are complete
    assert res.failures == ['instance 2 in group file.json:0: "x/y" is not a valid hostname']


def test_url_building() -> None:
    c = cfg(params={"module": ["a", "b"], "x": ["1"]}, metrics_path="probe", scheme="https")
    t = targets_from_group(
        c, "0", [lab({"__address__": "h:1", "__param_module": "z"})], Labels.EMPTY
    ).active[0]
    # __param_ label overrides the first value only; keys sorted; path gets its slash.
    assert t.url == "https://h:1/probe?module=z&module=b&x=1"
    assert (
        build_url(lab({"__address__": "h", "__scheme__": "http", "__metrics_path__": "/m"}), {})
        == "http://h/m"
    )
    assert build_url(
        lab(
            {
                "__address__": "h",
                "__scheme__": "http",
                "__metrics_path__": "/",
                "__param_q": "a b&c",
            }
        ),
        {},
    ) == ("http://h/?q=a+b%26c")


def test_identity_and_offset() -> None:
    c = cfg()
    a = targets_from_group(c, "0", [lab({"__address__": "h:1"})], Labels.EMPTY).active[0]
    b = targets_from_group(c, "1", [lab({"__address__": "h:1"})], Labels.EMPTY).active[0]
    other = targets_from_group(c, "0", [lab({"__address__": "h:2"})], Labels.EMPTY).active[0]
    assert a.key == b.key != other.key
    # The offset puts the target on a fixed phase of the interval grid.
    for now in (0, 1234, 15_000 * 1000 + 7):
        off = a.offset_ms(now)
        assert 0 <= off <= 15_000
        assert (now + off) % 15_000 == a.offset_ms(0) % 15_000
    assert (
        a.offset_ms(0, offset_seed=12345) != a.offset_ms(0)
        or a.key % 15000 == (a.key ^ 12345) % 15000
    )


def test_health_reporting() -> None:
    t = Target(lab({**BASE, "instance": "h:9100"}), lab(BASE), {})
    assert t.health == HEALTH_UNKNOWN
    t.report(1000, 0.5, None)
    assert t.health == HEALTH_UP
    t.report(2000, 0.1, "boom")
    assert t.health == HEALTH_DOWN
    assert t.last_result is not None and t.last_result.error == "boom"


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("15s", 15_000),
        ("1m30s", 90_000),
        ("500ms", 500),
        ("1h", 3_600_000),
        ("0", 0),
        ("1w", 604_800_000),
    ],
)
def test_durations(text: str, ms: int) -> None:
    assert parse_duration(text) == ms
    assert parse_duration(format_duration(ms)) == ms


def test_bad_duration() -> None:
    with pytest.raises(ValueError, match=r"duration.*\"1x\""):
        parse_duration("1x")
    with pytest.raises(ValueError):
        parse_duration("")
