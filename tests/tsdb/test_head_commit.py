"""The head's commit fast paths agree with the general (sorting) path.

A commit whose refs are distinct and whose samples are all in order skips sorting
and classification; sealing batches of the same series transposes instead of
sorting; merging segments without out-of-order data scatters instead of sorting.
Each must give exactly what the general path gives.
"""

from __future__ import annotations

import numpy as np
import pytest

from vigil.model.labels import Labels
from vigil.model.matchers import Matcher, MatchType
from vigil.storage.interface import SeriesData
from vigil.tsdb.head import Head
from vigil.tsdb.head_samples import Segment, build_segment, merge_segments


def _dump(head: Head) -> list[tuple[Labels, list[int], list[int]]]:
    q = head.querier(-(10**15), 10**15)
    out = q.select([Matcher(MatchType.REGEX, "__name__", ".+")], -(10**15), 10**15)
    return [(s.labels, s.timestamps.tolist(), s.values.view(np.uint64).tolist()) for s in out]


def _series(head: Head, n: int) -> np.ndarray:
    app = head.appender()
    return np.array(
        [app.series_ref(Labels.from_dict({"__name__": "m", "i": str(i)})) for i in range(n)],
        dtype=np.int64,
    )


@pytest.mark.parametrize("seal", [1, 7, 64, 10_000])
def test_fast_path_matches_the_sorting_path(seal: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    fast, slow = Head(seal_threshold=seal), Head(seal_threshold=seal)
    # The reference head takes the general path for every commit.
    monkeypatch.setattr(slow, "_unique_order", lambda refs: None)
    refs_f, refs_s = _series(fast, 40), _series(slow, 40)
    assert np.array_equal(refs_f, refs_s)
    totals = []
    for c in range(60):
        k = int(rng.integers(1, 40))
        idx = rng.choice(40, size=k, replace=c % 5 == 0)  # some commits repeat a ref
        if c % 3 == 0:
            idx.sort()
        ts = (c * 1000 + rng.integers(-1500, 10, size=k)).astype(np.int64)
        vs = rng.integers(0, 3, size=k).astype(np.float64)
        app = fast.appender()
        app.append_refs(refs_f[idx], ts, vs)
        got = app.commit()
        app = slow.appender()
        app.append_refs(refs_s[idx], ts, vs)
        want = app.commit()
        assert (got.appended, got.out_of_order, got.duplicate) == (
            want.appended,
            want.out_of_order,
            want.duplicate,
        )
        totals.append(got.appended)
        if c % 10 == 9:
            assert _dump(fast) == _dump(slow)
    assert _dump(fast) == _dump(slow)
    assert sum(totals) == fast.num_samples


def test_commit_does_not_keep_the_callers_arrays() -> None:
    head = Head(seal_threshold=1 << 20)
    refs = _series(head, 3)
    ts = np.array([10, 10, 10], dtype=np.int64)
    vs = np.array([1.0, 2.0, 3.0])
    app = head.appender()
    app.append_refs(refs, ts, vs)
    app.commit()
    refs[:] = refs[::-1]
    ts[:] = 99
    vs[:] = -1.0
    got = {s.labels.get("i"): (s.timestamps.tolist(), s.values.tolist()) for s in _all(head)}
    assert got == {"0": ([10], [1.0]), "1": ([10], [2.0]), "2": ([10], [3.0])}


def _all(head: Head) -> list[SeriesData]:
    return head.read(head.index.all_refs(), -(10**15), 10**15)


def _segment(rng: np.random.Generator, refs: np.ndarray, t0: int, per: int) -> Segment:
    r = np.repeat(refs, per)
    t = np.tile(np.arange(per, dtype=np.int64), len(refs)) * 10 + t0
    t += rng.integers(0, 3, size=len(t)) * (per > 1)
    return build_segment(r, t, rng.random(len(r)), ref_sorted=False)


def _reference_merge(a: Segment, b: Segment) -> Segment:
    r = np.concatenate((a.sample_refs(), b.sample_refs()))
    return build_segment(
        r, np.concatenate((a.ts, b.ts)), np.concatenate((a.vs, b.vs)), ref_sorted=False
    )


def _same(x: Segment, y: Segment) -> bool:
    return (
        np.array_equal(x.urefs, y.urefs)
        and np.array_equal(x.off, y.off)
        and np.array_equal(x.ts, y.ts)
        and np.array_equal(x.vs.view(np.uint64), y.vs.view(np.uint64))
        and (x.mint, x.maxt) == (y.mint, y.maxt)
    )


@pytest.mark.parametrize(
    ("refs_a", "refs_b", "per_a", "per_b", "t0_b"),
    [
        ([1, 2, 3], [1, 2, 3], 4, 2, 1000),  # same series, uniform: side by side
        ([1, 2, 3], [1, 2, 3], 1, 1, 1000),
        ([1, 5, 9], [2, 5, 11, 12], 3, 2, 1000),  # different series: scattered
        ([1, 2, 3], [1, 2, 3], 4, 2, 15),  # overlapping times: sorted (b wins)
        ([1, 5, 9], [2, 5, 11], 3, 3, 0),
    ],
)
def test_merge_matches_sorting_merge(
    refs_a: list[int], refs_b: list[int], per_a: int, per_b: int, t0_b: int
) -> None:
    rng = np.random.default_rng(11)
    a = _segment(rng, np.array(refs_a, dtype=np.int64), 0, per_a)
    b = _segment(rng, np.array(refs_b, dtype=np.int64), t0_b, per_b)
    assert _same(merge_segments(a, b), _reference_merge(a, b))


def test_memory_bytes_counts_samples() -> None:
    head = Head(seal_threshold=100, pack_threshold=0)
    refs = _series(head, 10)
    before = head.memory_bytes
    app = head.appender()
    for c in range(100):
        app.append_refs(refs, np.full(10, c, dtype=np.int64), np.ones(10))
        app.commit()
    # Raw segments: 16 bytes a sample plus the CSR offsets.
    assert head.memory_bytes - before >= 16 * 1000
