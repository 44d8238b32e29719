"""Synthetic, realistic metric data shared by the benchmarks.

`series_specs(n)` describes n series (about 31% histogram buckets, the rest counters
and gauges with jitter and noise), `write_openmetrics(path, ...)` writes them with
timestamps in OpenMetrics text (what `promtool tsdb create-blocks-from openmetrics`
and `vigil import` both read), and `exposition(...)` renders one scrape's body.
Deterministic for a given seed, so Vigil and its peers get identical data.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

LE_BOUNDS = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf"]
JOBS = ["api", "worker", "feature-store", "payments", "gateway"]
METHODS = ["GET", "POST", "PUT", "DELETE"]
CODES = ["200", "201", "400", "404", "500"]


@dataclass(frozen=True)
class Family:
    name: str
    type: str  # counter | gauge
    help: str
    series: list[dict[str, str]]


def series_specs(n_series: int) -> list[Family]:
    """Families adding up to exactly `n_series` series."""
    n_hist = int(n_series * 0.31) // len(LE_BOUNDS) * len(LE_BOUNDS)
    n_counter = (n_series - n_hist) // 2
    n_gauge = n_series - n_hist - n_counter
    counters, gauges, buckets = [], [], []
    i = 0
    while len(counters) < n_counter:
        counters.append(
            {
                "job": JOBS[i % len(JOBS)],
                "instance": f"host-{i // 40:04d}:8080",
                "method": METHODS[i % 4],
                "code": CODES[(i // 4) % 5],
                "handler": f"/api/v1/item{i % 40}",
            }
        )
        i += 1
    for j in range(n_gauge):
        gauges.append(
            {
                "job": JOBS[j % len(JOBS)],
                "instance": f"host-{j // 20:04d}:8080",
                "area": f"pool{j % 20}",
            }
        )
    for h in range(n_hist // len(LE_BOUNDS)):
        for le in LE_BOUNDS:
            buckets.append(
                {
                    "job": JOBS[h % len(JOBS)],
                    "instance": f"host-{h // 8:04d}:8080",
                    "handler": f"/h{h % 8}",
                    "le": le,
                }
            )
    return [
        Family("http_requests_total", "counter", "Requests served.", counters),
        Family("process_memory_bytes", "gauge", "Memory in use.", gauges),
        Family("http_request_duration_seconds_bucket", "gauge", "Latency buckets.", buckets),
    ]


def values_matrix(fam: Family, n_points: int, rng: np.random.Generator) -> np.ndarray:
    """float64 [series x points] of plausible values for a family."""
    n = len(fam.series)
    if fam.name.endswith("_total"):
        rates = rng.gamma(2.0, 2.0, size=(n, 1))
        incs = rng.poisson(rates * 15, size=(n, n_points)).astype(np.float64)
        return np.cumsum(incs, axis=1)
    if fam.name.endswith("_bucket"):
        k = len(LE_BOUNDS)
        per_hist = rng.poisson(40, size=(n // k, n_points)).astype(np.float64)
        frac = np.cumsum(rng.dirichlet(np.ones(k), size=n // k), axis=1)
        frac[:, -1] = 1.0
        out = np.cumsum(per_hist, axis=1)[:, None, :] * frac[:, :, None]
        return np.floor(out).reshape(n, n_points)
    base = rng.uniform(1e8, 4e9, size=(n, 1))
    walk = np.cumsum(rng.normal(0, 1e6, size=(n, n_points)), axis=1)
    return np.round(base + walk)


def _labels_text(name: str, labels: dict[str, str]) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return f"{name}{{{inner}}}"


def write_openmetrics(
    path: Path,
    n_series: int,
    hours: float,
    interval_s: int = 15,
    end_s: int | None = None,
    seed: int = 42,
) -> tuple[int, int, int]:
    """Write the data set; returns (samples, start_ms, end_ms). Timestamps jitter by up to 40 ms."""
    rng = np.random.default_rng(seed)
    n_points = int(hours * 3600 / interval_s)
    end = end_s if end_s is not None else (int(__import__("time").time()) // 3600) * 3600
    start = end - n_points * interval_s
    ts_base = (start + interval_s * np.arange(1, n_points + 1)) * 1000
    samples = 0
    with open(path, "w") as fh:
        for fam in series_specs(n_series):
            vals = values_matrix(fam, n_points, rng)
            # OpenMetrics names a counter family without its `_total` suffix.
            family = fam.name.removesuffix("_total") if fam.type == "counter" else fam.name
            fh.write(f"# HELP {family} {fam.help}\n# TYPE {family} {fam.type}\n")
            for row, labels in enumerate(fam.series):
                key = _labels_text(fam.name, labels)
                jitter = rng.integers(0, 40, size=n_points)
                ts = (ts_base + jitter) / 1000.0
                lines = [
                    f"{key} {v:.17g} {t:.3f}\n"
                    for v, t in zip(vals[row].tolist(), ts.tolist(), strict=True)
                ]
                fh.writelines(lines)
                samples += n_points
        fh.write("# EOF\n")
    return samples, int(ts_base[0]), int(ts_base[-1] + 40)


def exposition(n_series: int, step: int, seed: int = 7) -> bytes:
    """One scrape body in Prometheus text format; values move with `step`."""
    lines = []
    for fam in series_specs(n_series):
        lines.append(f"# HELP {fam.name} {fam.help}\n# TYPE {fam.name} {fam.type}\n")
        for i, labels in enumerate(fam.series):
            lines.append(
                f"{_labels_text(fam.name, labels)} {(i * 7 + step * (i % 13 + 1)) % 100000}\n"
            )
    return "".join(lines).encode()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("out", type=Path)
    ap.add_argument("--series", type=int, default=10_000)
    ap.add_argument("--hours", type=float, default=6.0)
    ap.add_argument("--interval", type=int, default=15)
    args = ap.parse_args(argv)
    n, a, b = write_openmetrics(args.out, args.series, args.hours, args.interval)
    print(f"wrote {n} samples, {a}..{b} ms, to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
