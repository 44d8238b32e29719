"""PushRegistry with an injected clock and an in-memory store: what each push,
delete, refresh and expiry writes."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from vigil.model.labels import Labels
from vigil.model.matchers import Matcher
from vigil.model.samples import is_stale
from vigil.push import PushRegistry, PushRejected
from vigil.storage.memory import MemoryStorage

T0 = 1_700_000_000.0
GROUP = Labels.from_dict({"job": "etl", "instance": "host1"})


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store() -> MemoryStorage:
    return MemoryStorage()


@pytest.fixture
def reg(store: MemoryStorage, clock: Clock) -> PushRegistry:
    return PushRegistry(store, now=clock, refresh_interval_s=15)


def samples(
    store: MemoryStorage, name: str, **labels: str
) -> dict[Labels, list[tuple[int, float]]]:
    ms = [Matcher.equal("__name__", name), *(Matcher.equal(k, v) for k, v in labels.items())]
    q = store.querier(0, 1 << 62)
    try:
        return {
            s.labels: list(zip(s.timestamps.tolist(), s.values.tolist(), strict=True))
            for s in q.select(ms, 0, 1 << 62)
        }
    finally:
        q.close()


def only(store: MemoryStorage, name: str, **labels: str) -> list[tuple[int, float]]:
    found = samples(store, name, **labels)
    assert len(found) == 1, found
    return next(iter(found.values()))


BODY = b"""# HELP rows Rows processed.
# TYPE rows counter
rows{table="a"} 10
rows{table="b"} 20
# TYPE duration_seconds gauge
duration_seconds 1.5
"""


def ms(t: float) -> int:
    return int(t * 1000)


def test_push_writes_series_with_grouping_labels_and_push_time(
    reg: PushRegistry, store: MemoryStorage
) -> None:
    reg.push(GROUP, BODY, "text/plain; version=0.0.4", replace=True)
    rows = samples(store, "rows")
    assert {lbls.to_dict()["table"]: pts for lbls, pts in rows.items()} == {
        "a": [(ms(T0), 10.0)],
        "b": [(ms(T0), 20.0)],
    }
    assert all(lbls.get("job") == "etl" and lbls.get("instance") == "host1" for lbls in rows)
    assert only(store, "push_time_seconds", job="etl", instance="host1") == [(ms(T0), T0)]
    assert only(store, "push_failure_time_seconds", job="etl") == [(ms(T0), 0.0)]
    [g] = reg.groups()
    assert g["labels"] == {"job": "etl", "instance": "host1"}
    assert g["series"] == 3 and g["lastPushTime"] == T0
    assert g["ttlSeconds"] is None and g["expiresAt"] is None


def test_grouping_labels_override_pushed_labels(reg: PushRegistry, store: MemoryStorage) -> None:
    reg.push(GROUP, b'm{job="other",instance="x",k="v"} 1\n', None, replace=True)
    [lbls] = samples(store, "m")
    assert lbls.to_dict() == {"__name__": "m", "job": "etl", "instance": "host1", "k": "v"}


def test_pushed_instance_kept_when_not_in_grouping(reg: PushRegistry, store: MemoryStorage) -> None:
    reg.push(Labels.from_dict({"job": "j"}), b'm{instance="x"} 1\nn 2\n', None, replace=True)
    assert [lbls.get("instance") for lbls in samples(store, "m")] == ["x"]
    # Pushgateway's instance="" default is the same as no instance label in Vigil
    assert [lbls.has("instance") for lbls in samples(store, "n")] == [False]


def test_put_replaces_group_and_marks_dropped_series_stale(
    reg: PushRegistry, store: MemoryStorage, clock: Clock
) -> None:
    reg.push(GROUP, BODY, None, replace=True)
    clock.t += 5
    reg.push(GROUP, b'rows{table="a"} 11\n', None, replace=True)
    assert only(store, "rows", table="a") == [(ms(T0), 10.0), (ms(T0 + 5), 11.0)]
    b = only(store, "rows", table="b")
    assert b[0] == (ms(T0), 20.0) and b[1][0] == ms(T0 + 5) and is_stale(b[1][1])
    d = only(store, "duration_seconds")
    assert is_stale(d[-1][1])
    assert only(store, "push_time_seconds")[-1] == (ms(T0 + 5), T0 + 5)
    assert reg.groups()[0]["families"] == ["rows"]


def test_post_replaces_only_families_present(
    reg: PushRegistry, store: MemoryStorage, clock: Clock
) -> None:
    reg.push(GROUP, BODY, None, replace=True)
    clock.t += 5
    reg.push(GROUP, b'# TYPE rows counter\nrows{table="c"} 3\n', None, replace=False)
    # rows is replaced as a whole (a and b leave), duration_seconds is kept
    assert is_stale(only(store, "rows", table="a")[-1][1])
    assert only(store, "rows", table="c") == [(ms(T0 + 5), 3.0)]
    assert only(store, "duration_seconds") == [(ms(T0), 1.5), (ms(T0 + 5), 1.5)]
    assert reg.groups()[0]["families"] == ["duration_seconds", "rows"]


def test_post_with_type_only_family_empties_it(
    reg: PushRegistry, store: MemoryStorage, clock: Clock
) -> None:
    reg.push(GROUP, BODY, None, replace=True)
    clock.t += 1
    reg.push(GROUP, b"# TYPE rows counter\n", None, replace=False)
    assert all(is_stale(pts[-1][1]) for pts in samples(store, "rows").values())
    assert reg.groups()[0]["series"] == 1


def test_histogram_samples_are_one_family(reg: PushRegistry, clock: Clock) -> None:
    body = b"""# TYPE lat histogram
