"""Append throughput and head query latency of the TSDB.

    python bench/bench_tsdb_append.py [--series 10000] [--commits 200]

For each WAL fsync policy: appends `--series` series x `--commits` commits (one
sample per series per commit, like a scrape) through `append_refs`, and prints
samples/s and process CPU per sample (all threads). Then times selecting 10 series and all series over the whole head.
Prints numbers only; no assertions.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from vigil.model.labels import Labels
from vigil.model.matchers import Matcher, MatchType
from vigil.tsdb.db import TSDB, TSDBOptions


def run(policy: str, nseries: int, commits: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        db = TSDB.open(Path(d), TSDBOptions(wal_fsync=policy, background=False))  # type: ignore[arg-type]
        app = db.appender()
        refs = np.array(
            [
                app.series_ref(
                    Labels.from_dict(
                        {"__name__": f"metric_{i % 100}", "instance": f"host-{i}", "job": "bench"}
                    )
                )
                for i in range(nseries)
            ],
            dtype=np.int64,
        )
        rng = np.random.default_rng(1)
        t0, c0 = time.perf_counter(), time.process_time()
        for c in range(commits):
            app.append_refs(refs, np.full(nseries, c * 15_000, dtype=np.int64), rng.random(nseries))
            app.commit()
        dt = time.perf_counter() - t0
        cpu = time.process_time() - c0
        n = nseries * commits
        print(
            f"append  fsync={policy:6s} {n:>10,d} samples in {dt:6.2f}s = {n / dt:>12,.0f} samples/s"
            f"  ({dt / commits * 1000:.2f} ms/commit, {cpu / n * 1e9:.0f} CPU-ns/sample)"
        )
        if policy == "never":
            maxt = commits * 15_000
            sel10 = [
                Matcher(MatchType.EQUAL, "__name__", "metric_7"),
                Matcher(
                    MatchType.REGEX, "instance", "host-(7|107|207|307|407|507|607|707|807|907)"
                ),
            ]
            sel_all = [Matcher(MatchType.EQUAL, "job", "bench")]
            for name, ms in (("10 series", sel10), (f"{nseries} series", sel_all)):
                best = float("inf")
                for _ in range(5):
                    t0 = time.perf_counter()
                    q = db.querier(0, maxt)
                    out = q.select(ms, 0, maxt)
                    q.close()
                    best = min(best, time.perf_counter() - t0)
                got = sum(len(s.timestamps) for s in out)
                print(
                    f"select  {name:>14s}: {len(out):>6d} series, {got:>10,d} samples, best of 5 {best * 1000:8.2f} ms"
                )
            t0 = time.perf_counter()
            db.close()
            t0 = time.perf_counter()
            db = TSDB.open(Path(d), TSDBOptions(background=False))
            print(f"replay  {n:,d} samples: {time.perf_counter() - t0:.2f}s")
        db.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--series", type=int, default=10_000)
    ap.add_argument("--commits", type=int, default=200)
    args = ap.parse_args()
    for policy in ("always", "batch", "never"):
        run(policy, args.series, args.commits)


if __name__ == "__main__":
    main()
