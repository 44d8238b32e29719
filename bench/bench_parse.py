"""Exposition parsing throughput: `vigil.scrape.exposition.parse` vs prometheus_client.

Builds a node_exporter-like body (3-6 labels per series, realistic values), then
times `parse()` cold (process series cache empty: first scrape of a target) and
warm (steady state: every series seen before, as on every later scrape), for
Prometheus text and OpenMetrics, next to prometheus_client's parsers on the same
bodies in the same run.

    python bench/bench_parse.py [--series 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable

from vigil.scrape import _series
from vigil.scrape.exposition import parse

FAMILIES = [
    ("node_cpu_seconds_total", "counter", ["cpu", "mode"]),
    ("node_network_receive_bytes_total", "counter", ["device"]),
    ("node_filesystem_avail_bytes", "gauge", ["device", "fstype", "mountpoint"]),
    ("node_disk_io_time_seconds_total", "counter", ["device"]),
    ("node_memory_MemAvailable_bytes", "gauge", []),
    ("http_requests_total", "counter", ["method", "code", "handler"]),
    ("process_resident_memory_bytes", "gauge", ["service"]),
]
WORDS = ["idle", "user", "system", "iowait", "eth0", "sda", "/var/lib", "GET", "POST", "200"]


def make_body(n_series: int, openmetrics: bool, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    out: list[str] = []
    per_family = n_series // len(FAMILIES) + 1
    written = 0
    for name, typ, labels in FAMILIES:
        family = name.removesuffix("_total") if openmetrics and typ == "counter" else name
        out.append(f"# HELP {family} Synthetic {family}.")
        out.append(f"# TYPE {family} {typ}")
        for i in range(per_family):
            if written == n_series:
                break
            pairs = [("instance", "host-1:9100"), ("job", "node")]
            pairs += [(ln, f"{rng.choice(WORDS)}{i % 97}") for ln in labels]
            pairs.append(("series", str(i)))
            lbl = ",".join(f'{k}="{v}"' for k, v in pairs[:6])
            if typ == "counter":
                value = f"{rng.randrange(10**9)}"
            else:
                value = f"{rng.random() * 1e9:.6e}" if i % 2 else f"{rng.random() * 100:.4f}"
            out.append(f"{name}{{{lbl}}} {value}")
            written += 1
    if openmetrics:
        out.append("# EOF")
    return ("\n".join(out) + "\n").encode()


def best_of(repeat: int, fn: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--series", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)

    from prometheus_client.openmetrics.parser import (
        text_string_to_metric_families as pc_om,
    )
    from prometheus_client.parser import text_string_to_metric_families as pc_text

    for fmt, ct, pc in (
        ("prometheus text", None, pc_text),
        ("openmetrics", "application/openmetrics-text; version=1.0.0", pc_om),
    ):
        body = make_body(args.series, ct is not None)
        n = len(parse(body, ct).keys)

        def cold(body: bytes = body, ct: str | None = ct) -> None:
            _series.PROM_SERIES.clear()
            _series.OM_SERIES.clear()
            parse(body, ct)

        t_cold = best_of(args.repeat, cold)
        parse(body, ct)
        t_warm = best_of(args.repeat, lambda body=body, ct=ct: parse(body, ct))
        text = body.decode()
        t_pc = best_of(1, lambda text=text, pc=pc: sum(len(f.samples) for f in pc(text)))
        print(f"{fmt}: {n} samples, {len(body) / 1e6:.1f} MB")
        print(f"  vigil parse, warm (series seen before): {n / t_warm:>12,.0f} samples/s")
        print(f"  vigil parse, cold (new series)        : {n / t_cold:>12,.0f} samples/s")
        print(f"  prometheus_client parser              : {n / t_pc:>12,.0f} samples/s")
        print(f"  ratio warm/prometheus_client: {t_pc / t_warm:.1f}x, cold: {t_pc / t_cold:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
