"""Ingestion benchmarks, Vigil side by side with the real Prometheus in one run.

1. scrape: one target exposing N series scraped every second for S seconds;
   CPU-seconds per 1M samples ingested and RSS at the end (N live series).
2. disk: the same 10k-series x 6 h data set imported into both
   (`promtool tsdb create-blocks-from openmetrics` / `vigil import`); bytes per
   sample on disk, and import time.

Usage: python bench/bench_ingest.py [--series 100000] [--seconds 60] [--skip-disk]
Prints a table; ratios are Vigil / Prometheus (lower is better for all of them).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import peers
from datagen import write_openmetrics


def scrape_bench(work: Path, n_series: int, seconds: int) -> dict[str, dict[str, float]]:
    port = peers.free_port()
    target = subprocess.Popen(
        [sys.executable, str(Path(__file__).parent / "target_server.py"), str(port), str(n_series)]
    )
    time.sleep(3 + n_series / 50_000)
    scrape_cfg = f"""
global: {{scrape_interval: 1s, scrape_timeout: 1s}}
scrape_configs:
  - job_name: bench
    static_configs: [{{targets: ['127.0.0.1:{port}']}}]
"""
    results: dict[str, dict[str, float]] = {}
    try:
        starters = []
        if peers.have("prometheus"):
            starters.append(("prometheus", lambda d: peers.start_prometheus(d, scrape_cfg)))
        starters.append(
            ("vigil", lambda d: peers.start_vigil(d, scrape_cfg + "vigil: {self_scrape: false}\n"))
        )
        for name, start in starters:
            d = work / name
            d.mkdir()
            srv = start(d)
            try:
                srv.wait_ready()
                time.sleep(5)  # let the first scrapes create the series
                cpu0, t0 = srv.cpu_seconds(), time.monotonic()
                time.sleep(seconds)
                cpu = srv.cpu_seconds() - cpu0
                elapsed = time.monotonic() - t0
                samples = n_series * elapsed  # one scrape per second
                results[name] = {
                    "cpu_s_per_1M": cpu / samples * 1e6,
                    "rss_mb": srv.rss_bytes() / 2**20,
                }
            finally:
                srv.stop()
    finally:
        target.kill()
    return results


def disk_bench(work: Path) -> dict[str, dict[str, float]]:
    data = work / "data.om"
    n, _, _ = write_openmetrics(data, 10_000, 6.0)
    results: dict[str, dict[str, float]] = {}
    if peers.have("promtool"):
        out = work / "prom-blocks"
        t0 = time.monotonic()
        subprocess.run(
            ["promtool", "tsdb", "create-blocks-from", "openmetrics", str(data), str(out)],
            check=True,
            capture_output=True,
        )
        results["prometheus"] = {
            "import_s": time.monotonic() - t0,
            "bytes_per_sample": peers.dir_size(out) / n,
        }
    out = work / "vigil-blocks"
    t0 = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "vigil.cli", "import", str(data), "--data-dir", str(out)], check=True
    )
    results["vigil"] = {
        "import_s": time.monotonic() - t0,
        "bytes_per_sample": peers.dir_size(out) / n,
    }
    print(f"(data set: {n:,} samples, {data.stat().st_size / 2**20:.0f} MiB of text)")
    return results


def print_table(title: str, results: dict[str, dict[str, float]]) -> None:
    print(f"\n## {title}")
    keys = sorted({k for r in results.values() for k in r})
    print("| measure | " + " | ".join(results) + " | vigil/prometheus |")
    print("|---" * (len(results) + 2) + "|")
    for k in keys:
        row = [f"{results[s].get(k, float('nan')):.3f}" for s in results]
        ratio = ""
        if "prometheus" in results and "vigil" in results and results["prometheus"].get(k):
            ratio = f"{results['vigil'][k] / results['prometheus'][k]:.2f}"
        print(f"| {k} | " + " | ".join(row) + f" | {ratio} |")


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--series", type=int, default=100_000)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--skip-disk", action="store_true")
    ap.add_argument("--skip-scrape", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="vigil-bench-") as tmp:
        work = Path(tmp)
        if not args.skip_scrape:
            print_table(
                f"scrape ingest: {args.series:,} series every 1 s for {args.seconds} s",
                scrape_bench(work, args.series, args.seconds),
            )
        if not args.skip_disk:
            print_table("disk: 10k series x 6 h, imported", disk_bench(work))
    return 0


if __name__ == "__main__":
    sys.exit(main())
