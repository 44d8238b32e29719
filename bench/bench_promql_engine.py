"""Benchmark the PromQL engine on 10,000 series x 6 h at a 15 s scrape interval.

Data: 5,000 counters (`http_requests_total`, 10 jobs), 4,000 histogram buckets
(`http_request_duration_seconds_bucket`, 10 `le` values) and 1,000 gauges
(`node_load`). It lives in a read-only numpy-backed Queryable defined here, because
`MemoryStorage` keeps one dict entry per sample and is too slow to load 14 M samples.

Run: python bench/bench_promql_engine.py [--repeat N]
Prints the wall time (ms) of each query as a range query over the 6 h at step 15 s.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import numpy as np

from vigil.model.labels import Labels
from vigil.model.matchers import Matcher, matches_all
from vigil.promql.engine import Engine
from vigil.storage.interface import SelectHints, SeriesData

SCRAPE_MS = 15_000
HOURS = 6
N_COUNTERS = 5_000
N_HIST = 400  # x 10 buckets
N_GAUGES = 1_000


class ArrayStore:
    """Immutable series held as numpy arrays; implements Queryable / Querier."""

    def __init__(self, series: list[SeriesData]) -> None:
        self._series = sorted(series, key=lambda s: s.labels)

    def querier(self, mint: int, maxt: int) -> ArrayStore:
        return self

    def select(
        self, matchers: Sequence[Matcher], mint: int, maxt: int, hints: SelectHints | None = None
    ) -> list[SeriesData]:
        out = []
        for s in self._series:
            if not matches_all(matchers, s.labels):
                continue
            a = int(np.searchsorted(s.timestamps, mint, side="left"))
            b = int(np.searchsorted(s.timestamps, maxt, side="right"))
            if b > a:
                out.append(SeriesData(s.labels, s.timestamps[a:b], s.values[a:b]))
        return out

    def label_names(
        self, matchers: Sequence[Matcher] = (), mint: int = 0, maxt: int = 0
    ) -> list[str]:
        return sorted({n for s in self._series for n in s.labels.names()})

    def label_values(
        self, name: str, matchers: Sequence[Matcher] = (), mint: int = 0, maxt: int = 0
    ) -> list[str]:
        return sorted({s.labels.get(name) for s in self._series} - {""})

    def series(self, matchers: Sequence[Matcher], mint: int, maxt: int) -> list[Labels]:
        return [s.labels for s in self.select(matchers, mint, maxt)]

    def close(self) -> None:
        pass


def build(end_ms: int) -> ArrayStore:
    rng = np.random.default_rng(42)
    n = end_ms // SCRAPE_MS + 1
    base_ts = np.arange(n, dtype=np.int64) * SCRAPE_MS
    series: list[SeriesData] = []
    for i in range(N_COUNTERS):
        lbls = Labels.from_dict(
            {
                "__name__": "http_requests_total",
                "job": f"job{i % 10}",
                "instance": f"i{i}",
                "code": "200",
            }
        )
        jitter = rng.integers(0, 50, n)  # scrape jitter, like real targets
        incs = rng.poisson(5.0, n).astype(np.float64)
        vals = np.cumsum(incs)
        if i % 50 == 0:  # a few restarts
            vals[n // 2 :] -= vals[n // 2]
        series.append(SeriesData(lbls, base_ts + jitter, vals))
    les = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf"]
    for h in range(N_HIST):
        incs = rng.poisson(10.0, (len(les), n)).astype(np.float64)
        cum = np.cumsum(np.cumsum(incs, axis=0), axis=1)
        for k, le in enumerate(les):
            lbls = Labels.from_dict(
                {
                    "__name__": "http_request_duration_seconds_bucket",
                    "job": f"job{h % 10}",
                    "instance": f"h{h}",
                    "le": le,
                }
            )
            series.append(SeriesData(lbls, base_ts.copy(), cum[k]))
    for g in range(N_GAUGES):
        lbls = Labels.from_dict(
            {"__name__": "node_load", "job": f"job{g % 10}", "instance": f"g{g}"}
        )
        series.append(SeriesData(lbls, base_ts.copy(), rng.normal(1.0, 0.3, n)))
    return ArrayStore(series)


QUERIES = [
    "sum by (job) (rate(http_requests_total[5m]))",
    "rate(http_requests_total[5m])",
    "histogram_quantile(0.99, sum by (job, le) (rate(http_request_duration_seconds_bucket[5m])))",
    "avg_over_time(node_load[10m])",
    "max_over_time(node_load[10m])",
    "topk(5, node_load)",
    "node_load > 1.5",
    "sum by (job) (rate(http_requests_total[5m])) / on(job) group_left count by (job) (node_load)",
    "quantile_over_time(0.9, node_load[5m])",
    "stddev by (job) (node_load)",
    "max_over_time(rate(http_requests_total[5m])[30m:1m])",
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    end = HOURS * 3600 * 1000
    t0 = time.perf_counter()
    store = build(end)
    print(f"built {len(store._series)} series in {time.perf_counter() - t0:.1f}s")
    eng = Engine(store)
    try:
        from vigil.promql.parser import parse_expr  # type: ignore[attr-defined]
    except ImportError:
        parse_expr = None
    for q in QUERIES:
        if parse_expr is not None:
            expr = parse_expr(q, experimental=True)
        elif q == QUERIES[0]:
            expr = _main_query_ast()
        else:
            print(f"{'-':>9}     (no parser)   {q}")
            continue
        best = float("inf")
        n_out = 0
        for _ in range(args.repeat):
            t = time.perf_counter()
            res = eng.range_query(expr, 0, end, SCRAPE_MS)
            best = min(best, time.perf_counter() - t)
            n_out = len(res.value)  # type: ignore[arg-type]
        print(f"{best * 1000:9.1f} ms  {n_out:6d} series  {q}")


def _main_query_ast():
    from vigil.model.matchers import MatchType
    from vigil.promql.parser import ast

    sel = ast.VectorSelector(
        "http_requests_total", (Matcher(MatchType.EQUAL, "__name__", "http_requests_total"),)
    )
    rate = ast.Call("rate", (ast.MatrixSelector(sel, 300_000),))
    return ast.AggregateExpr("sum", rate, grouping=("job",))


if __name__ == "__main__":
    main()
