"""Block format benchmark: bytes/sample, write and decode throughput, select latency.

Data: `bench/datagen.py`'s families (counters, gauges with noise, histogram
buckets), 10k series x 6 h at 15 s by default, timestamps jittered by up to 40 ms.

    python bench/bench_block.py [--series 10000] [--hours 6] [--interval 15]
    python bench/bench_block.py --import-file /tmp/data.om   # also time a backfill
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from datagen import series_specs, values_matrix

from vigil.model.labels import Labels
from vigil.model.matchers import Matcher, MatchType
from vigil.storage.interface import SeriesData
from vigil.tsdb.block import Block, write_block


def build(n_series: int, hours: float, interval_s: int) -> tuple[list[SeriesData], int, int]:
    rng = np.random.default_rng(42)
    n_points = int(hours * 3600 / interval_s)
    start = 1_700_000_000_000
    base = start + interval_s * 1000 * np.arange(n_points, dtype=np.int64)
    out: dict[Labels, SeriesData] = {}
    for fam in series_specs(n_series):
        vals = values_matrix(fam, n_points, rng)
        for row, labels in enumerate(fam.series):
            ts = base + rng.integers(0, 40, n_points)
            ls = Labels.from_dict({"__name__": fam.name, **labels})
            # datagen may repeat a label set; give a repeat a distinguishing label.
            if ls in out:
                ls = ls.set("replica", str(row))
            out[ls] = SeriesData(ls, ts, vals[row])
    return [out[k] for k in sorted(out)], start, int(base[-1]) + 40


def write_openmetrics(series: list[SeriesData], path: Path) -> None:
    """The same data as OpenMetrics text with timestamps (seconds, ms precision)."""
    with open(path, "w") as fh:
        last_family = ""
        for s in series:
            name = s.labels.metric_name
            if name != last_family:
                family = name.removesuffix("_total") if name.endswith("_total") else name
                kind = "counter" if name.endswith("_total") else "gauge"
                fh.write(f"# TYPE {family} {kind}\n")
                last_family = name
            inner = ",".join(f'{k}="{v}"' for k, v in s.labels if k != "__name__")
            key = f"{name}{{{inner}}}"
            fh.writelines(
                f"{key} {v:.17g} {t / 1000:.3f}\n"
                for t, v in zip(s.timestamps.tolist(), s.values.tolist(), strict=True)
            )
        fh.write("# EOF\n")


def time_import(series: list[SeriesData], path: Path) -> None:
    from vigil.tsdb.importer import import_exposition

    if not path.exists():
        t = time.perf_counter()
        write_openmetrics(series, path)
        print(f"import: wrote {path} in {time.perf_counter() - t:.1f} s")
    size = path.stat().st_size
    with tempfile.TemporaryDirectory() as d:
        rep = import_exposition(path, Path(d), progress=True)
    print(
        f"import: {rep.samples:,} samples, {rep.series} series, {len(rep.blocks)} blocks from "
        f"{size / 2**20:.0f} MiB in {rep.seconds:.1f} s ({rep.samples / rep.seconds / 1e6:.2f} "
        "M samples/s)"
    )


def best(fn, repeat: int = 5) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--series", type=int, default=10_000)
    ap.add_argument("--hours", type=float, default=6.0)
    ap.add_argument("--interval", type=int, default=15)
    ap.add_argument("--import-file", type=Path, help="OpenMetrics file to (create and) import")
    args = ap.parse_args(argv)

    t = time.perf_counter()
    series, mint, maxt = build(args.series, args.hours, args.interval)
    n = sum(s.timestamps.size for s in series)
    print(
        f"data: {len(series)} series, {n:,} samples (generated in {time.perf_counter() - t:.1f} s)"
    )

    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        path = write_block(Path(d), series, mint, maxt)
        wt = time.perf_counter() - t
        chunks = (path / "chunks").stat().st_size
        index = (path / "index").stat().st_size
        print(f"write: {wt:.2f} s ({n / wt / 1e6:.2f} M samples/s)")
        print(
            f"size: chunks {chunks / n:.3f} bytes/sample, index {index / 1024:.0f} KiB, "
            f"total {(chunks + index) / n:.3f} bytes/sample"
        )
        t = time.perf_counter()
        block = Block.open(path)
        print(f"open: {(time.perf_counter() - t) * 1000:.1f} ms ({block.meta.num_chunks} chunks)")
        q = block.querier(mint, maxt)
        everything = best(lambda: q.select([], mint, maxt), 3)
        print(f"select all: {everything:.3f} s ({n / everything / 1e6:.1f} M samples/s decoded)")
        names = sorted({s.labels.get("instance") for s in series if s.labels.get("instance")})
        one_inst = [
            Matcher(MatchType.EQUAL, "__name__", "process_memory_bytes"),
            Matcher(MatchType.EQUAL, "instance", names[len(names) // 2]),
        ]
        got = q.select(one_inst, mint, maxt)
        ten = [
            Matcher(MatchType.REGEX, "__name__", "http_requests_total"),
            Matcher(MatchType.EQUAL, "handler", "/api/v1/item3"),
            Matcher(MatchType.REGEX, "instance", "host-000[0-9]:8080"),
        ]
        got10 = q.select(ten, mint, maxt)
        lat = best(lambda: q.select(ten, mint, maxt), 20)
        print(f"select {len(got10)} series (regex+eq): {lat * 1000:.2f} ms")
        lat = best(lambda: q.select(one_inst, mint, maxt), 20)
        print(f"select {len(got)} series (eq, eq): {lat * 1000:.2f} ms")
        hour = (mint + maxt) // 2
        lat = best(lambda: q.select(ten, hour, hour + 3_600_000), 20)
        print(f"select {len(got10)} series over 1 h: {lat * 1000:.2f} ms")
        lat = best(lambda: q.label_values("instance"), 20)
        print(f"label_values(instance): {lat * 1000:.2f} ms")
        t = time.perf_counter()
        m = sum(s.timestamps.size for s in block.iter_series())
        it = time.perf_counter() - t
        print(f"iter_series (compaction read path): {it:.2f} s ({m / it / 1e6:.1f} M samples/s)")
        q.close()
        block.close()
    if args.import_file:
        time_import(series, args.import_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
