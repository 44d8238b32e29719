"""Head append rules, queries and truncation (no disk)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vigil.model.labels import Labels
from vigil.model.matchers import Matcher, MatchType
from vigil.model.samples import STALE_NAN, stale_mask
from vigil.tsdb.head import Head, UnknownSeriesRefError

H = 3600 * 1000


def L(**kw: str) -> Labels:
    return Labels.from_dict(kw)


def m(name: str, op: str, value: str) -> Matcher:
    return Matcher(MatchType(op), name, value)


def read_all(head: Head, *matchers: Matcher, mint: int = -(10**15), maxt: int = 10**15):
    return head.querier(mint, maxt).select(list(matchers), mint, maxt)


def test_in_order_append_and_select() -> None:
    head = Head()
    app = head.appender()
    for t in range(0, 10_000, 1000):
        app.append(L(__name__="up", job="a"), t, t / 1000)
    stats = app.commit()
    assert stats.appended == 10 and stats.rejected == 0 and stats.new_series == 1
    (s,) = read_all(head, m("__name__", "=", "up"))
    assert s.timestamps.tolist() == list(range(0, 10_000, 1000))
    assert s.values.tolist() == [float(i) for i in range(10)]
    # Inclusive bounds on both ends.
    (s,) = head.querier(0, 10**9).select([m("job", "=", "a")], 2000, 4000)
    assert s.timestamps.tolist() == [2000, 3000, 4000]


def test_nothing_visible_before_commit_and_rollback() -> None:
    head = Head()
    app = head.appender()
    app.append(L(__name__="x"), 1, 1.0)
    assert read_all(head) == []
    app.rollback()
    assert app.commit().appended == 0
    assert read_all(head) == []


def test_out_of_order_rejected_without_window() -> None:
    head = Head()
    app = head.appender()
    app.append(L(__name__="x"), 5000, 1.0)
    app.commit()
    app.append(L(__name__="x"), 4000, 2.0)
    app.append(L(__name__="x"), 6000, 3.0)
    stats = app.commit()
    assert stats.out_of_order == 1 and stats.appended == 1
    (s,) = read_all(head)
    assert s.timestamps.tolist() == [5000, 6000]
    assert head.out_of_order == 1


def test_out_of_order_within_one_commit() -> None:
    head = Head()
    app = head.appender()
    for t in (1000, 3000, 2000, 4000):
        app.append(L(__name__="x"), t, float(t))
    stats = app.commit()
    assert stats.appended == 3 and stats.out_of_order == 1
    (s,) = read_all(head)
    assert s.timestamps.tolist() == [1000, 3000, 4000]


def test_duplicates_same_value_silent_different_value_error() -> None:
    head = Head()
    app = head.appender()
    app.append(L(__name__="x"), 1000, 1.5)
    app.commit()
    app.append(L(__name__="x"), 1000, 1.5)
    s1 = app.commit()
    assert s1.appended == 0 and s1.rejected == 0
    app.append(L(__name__="x"), 1000, 2.5)
    s2 = app.commit()
    assert s2.duplicate == 1 and s2.appended == 0
    # Within one commit too.
    app.append(L(__name__="x"), 2000, 1.0)
    app.append(L(__name__="x"), 2000, 1.0)
    app.append(L(__name__="x"), 2000, 9.0)
    s3 = app.commit()
    assert (s3.appended, s3.duplicate) == (1, 1)
    (s,) = read_all(head)
    assert s.timestamps.tolist() == [1000, 2000]
    assert s.values.tolist() == [1.5, 1.0]


def test_nan_duplicate_compared_bitwise() -> None:
    head = Head()
    app = head.appender()
    app.append(L(__name__="x"), 1000, math.nan)
    app.commit()
    app.append(L(__name__="x"), 1000, math.nan)
    assert app.commit().rejected == 0  # same bits: ignored, not an error
    app.append(L(__name__="x"), 1000, STALE_NAN)
    assert app.commit().duplicate == 1  # a different NaN is a different value


def test_ooo_window_accepts_and_sorts() -> None:
    head = Head(ooo_window_ms=10_000)
    app = head.appender()
    for t in (20_000, 30_000):
        app.append(L(__name__="x"), t, float(t))
    app.commit()
    app.append(L(__name__="x"), 25_000, 25.0)  # within window: sorted in
    app.append(L(__name__="x"), 5_000, 5.0)  # older than max - window: too old
    app.append(L(__name__="x"), 20_000, 20_000.0)  # existing sample, same value
    app.append(L(__name__="x"), 30_000, 1.0)  # existing max, different value
    stats = app.commit()
    assert stats.appended == 1
    assert stats.out_of_bounds == 1
    assert stats.duplicate == 1
    (s,) = read_all(head)
    assert s.timestamps.tolist() == [20_000, 25_000, 30_000]
    assert s.values.tolist() == [20_000.0, 25.0, 30_000.0]
    # OOO sample duplicating an earlier OOO sample with a different value.
    app.append(L(__name__="x"), 25_000, 7.0)
    assert app.commit().duplicate == 1


def test_ooo_samples_merge_across_segments() -> None:
    head = Head(ooo_window_ms=100_000, seal_threshold=4)
    app = head.appender()
    ref = app.series_ref(L(__name__="x"))
    for t in range(50_000, 100_001, 10_000):
        app.append_refs(np.array([ref]), np.array([t]), np.array([1.0]))
        app.commit()
    for t in (55_000, 65_000, 1_000):
        app.append_refs(np.array([ref]), np.array([t]), np.array([2.0]))
        app.commit()
    (s,) = read_all(head)
    assert s.timestamps.tolist() == sorted(s.timestamps.tolist())
    assert 55_000 in s.timestamps.tolist() and 1_000 in s.timestamps.tolist()
    assert len(s.timestamps) == 9


def test_out_of_bounds_older_than_half_block() -> None:
    head = Head(block_duration_ms=2 * H)
    app = head.appender()
    app.append(L(__name__="x"), 10 * H, 1.0)
    app.commit()
    app.append(L(__name__="y"), 10 * H - 2 * H, 1.0)  # new series, too old
    app.append(L(__name__="x"), 10 * H - 2 * H, 1.0)
    stats = app.commit()
    assert stats.out_of_bounds == 2 and stats.appended == 0


def test_staleness_marker_preserved_bitwise() -> None:
    head = Head()
    app = head.appender()
    app.append(L(__name__="x"), 1000, 1.0)
    app.append(L(__name__="x"), 2000, STALE_NAN)
    app.append(L(__name__="x"), 3000, math.nan)
    app.commit()
    (s,) = read_all(head)
    assert stale_mask(s.values).tolist() == [False, True, False]
    assert math.isnan(s.values[2])


def test_matchers() -> None:
    head = Head()
    app = head.appender()
    app.append(L(__name__="http", code="200", path="/a"), 1, 1.0)
    app.append(L(__name__="http", code="500", path="/a"), 1, 1.0)
    app.append(L(__name__="http", code="404"), 1, 1.0)
    app.append(L(__name__="cpu", mode="idle"), 1, 1.0)
    app.commit()

    def names(*ms: Matcher) -> list[str]:
        return [str(s.labels) for s in read_all(head, *ms)]

    assert names(m("__name__", "=", "http"), m("code", "=~", "5..")) == [
        'http{code="500", path="/a"}'
    ]
    assert len(names(m("__name__", "=", "http"), m("code", "!~", "2..|5.."))) == 1
    assert names(m("__name__", "=", "http"), m("code", "!=", "200")) == [
        'http{code="404"}',
        'http{code="500", path="/a"}',
    ]
    # Empty-value matching: path="" selects series without the label.
    assert names(m("__name__", "=", "http"), m("path", "=", "")) == ['http{code="404"}']
    assert len(names(m("path", "!=", ""))) == 2
    assert len(names(m("__name__", "=~", ".*"))) == 4
    assert len(names(m("nope", "=~", ".*"))) == 4
    assert names(m("nope", "=~", ".+")) == []
    assert names(m("mode", "=~", "id.*")) == ['cpu{mode="idle"}']
    # Output is sorted by labels.
    all_labels = [s.labels for s in read_all(head)]
    assert all_labels == sorted(all_labels)


def test_label_names_values_series() -> None:
    head = Head()
    app = head.appender()
    app.append(L(__name__="a", x="1"), 1000, 1.0)
    app.append(L(__name__="b", y="2"), 5000, 1.0)
    app.commit()
    q = head.querier(0, 10_000)
    assert q.label_names() == ["__name__", "x", "y"]
    assert q.label_names([m("__name__", "=", "a")]) == ["__name__", "x"]
    assert q.label_values("__name__") == ["a", "b"]
    assert q.label_values("y", [m("__name__", "=", "a")]) == []
    assert q.series([m("__name__", "=~", ".+")], 4000, 6000) == [L(__name__="b", y="2")]


def test_append_refs_many_series_many_commits_matches_reference() -> None:
    rng = np.random.default_rng(7)
    head = Head(seal_threshold=500)
    app = head.appender()
    refs = np.array([app.series_ref(L(__name__="m", i=str(i))) for i in range(50)])
    expected: dict[int, list[tuple[int, float]]] = {int(r): [] for r in refs}
    for c in range(40):
        sel = rng.choice(refs, size=30, replace=False)
        vs = rng.random(30)
        app.append_refs(sel, np.full(30, c * 1000), vs)
        app.commit()
        for r, v in zip(sel.tolist(), vs.tolist(), strict=True):
            expected[r].append((c * 1000, v))
    out = read_all(head, m("__name__", "=", "m"), mint=5000, maxt=30_000)
    for s in out:
        ref = int(refs[int(s.labels.get("i"))])
        want = [(t, v) for t, v in expected[ref] if 5000 <= t <= 30_000]
        assert list(zip(s.timestamps.tolist(), s.values.tolist(), strict=True)) == want
    assert len(head.store._segments) < 8  # size-tiered merging keeps few segments


def test_append_refs_errors() -> None:
    head = Head()
    app = head.appender()
    with pytest.raises(UnknownSeriesRefError, match="unknown series refs"):
        app.append_refs(np.array([99]), np.array([1]), np.array([1.0]))
    with pytest.raises(ValueError, match="differ in length"):
        app.append_refs(np.array([1, 2]), np.array([1]), np.array([1.0]))


def test_truncate_drops_old_samples_and_dead_series() -> None:
    head = Head(block_duration_ms=2 * H)
    app = head.appender()
    app.append(L(__name__="old"), 1000, 1.0)
    app.append(L(__name__="live"), 1000, 1.0)
    app.append(L(__name__="live"), 3 * H, 2.0)
    app.commit()
    removed = head.truncate(2 * H)
    assert removed == 1
    assert [str(s.labels) for s in read_all(head)] == ["live"]
    (s,) = read_all(head)
    assert s.timestamps.tolist() == [3 * H]
    assert head.mint == 3 * H
    app.append(L(__name__="live"), 2 * H - 1, 1.0)  # below the truncation point
    assert app.commit().out_of_bounds == 1


def test_regex_cache_sees_new_values_and_candidate_path() -> None:
    head = Head()
    app = head.appender()
    for i in range(40):
        app.append(L(__name__=f"m{i % 4}", inst=f"h{i}"), 1, 1.0)
    app.commit()
    rx = m("inst", "=~", "h1.*")
    assert len(read_all(head, rx)) == 11  # h1, h10..h19
    app.append(L(__name__="m0", inst="h100"), 1, 1.0)
    app.commit()
    assert len(read_all(head, rx)) == 12  # cached value list was invalidated
    # Narrow first matcher, then a regex over many values: candidates are tested.
    got = read_all(head, m("__name__", "=", "m1"), m("inst", "!~", "h1.*"))
    assert sorted(s.labels.get("inst") for s in got) == [
        f"h{i}" for i in (21, 25, 29, 33, 37, 5, 9)
    ]
