"""Memory per live series: where Vigil's RSS goes when it scrapes N series.

Phase 1 (scrape): a separate process (bench/target_server.py) serves N series;
this process scrapes it with a real `ScrapeLoop` into a `TSDB` in a temporary
directory, once per simulated second (no sleeping: timestamps advance by 1 s per
scrape), and prints RSS after the scrapes.

Phase 2 (optional, --simulate-minutes M): keeps appending one sample per series per
simulated second straight to the TSDB (no HTTP, no parsing) with realistic values
(counters and histogram buckets grow by Poisson increments, gauges random-walk), to
show what the head holds after M minutes of 1 s scrapes, and prints RSS at a few
points along the way.

With --trace, tracemalloc runs during phase 1 and the top allocation sites (by
file:line) and the most numerous object types are printed.

Phase 0 (instead, --serve S): a real `vigil up` scrapes the target every second
for S seconds; its RSS is printed every 10 s (what bench_ingest.py measures).

Run: python bench/bench_memory.py [--series 100000] [--scrapes 60]
         [--simulate-minutes 120] [--trace] [--top 25]
     python bench/bench_memory.py --series 100000 --serve 60
"""

from __future__ import annotations

import argparse
import collections
import gc
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_scrape import _start_server  # noqa: E402

from vigil.config import ScrapeConfig  # noqa: E402
from vigil.model.labels import Labels  # noqa: E402
from vigil.scrape.http_client import make_client  # noqa: E402
from vigil.scrape.loop import LoopOptions, ScrapeLoop  # noqa: E402
from vigil.scrape.target import targets_from_group  # noqa: E402
from vigil.tsdb.db import TSDB, TSDBOptions  # noqa: E402

T0 = 1_700_000_000_000


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _malloc_trim() -> None:
    """Hand freed heap pages back to the OS so RSS shows live memory, not history."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


async def _scrape_phase(addr: str, db: TSDB, scrapes: int) -> ScrapeLoop:
    cfg = ScrapeConfig.model_validate(
        {"job_name": "bench", "scrape_interval": "1s", "scrape_timeout": "1s"}
    )
    target = targets_from_group(
        cfg, "0", [Labels.from_dict({"__address__": addr})], Labels.EMPTY
    ).active[0]
    async with make_client(cfg) as client:
        lp = ScrapeLoop(target, db, LoopOptions.from_config(cfg), client=client)
        for i in range(scrapes):
            out = await lp.scrape_once(T0 + i * 1000)
            if out.error:
                raise RuntimeError(out.error)
    return lp


def _top_allocations(snap: tracemalloc.Snapshot, top: int) -> None:
    stats = snap.statistics("lineno")
    total = sum(s.size for s in stats)
    print(f"\ntracemalloc: {total / 2**20:.1f} MiB traced; top {top} sites")
    for s in stats[:top]:
        fr = s.traceback[0]
        name = "/".join(Path(fr.filename).parts[-3:])
        print(f"  {s.size / 2**20:8.1f} MiB {s.count:>9} blocks  {name}:{fr.lineno}")


def _object_counts(top: int) -> None:
    counts: collections.Counter[str] = collections.Counter()
    for obj in gc.get_objects():
        counts[type(obj).__name__] += 1
    print(f"\ngc-tracked objects: {sum(counts.values()):,}; most numerous types")
    for name, n in counts.most_common(top):
        print(f"  {n:>10,}  {name}")


def _simulate(db: TSDB, refs: np.ndarray, minutes: int, start_ms: int, checkpoints: int) -> None:
    """Append one sample per ref per simulated second for `minutes`."""
    rng = np.random.default_rng(1)
    n = len(refs)
    kind = rng.integers(0, 3, size=n)  # 0 counter, 1 bucket, 2 gauge
    rates = rng.gamma(2.0, 2.0, size=n)
    cur = np.where(kind == 2, np.round(rng.uniform(1e8, 4e9, size=n)), 0.0)
    # A table of increments cycled over, so generating values costs little.
    table = [
        np.where(kind == 2, np.round(rng.normal(0, 1e6, size=n)), rng.poisson(rates)).astype(
            np.float64
        )
        for _ in range(61)
    ]
    steps = minutes * 60
    every = max(1, steps // checkpoints)
    t_start = time.perf_counter()
    for i in range(steps):
        cur = cur + table[i % len(table)]
        app = db.appender()
        app.append_refs(refs, np.full(n, start_ms + i * 1000, dtype=np.int64), cur)
        app.commit()
        if (i + 1) % every == 0 or i + 1 == steps:
            gc.collect()
            _malloc_trim()
            h = db.head
            print(
                f"  t={(i + 1) / 60:6.1f} min  rss={rss_mb():8.1f} MiB  "
                f"head samples={h.num_samples:>12,}  head bytes={h.memory_bytes / 2**20:8.1f} MiB"
                f"  ({time.perf_counter() - t_start:.0f} s)",
                flush=True,
            )


def _serve_phase(addr: str, seconds: int) -> None:
    """RSS of a real `vigil up` scraping the target every 1 s, sampled every 10 s."""
    import peers

    cfg = f"""
