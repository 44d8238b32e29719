"""The head's memory-saving representations behave like the plain ones.

Packed (compressed) sample segments must read back exactly what raw segments hold,
through queries, out-of-order inserts, truncation and checkpoints; the index's
canonical label sets and array postings must select what sets would.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from vigil.model.labels import Labels
from vigil.model.matchers import Matcher, MatchType
from vigil.model.samples import STALE_NAN
from vigil.tsdb.head import Head
from vigil.tsdb.head_index import SeriesIndex
from vigil.tsdb.head_samples import PackedSegment, SampleStore, build_segment, pack_segment


def m(name: str, op: str, value: str) -> Matcher:
    return Matcher(MatchType(op), name, value)


def _dump(head: Head, mint: int = -(10**15), maxt: int = 10**15) -> list[tuple[Labels, list, list]]:
    out = []
    for s in head.querier(mint, maxt).select([m("__name__", "=~", ".+")], mint, maxt):
        out.append((s.labels, s.timestamps.tolist(), s.values.view(np.uint64).tolist()))
    return out


def _feed(heads: list[Head], rng: np.random.Generator, n_series: int, steps: int) -> None:
    refs = [
        [h.get_or_create(Labels.from_dict({"__name__": "x", "i": str(i)})) for i in range(n_series)]
        for h in heads
    ]
    for step in range(steps):
        ts = np.full(n_series, 1000 * step, dtype=np.int64)
        if step % 7 == 3:  # some out-of-order and duplicate samples too
            ts[::5] -= 1500
        vs = np.round(rng.normal(100, 10, size=n_series), 1)
        vs[step % n_series] = STALE_NAN
        for h, r in zip(heads, refs, strict=True):
            app = h.appender()
            app.append_refs(np.array(r, dtype=np.int64), ts, vs)
            app.commit()


@pytest.mark.parametrize("ooo", [0, 10_000])
def test_packed_head_reads_like_raw_head(ooo: int) -> None:
    raw = Head(seal_threshold=8, pack_threshold=0, ooo_window_ms=ooo)
    packed = Head(seal_threshold=8, pack_threshold=64, ooo_window_ms=ooo)
    _feed([raw, packed], np.random.default_rng(3), 13, 120)
    assert any(isinstance(s, PackedSegment) for s in packed.snapshot())
    assert packed.num_samples == raw.num_samples
    assert _dump(packed) == _dump(raw)
    assert _dump(packed, 20_000, 50_000) == _dump(raw, 20_000, 50_000)
    assert packed.memory_bytes < raw.memory_bytes
    for h in (raw, packed):
        h.truncate(60_500)
    assert _dump(packed) == _dump(raw)
    assert packed.num_samples == raw.num_samples


def test_pack_segment_round_trip_and_partial_take() -> None:
    rng = np.random.default_rng(5)
    r = np.repeat(np.arange(1, 51, dtype=np.int64), 37)
    t = np.tile(np.arange(37, dtype=np.int64) * 1000, 50)
    v = rng.normal(size=len(r))
    v[10] = math.nan
    seg = build_segment(r, t, v, ref_sorted=True)
    p = pack_segment(seg, chunk_samples=100)
    assert len(p.chunks) == math.ceil(len(r) / 100)
    assert np.array_equal(p.ts, seg.ts)
    assert np.array_equal(p.vs.view(np.uint64), seg.vs.view(np.uint64))
    src = np.array([5, 99, 100, 101, 1849, 700, 3], dtype=np.int64)
    ts, vs = p.take(src)
    assert np.array_equal(ts, seg.ts[src])
    assert np.array_equal(vs.view(np.uint64), seg.vs.view(np.uint64)[src])


def test_store_lookup_finds_packed_samples() -> None:
    store = SampleStore(seal_threshold=1, pack_threshold=4)
    for i in range(6):
        store.add(np.array([1, 2]), np.array([i, i]), np.array([float(i), -float(i)]))
    assert any(isinstance(s, PackedSegment) for s in store.snapshot())
    assert store.lookup(2, 1) == -1.0
    assert store.lookup(1, 5) == 5.0
    assert store.lookup(3, 1) is None


def test_index_shares_pairs_and_strings_across_series() -> None:
    idx = SeriesIndex()
    a = Labels.from_dict({"__name__": "up", "job": "j" + "ob1", "i": "1"})
    b = Labels.from_dict({"__name__": "up", "job": "jo" + "b1", "i": "2"})
    ra, _ = idx.get_or_create(a)
    rb, _ = idx.get_or_create(b)
    la, lb = idx.labels_of(ra), idx.labels_of(rb)
    assert la == a and lb == b
    assert la is not None and lb is not None
    assert la[2] is lb[2]  # the job pair is one object
    assert idx.get_or_create(a) == (ra, False)


def test_index_postings_select_and_remove() -> None:
    idx = SeriesIndex()
    refs = {}
    for i in range(40):
        lbl = Labels.from_dict(
            {"__name__": "m", "i": str(i), "mod": str(i % 4), "odd": "y" if i % 2 else ""}
        )
        refs[i] = idx.get_or_create(lbl)[0]
    assert idx.select([m("mod", "=", "1")]).tolist() == [refs[i] for i in range(1, 40, 4)]
    assert idx.select([m("odd", "=", "")]).tolist() == [refs[i] for i in range(0, 40, 2)]
    assert idx.select([m("mod", "=~", "1|2"), m("odd", "!=", "")]).tolist() == [
        refs[i] for i in range(40) if i % 4 == 1
    ]
    idx.remove([refs[1], refs[5], refs[2]])
    assert len(idx) == 37
    assert idx.labels_of(refs[1]) is None
    assert idx.select([m("mod", "=", "1")]).tolist() == [refs[i] for i in range(9, 40, 4)]
    assert idx.postings_stats()["mod"]["1"] == 8
    assert idx.all_refs().tolist() == sorted(r for i, r in refs.items() if i not in (1, 2, 5))


def test_index_restore_out_of_order_keeps_postings_sorted() -> None:
    idx = SeriesIndex()
    for ref in (9, 3, 7, 1):
        idx.restore(ref, Labels.from_dict({"__name__": "m", "r": str(ref), "k": "v"}))
    assert idx.select([m("k", "=", "v")]).tolist() == [1, 3, 7, 9]
    assert idx.next_ref == 10
    assert [r for r, _ in idx.items()] == [1, 3, 7, 9]
