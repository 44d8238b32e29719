"""MergeQuerier: merging series across queriers, later querier wins on equal time."""

from __future__ import annotations

import numpy as np
import pytest

from vigil.model.labels import Labels
from vigil.model.matchers import Matcher, MatchType
from vigil.storage.interface import FlatSeries, SeriesData, SeriesList
from vigil.storage.memory import MemoryStorage
from vigil.tsdb.merge import MergeQuerier, merge_flat, merge_samples, merge_series_streams

A = Labels.from_dict({"__name__": "m", "x": "a"})
B = Labels.from_dict({"__name__": "m", "x": "b"})
C = Labels.from_dict({"__name__": "n", "y": "c"})


def store(rows: list[tuple[Labels, int, float]]) -> MemoryStorage:
    mem = MemoryStorage()
    app = mem.appender()
    for ls, t, v in rows:
        app.append(ls, t, v)
    app.commit()
    return mem


class Recorder:
    """A real MemoryStorage querier that records being closed."""

    def __init__(self, mem: MemoryStorage, fail: bool = False) -> None:
        self.q = mem.querier(0, 100)
        self.closed = False
        self.fail = fail

    def __getattr__(self, name: str) -> object:
        return getattr(self.q, name)

    def close(self) -> None:
        self.closed = True
        if self.fail:
            raise OSError("close failed")


def test_merge_overlapping_later_wins() -> None:
    old = store([(A, 1, 1.0), (A, 2, 2.0), (A, 5, 5.0), (B, 1, 10.0)])
    new = store([(A, 2, 20.0), (A, 3, 30.0), (C, 4, 4.0)])
    mq = MergeQuerier([old.querier(0, 10), new.querier(0, 10)])
    got = mq.select([], 0, 10)
    assert [s.labels for s in got] == [A, B, C]
    assert got[0].timestamps.tolist() == [1, 2, 3, 5]
    assert got[0].values.tolist() == [1.0, 20.0, 30.0, 5.0]
    assert got[1].values.tolist() == [10.0]
    got = mq.select([Matcher(MatchType.EQUAL, "x", "a")], 2, 3)
    assert got[0].timestamps.tolist() == [2, 3] and got[0].values.tolist() == [20.0, 30.0]
    assert mq.series([], 0, 10) == [A, B, C]
    assert mq.label_names() == ["__name__", "x", "y"]
    assert mq.label_values("x") == ["a", "b"]
    assert mq.label_values("__name__", [Matcher(MatchType.EQUAL, "y", "c")]) == ["n"]
    mq.close()


def test_single_source_passes_through() -> None:
    only = store([(A, 1, 1.0), (B, 2, 2.0)])
    q1 = only.querier(0, 10)
    mq = MergeQuerier([store([]).querier(0, 10), q1])
    got = mq.select([], 0, 10)
    assert [s.labels for s in got] == [A, B]
    assert MergeQuerier([]).select([], 0, 10) == []


def test_merge_samples_rules() -> None:
    t = np.array
    ts, vs = merge_samples([(t([1, 2]), t([1.0, 2.0])), (t([3, 4]), t([3.0, 4.0]))])
    assert ts.tolist() == [1, 2, 3, 4] and vs.tolist() == [1.0, 2.0, 3.0, 4.0]
    ts, vs = merge_samples(
        [(t([1, 3, 5]), t([1.0, 3.0, 5.0])), (t([3]), t([30.0])), (t([3, 5]), t([300.0, 500.0]))]
    )
    assert ts.tolist() == [1, 3, 5] and vs.tolist() == [1.0, 300.0, 500.0]
    ts, vs = merge_samples([])
    assert ts.size == 0 and vs.dtype == np.float64


def test_close_closes_all_and_reports_first_error() -> None:
    mem = store([(A, 1, 1.0)])
    r1, r2, r3 = Recorder(mem), Recorder(mem, fail=True), Recorder(mem)
    mq = MergeQuerier([r1, r2, r3])
    with pytest.raises(OSError, match="close failed"):
        mq.close()
    assert r1.closed and r2.closed and r3.closed


class Fixed:
    """A querier answering every select with the same series (the merge's input)."""

    def __init__(self, series: list[SeriesData]) -> None:
        self.series_list = series

    def select(self, *args: object, **kwargs: object) -> list[SeriesData]:
        return self.series_list

    def close(self) -> None:
        pass


def _source(rng: np.random.Generator, names: list[Labels], t0: int, flat: bool) -> list[SeriesData]:
    out = []
    for ls in names:
        if rng.random() < 0.3:
            continue
        n = int(rng.integers(0, 6))
        ts = np.sort(rng.choice(np.arange(t0, t0 + 40), size=n, replace=False)).astype(np.int64)
        out.append(SeriesData(ls, ts, rng.random(n)))
    if not flat or not out:
        return out
    offsets = np.zeros(len(out) + 1, dtype=np.int64)
    np.cumsum([s.timestamps.size for s in out], out=offsets[1:])
    ts_all = np.concatenate([s.timestamps for s in out])
    vs_all = np.concatenate([s.values for s in out])
    b = offsets.tolist()
    rows = [
        SeriesData(s.labels, ts_all[b[i] : b[i + 1]], vs_all[b[i] : b[i + 1]])
        for i, s in enumerate(out)
    ]
    return SeriesList(rows, ts_all, vs_all, offsets)


class FixedFlat(Fixed):
    """A querier that also answers as a block does: `select_flat`, no SeriesData."""

    def select_flat(self, *args: object, **kwargs: object) -> FlatSeries:
        rows = self.series_list
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum([s.timestamps.size for s in rows], out=offsets[1:])
        ts = np.concatenate([s.timestamps for s in rows]) if rows else np.zeros(0, np.int64)
        vs = np.concatenate([s.values for s in rows]) if rows else np.zeros(0)
        return FlatSeries([s.labels for s in rows], ts, vs, offsets)


@pytest.mark.parametrize("overlap", [False, True])
def test_flat_merge_agrees_with_the_per_series_merge(overlap: bool) -> None:
    """Random sources (some series missing from some, some empty, flat or not): the
    whole-array merge answers exactly as the per-series merge, and declines when
    sources overlap in time."""
    rng = np.random.default_rng(7 + overlap)
    names = sorted(Labels.from_dict({"__name__": "m", "i": str(i)}) for i in range(40))
    declined = 0
    for trial in range(60):
        nsrc = int(rng.integers(2, 5))
        sources = [
            _source(rng, names, t0=(k * 20 if overlap else k * 100), flat=bool(rng.random() < 0.5))
            for k in range(nsrc)
        ]
        sources = [s for s in sources if s]
        if len(sources) < 2:
            continue
        want = list(merge_series_streams(sources))
        kinds = [FixedFlat if rng.random() < 0.5 else Fixed for _ in sources]
        got = MergeQuerier([kind(s) for kind, s in zip(kinds, sources, strict=True)]).select(
            [], 0, 10**6
        )
        fast = merge_flat(sources)
        if fast is None:
            declined += 1
        else:
            assert isinstance(got, SeriesList)
            assert got.offsets[-1] == got.flat_timestamps.size
        assert [s.labels for s in got] == [s.labels for s in want], trial
        for g, w in zip(got, want, strict=True):
            assert g.timestamps.tolist() == w.timestamps.tolist(), (trial, g.labels)
            assert g.values.tolist() == w.values.tolist(), (trial, g.labels)
    assert (declined > 0) == overlap