lat_bucket{le="1"} 1
lat_bucket{le="+Inf"} 2
lat_sum 3
lat_count 2
"""
    reg.push(GROUP, body, None, replace=True)
    [g] = reg.groups()
    assert g["families"] == ["lat"] and g["series"] == 4


def test_refresh_reappends_latest_values_on_interval(
    reg: PushRegistry, store: MemoryStorage, clock: Clock
) -> None:
    reg.push(GROUP, BODY, None, replace=True)
    clock.t += 10
    reg.tick()  # not due yet
    assert len(only(store, "duration_seconds")) == 1
    clock.t += 5
    reg.tick()
    clock.t += 15
    reg.tick()
    assert only(store, "duration_seconds") == [
        (ms(T0), 1.5),
        (ms(T0 + 15), 1.5),
        (ms(T0 + 30), 1.5),
    ]
    # the push time keeps its value: it says when the job pushed, not when we wrote
    assert [v for _, v in only(store, "push_time_seconds")] == [T0, T0, T0]


def test_ttl_expiry_removes_group_and_writes_staleness_markers(
    reg: PushRegistry, store: MemoryStorage, clock: Clock
) -> None:
    reg.push(GROUP, BODY, None, replace=True, ttl_s=30)
    [g] = reg.groups()
    assert g["ttlSeconds"] == 30 and g["expiresAt"] == T0 + 30
    clock.t += 20
    reg.push(GROUP, BODY, None, replace=True, ttl_s=30)  # a new push extends the life
    clock.t += 29
    reg.tick()
    assert reg.groups()
    clock.t += 1
    reg.tick()
    assert reg.groups() == []
    for name in ("rows", "duration_seconds", "push_time_seconds", "push_failure_time_seconds"):
        for pts in samples(store, name).values():
            assert pts[-1][0] == ms(T0 + 50) and is_stale(pts[-1][1]), (name, pts)
    assert reg.expired_total == 1
    clock.t += 100
    reg.tick()  # nothing more is written for an expired group
    assert only(store, "rows", table="a")[-1][0] == ms(T0 + 50)


def test_default_ttl_applies_when_push_has_none(store: MemoryStorage, clock: Clock) -> None:
    reg = PushRegistry(store, now=clock, default_ttl_s=60)
    reg.push(GROUP, BODY, None, replace=True)
    assert reg.groups()[0]["ttlSeconds"] == 60
    reg.push(GROUP, BODY, None, replace=True, ttl_s=5)
    assert reg.groups()[0]["ttlSeconds"] == 5
    with pytest.raises(ValueError, match="positive"):
        PushRegistry(store, default_ttl_s=0)


def test_delete_marks_all_series_stale(
    reg: PushRegistry, store: MemoryStorage, clock: Clock
) -> None:
    reg.push(GROUP, BODY, None, replace=True)
    other = Labels.from_dict({"job": "etl", "instance": "host2"})
    reg.push(other, b"# TYPE rows counter\nrows 1\n", None, replace=True)
    clock.t += 3
    assert reg.delete(GROUP) is True
    assert reg.delete(GROUP) is False
    assert [g["labels"]["instance"] for g in reg.groups()] == ["host2"]
    for pts in samples(store, "rows", instance="host1").values():
        assert pts[-1][0] == ms(T0 + 3) and is_stale(pts[-1][1])
    assert not is_stale(only(store, "rows", instance="host2")[-1][1])


def test_same_millisecond_pushes_keep_timestamps_ascending(
    reg: PushRegistry, store: MemoryStorage
) -> None:
    reg.push(GROUP, b"m 1\n", None, replace=True)
    reg.push(GROUP, b"m 2\n", None, replace=True)
    assert only(store, "m") == [(ms(T0), 1.0), (ms(T0) + 1, 2.0)]
    assert reg.rejected_samples_total == 0


@pytest.mark.parametrize(
    ("body", "ctype", "status", "message"),
    [
        (b"m{ 1\n", None, 400, "parsing error"),
        (b"m 1 1700000000000\n", None, 400, "must not have timestamps"),
        (b'm{job="a"} 1\nm{job="b"} 2\n', None, 400, "more than once"),
        (b"m 1\n", "application/openmetrics-text; version=1.0.0", 400, "EOF"),
        (
            b"\x00",
            "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; "
            "encoding=delimited",
            415,
            "protobuf",
        ),
    ],
)
def test_bad_body_is_refused_without_change(
    reg: PushRegistry,
    store: MemoryStorage,
    clock: Clock,
    body: bytes,
    ctype: str | None,
    status: int,
    message: str,
) -> None:
    reg.push(GROUP, BODY, None, replace=True)
    before = reg.groups()
    clock.t += 1
    with pytest.raises(PushRejected, match=message) as err:
        reg.push(GROUP, body, ctype, replace=True)
    assert err.value.status == status
    after = reg.groups()
    assert [{**g, "lastFailureTime": 0} for g in after] == before
    assert only(store, "rows", table="a") == [(ms(T0), 10.0)]
    assert reg.failures_total == 1
    # Pushgateway records a failure time for a body that parsed but was refused
    failure = only(store, "push_failure_time_seconds")
    if err.value.consistency:
        assert after[0]["lastFailureTime"] == T0 + 1 and failure[-1] == (ms(T0 + 1), T0 + 1)
    else:
        assert after[0]["lastFailureTime"] == 0 and len(failure) == 1


def test_refused_push_to_new_group_creates_nothing(reg: PushRegistry, store: MemoryStorage) -> None:
    with pytest.raises(PushRejected):
        reg.push(GROUP, b"m 1 123\n", None, replace=True)
    assert reg.groups() == []
    assert samples(store, "push_failure_time_seconds") == {}


def test_openmetrics_body(reg: PushRegistry, store: MemoryStorage) -> None:
    body = b"# TYPE jobs counter\njobs_total 4\njobs_created 1.7e9\n# EOF\n"
    reg.push(GROUP, body, "application/openmetrics-text; version=1.0.0", replace=True)
    assert reg.groups()[0]["families"] == ["jobs"]
    assert only(store, "jobs_total") == [(ms(T0), 4.0)]


def test_conflicts_with_other_groups_are_refused(reg: PushRegistry) -> None:
    reg.push(Labels.from_dict({"job": "a"}), b"# TYPE m counter\nm 1\n", None, replace=True)
    with pytest.raises(PushRejected, match="cannot merge metric 'm': type gauge"):
        reg.push(Labels.from_dict({"job": "b"}), b"# TYPE m gauge\nm 1\n", None, replace=True)
    # the same labels as a series of group {job="a"} (pushed with job="a" overridden)
    reg.push(Labels.from_dict({"job": "a", "x": "1"}), b"n 1\n", None, replace=True)
    with pytest.raises(PushRejected, match="already pushed by group"):
        reg.push(Labels.from_dict({"job": "a"}), b'n{x="1"} 2\n', None, replace=False)


def test_pushed_push_time_is_overwritten(reg: PushRegistry, store: MemoryStorage) -> None:
    reg.push(GROUP, b"push_time_seconds 5\nm 1\n", None, replace=True)
    assert only(store, "push_time_seconds") == [(ms(T0), T0)]


def test_special_values_and_bad_ttl(reg: PushRegistry, store: MemoryStorage) -> None:
    reg.push(GROUP, b"a NaN\nb +Inf\n", None, replace=True)
    assert math.isnan(only(store, "a")[0][1]) and not is_stale(only(store, "a")[0][1])
    with pytest.raises(PushRejected, match="TTL"):
        reg.push(GROUP, b"a 1\n", None, replace=True, ttl_s=-1)


def test_state_survives_restart(tmp_path: Path, clock: Clock) -> None:
    state = tmp_path / "push" / "groups.json"
    first = MemoryStorage()
    reg = PushRegistry(first, now=clock, state_file=state)
    reg.start()
    reg.push(GROUP, BODY + b"odd NaN\n", None, replace=True, ttl_s=100)
    gone = Labels.from_dict({"job": "short"})
    reg.push(gone, b"x 1\n", None, replace=True, ttl_s=5)
    reg.stop()
    clock.t += 10  # the short group expired while Vigil was down
    second = MemoryStorage()
    again = PushRegistry(second, now=clock, state_file=state)
    again.start()
    try:
        assert [g["labels"] for g in again.groups()] == [GROUP.to_dict()]
        assert again.groups()[0]["expiresAt"] == T0 + 100
        assert only(second, "rows", table="b") == [(ms(T0 + 10), 20.0)]
        assert math.isnan(only(second, "odd")[0][1])
        assert is_stale(only(second, "x")[-1][1])
    finally:
        again.stop()
    state.write_text("{not json")
    broken = PushRegistry(MemoryStorage(), now=clock, state_file=state)
    broken.start()
    broken.stop()
    assert broken.groups() == []