global: {{scrape_interval: 1s, scrape_timeout: 1s}}
scrape_configs:
  - job_name: bench
    static_configs: [{{targets: ['{addr}']}}]
vigil: {{self_scrape: false}}
"""
    with tempfile.TemporaryDirectory(prefix="vigil-mem-") as tmp:
        srv = peers.start_vigil(Path(tmp), cfg)
        try:
            srv.wait_ready()
            t0 = time.monotonic()
            while (elapsed := time.monotonic() - t0) < seconds:
                time.sleep(min(10.0, seconds - elapsed))
                print(
                    f"  vigil up: t={time.monotonic() - t0:5.0f} s  "
                    f"rss={srv.rss_bytes() / 2**20:7.1f} MiB",
                    flush=True,
                )
        finally:
            srv.stop()


def main(argv: list[str] | None = None) -> int:
    import asyncio

    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--series", type=int, default=100_000)
    ap.add_argument("--scrapes", type=int, default=60)
    ap.add_argument("--simulate-minutes", type=int, default=0)
    ap.add_argument("--checkpoints", type=int, default=8)
    ap.add_argument("--trace", action="store_true")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument(
        "--serve",
        type=int,
        default=0,
        metavar="SECONDS",
        help="instead: run `vigil up` scraping the target for SECONDS and print its RSS",
    )
    args = ap.parse_args(argv)
    if args.serve:
        proc, addr = _start_server(args.series)
        try:
            _serve_phase(addr, args.serve)
        finally:
            proc.terminate()
            proc.wait(10)
        return 0

    print(f"baseline rss={rss_mb():.1f} MiB (interpreter + imports)")
    proc, addr = _start_server(args.series)
    try:
        with tempfile.TemporaryDirectory(prefix="vigil-mem-") as tmp:
            db = TSDB.open(Path(tmp) / "tsdb", TSDBOptions(background=False, wal_fsync="never"))
            try:
                if args.trace:
                    tracemalloc.start(1)
                lp = asyncio.run(_scrape_phase(addr, db, args.scrapes))
                snap = tracemalloc.take_snapshot() if args.trace else None
                if args.trace:
                    tracemalloc.stop()
                gc.collect()
                before_trim = rss_mb()
                _malloc_trim()
                h = db.head
                print(
                    f"after {args.scrapes} scrapes of {args.series:,} series: "
                    f"rss={before_trim:.1f} MiB (after malloc_trim {rss_mb():.1f})  head series={h.num_series:,} "
                    f"samples={h.num_samples:,} bytes={h.memory_bytes / 2**20:.1f} MiB"
                )
                if snap is not None:
                    _top_allocations(snap, args.top)
                    _object_counts(15)
                if args.simulate_minutes:
                    c = lp._cache
                    refs = np.unique(c.refs[: len(c)][c.refs[: len(c)] >= 0])
                    print(f"\nsimulating {args.simulate_minutes} min of 1 s scrapes (no HTTP):")
                    _simulate(
                        db,
                        refs,
                        args.simulate_minutes,
                        T0 + args.scrapes * 1000,
                        args.checkpoints,
                    )
            finally:
                db.close()
    finally:
        proc.terminate()
        proc.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
