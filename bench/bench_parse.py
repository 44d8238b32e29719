"""Exposition parsing throughput: `vigil.scrape.exposition.parse` vs prometheus_client.

Builds a node_exporter-like body (3-6 labels per series, realistic values), then
times `parse()` cold (process series cache empty: first scrape of a target) and
warm (steady state: every series seen before, as on every later scrape), for
Prometheus text and OpenMetrics, next to prometheus_client's parsers on the same
bodies in the same run. Rates are per wall-clock second and, in brackets, per CPU
second of this process (steadier on a busy machine). `--file` also streams an
OpenMetrics file (e.g. from `bench/datagen.py`) through `iter_parse`, as
`vigil import` does.

    python bench/bench_parse.py [--series 100000] [--repeat 3] [--file data.om]
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable, Iterable
from typing import Any

from vigil.scrape import _series
from vigil.scrape.exposition import iter_parse, parse

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


def best_of(repeat: int, fn: Callable[[], object]) -> tuple[float, float]:
    """Best wall-clock and best CPU seconds of `repeat` calls."""
    wall = cpu = float("inf")
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall = min(wall, time.perf_counter() - t0)
        cpu = min(cpu, time.process_time() - c0)
    return wall, cpu


def rate(n: int, times: tuple[float, float]) -> str:
    return f"{n / times[0]:>12,.0f} samples/s  ({n / times[1]:,.0f}/CPU-s)"


def stream_file(path: str) -> int:
    n = 0
    with open(path, "rb") as fh:
        for part in iter_parse(fh, "application/openmetrics-text; version=1.0.0"):
            n += len(part)
    return n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--series", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--file", help="an OpenMetrics file to stream through iter_parse")
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

        def warm(body: bytes = body, ct: str | None = ct) -> None:
            parse(body, ct)

        def other(text: str = body.decode(), pc: Callable[[str], Iterable[Any]] = pc) -> None:
            sum(len(f.samples) for f in pc(text))

        t_cold = best_of(args.repeat, cold)
        warm()
        t_warm = best_of(args.repeat, warm)
        t_pc = best_of(1, other)
        print(f"{fmt}: {n} samples, {len(body) / 1e6:.1f} MB")
        print(f"  vigil parse, warm (series seen before): {rate(n, t_warm)}")
        print(f"  vigil parse, cold (new series)        : {rate(n, t_cold)}")
        print(f"  prometheus_client parser              : {rate(n, t_pc)}")
        print(
            f"  ratio warm/prometheus_client: {t_pc[0] / t_warm[0]:.1f}x, "
            f"cold: {t_pc[0] / t_cold[0]:.1f}x"
        )
    if args.file:
        counted: list[int] = []
        t_file = best_of(1, lambda: counted.append(stream_file(args.file)))
        print(f"openmetrics file {args.file}: {counted[0]} samples (iter_parse, cold)")
        print(f"  vigil iter_parse                      : {rate(counted[0], t_file)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
