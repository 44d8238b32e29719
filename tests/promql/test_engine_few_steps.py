"""Few-step evaluation paths: count_le's per-query counting, window sums without
prefix sums, and staleness filtering of matrix selections, checked against the
many-step paths they stand in for."""

from __future__ import annotations

import numpy as np

from vigil.model.labels import Labels
from vigil.model.samples import STALE_NAN
from vigil.promql import eval_types, range_functions
from vigil.promql.engine import Engine
from vigil.storage.memory import MemoryStorage


def _flat(rng: np.random.Generator, lens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(lens) + 1, dtype=np.int64)
    np.cumsum(lens, out=offsets[1:])
    parts = [np.sort(rng.integers(0, 50, int(k))) for k in lens]
    ts = np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)
    return ts, offsets


def test_count_le_few_matches_searchsorted() -> None:
    rng = np.random.default_rng(7)
    for _ in range(300):
        lens = rng.integers(0, 6, int(rng.integers(1, 8)))
        if lens.sum() == 0:
            continue
        ts, offsets = _flat(rng, lens)
        q = rng.integers(-5, 55, int(rng.integers(1, 4))).astype(np.int64)
        got = eval_types.count_le(ts, offsets, q)
        want = np.array(
            [
                [np.searchsorted(ts[offsets[i] : offsets[i + 1]], x, side="right") + offsets[i]]
                for i in range(len(lens))
                for x in [q]
            ]
        ).reshape(len(lens), len(q))
        assert (got == want).all()


def test_window_sums_match_prefix_path() -> None:
    rng = np.random.default_rng(3)
    for _ in range(200):
        lens = rng.integers(0, 8, int(rng.integers(1, 7)))
        if lens.sum() == 0:
            continue
        ts, offsets = _flat(rng, lens)
        vs = rng.normal(0, 100, len(ts))
        vs[rng.random(len(ts)) < 0.1] = np.nan
        q = np.sort(rng.integers(0, 55, int(rng.integers(1, 4)))).astype(np.int64)
        hi = eval_types.count_le(ts, offsets, q)
        lo = eval_types.count_le(ts, offsets, q - 10)
        n = len(lens)
        m = eval_types.MatrixBlock(
            [Labels.EMPTY] * n, np.zeros(n, dtype=bool), ts, vs, offsets, lo, hi, 10, q - 10, q
        )
        got = range_functions._window_sums(m)
        for i in range(n):
            for j in range(len(q)):
                w = vs[lo[i, j] : hi[i, j]]
                assert np.isclose(got[i, j], w[np.isfinite(w)].sum(), rtol=1e-12, atol=1e-9)


def test_instant_sum_over_time_matches_range_query() -> None:
    s = MemoryStorage()
    app = s.appender()
    for k in range(5):
        lbls = Labels.from_dict({"__name__": "g", "k": str(k)})
        for i in range(200):
            if k == 2 and i == 150:
                app.append(lbls, i * 15_000, STALE_NAN)
                continue
            app.append(lbls, i * 15_000, 1e6 + k * 0.1 + i * 0.001)
    app.commit()
    eng = Engine(s)
    t = 199 * 15_000
    for q in ("sum_over_time(g[10m])", "avg_over_time(g[1h])", "count_over_time(g[1h])"):
        inst = {smp.labels: smp.v for smp in eng.instant_query(q, t).value}
        rng = eng.range_query(q, t - 60 * 15_000, t, 15_000).value
        assert len(inst) == 5
        for series in rng:
            assert np.isclose(inst[series.labels], series.values[-1], rtol=1e-13)
    counts = {
        smp.labels.get("k"): smp.v for smp in eng.instant_query("count_over_time(g[1h])", t).value
    }
    assert counts["2"] == counts["1"] - 1
