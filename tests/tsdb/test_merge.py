"""MergeQuerier: merging series across queriers, later querier wins on equal time."""

from __future__ import annotations

import numpy as np
import pytest

from vigil.model.labels import Labels
from vigil.model.matchers import Matcher, MatchType
from vigil.storage.memory import MemoryStorage
from vigil.tsdb.merge import MergeQuerier, merge_samples

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
