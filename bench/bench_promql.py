"""PromQL query latency: Vigil, the real Prometheus and VictoriaMetrics on the same data.

The data set is bench/datagen.py's (10k series x 6 h at 15 s by default: counters,
gauges, histogram buckets). It is written once and loaded once per server into
WORKDIR, and reused by later runs (each load leaves a `.done` marker; delete
WORKDIR to start over): `vigil import`, `promtool tsdb create-blocks-from
openmetrics`, and VictoriaMetrics' /api/v1/import/prometheus (when the
`victoria-metrics` binary is installed). The servers then run side by side on
their copy, taking turns for every timed run (a slow spell of a shared machine
then hits all of them alike), and each dashboard-style query is timed through the
HTTP API as an instant query at the end of the data and as range queries over the
whole 6 h at 15 s and 60 s steps: one warm-up, then the median of --runs.

Usage: python bench/bench_promql.py WORKDIR [--series 10000] [--runs 5]
    [--only SUBSTRING ...] [--modes instant,range 15s]
Prints a markdown table of medians in ms; the ratio is Vigil / Prometheus
(lower is better). `series` is the number of series in Prometheus's answer,
a sanity check that every server answered the same question.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))

import peers
from datagen import write_openmetrics

HOURS = 6.0

QUERIES: list[tuple[str, str]] = [
    ("sum by job of rate", "sum by (job) (rate(http_requests_total[5m]))"),
    ("rate, 5 series", 'rate(http_requests_total{instance="host-0000:8080",code="200"}[5m])'),
    ("gauge, 5 series", 'process_memory_bytes{instance="host-0000:8080",area=~"pool[0-4]"}'),
    (
        "p99 of summed rates",
        "histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
    ),
    (
        "p90 by job",
        "histogram_quantile(0.9, sum by (job, le) (rate(http_request_duration_seconds_bucket[5m])))",
    ),
    ("topk of sum by", "topk(5, sum by (instance) (rate(http_requests_total[5m])))"),
    (
        "error ratio",
        'sum(rate(http_requests_total{code=~"5.."}[5m])) / sum(rate(http_requests_total[5m]))',
    ),
    (
        "regex matchers",
        'sum by (handler) (rate(http_requests_total{handler=~"/api/v1/item1.*",method!="GET"}[5m]))',
    ),
    ("all 10k series", 'count by (job) ({job=~".+"})'),
    ("avg_over_time 1h", "avg_over_time(process_memory_bytes[1h])"),
    ("max of avg_over_time 1h", "max by (job) (avg_over_time(process_memory_bytes[1h]))"),
    ("increase 1h by job", "sum by (job) (increase(http_requests_total[1h]))"),
]


# --- data and loading ---------------------------------------------------------------


def _step(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def ensure_data(work: Path, n: int) -> tuple[Path, dict[str, int]]:
    path, meta_path = work / f"data-{n}.om", work / f"data-{n}.json"
    if not meta_path.exists():
        _step(f"writing {n} series x {HOURS:g} h to {path}")
        samples, start, end = write_openmetrics(path, n, HOURS)
        meta_path.write_text(json.dumps({"samples": samples, "start_ms": start, "end_ms": end}))
    return path, json.loads(meta_path.read_text())


def _once(target: Path, load: Callable[[], None]) -> float | None:
    """Run `load` unless `target` was completed before; seconds taken, or None."""
    done = target / ".done"
    if done.exists():
        return None
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    t0 = time.monotonic()
    load()
    done.write_text("")
    return time.monotonic() - t0


def load_prometheus(data: Path, out: Path) -> None:
    _step(f"promtool backfill into {out}")
    subprocess.run(
        ["promtool", "tsdb", "create-blocks-from", "openmetrics", str(data), str(out / "data")],
        check=True,
        capture_output=True,
    )


def load_vigil(data: Path, out: Path) -> None:
    _step(f"vigil import into {out}")
    subprocess.run(
        [sys.executable, "-m", "vigil.cli", "import", str(data), "--data-dir", str(out / "data")],
        check=True,
        capture_output=True,
    )


def load_victoria(data: Path, out: Path, n_series: int) -> None:
    """Stream the file into a running VictoriaMetrics, timestamps rewritten to ms."""
    _step(f"VictoriaMetrics import into {out}")
    srv = peers.start_victoria(out)
    try:
        srv.wait_ready("/health")
        with httpx.Client(timeout=600) as client, open(data) as fh:
            buf: list[str] = []
            size = 0
            for line in fh:
                if line.startswith("#"):
                    continue
                key, value, ts = line.rsplit(" ", 2)
                row = f"{key} {value} {round(float(ts) * 1000)}\n"
                buf.append(row)
                size += len(row)
                if size > 16 << 20:
                    client.post(srv.url + "/api/v1/import/prometheus", content="".join(buf))
                    buf, size = [], 0
            if buf:
                client.post(srv.url + "/api/v1/import/prometheus", content="".join(buf))
            client.get(srv.url + "/internal/force_flush")
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                r = client.get(srv.url + "/api/v1/series/count").json()
                if r.get("data", [0])[0] >= n_series:
                    break
                time.sleep(1)
    finally:
        srv.stop()


# --- timing -------------------------------------------------------------------------


def _time_one(
    client: httpx.Client, url: str, path: str, params: dict[str, Any]
) -> tuple[float, int]:
    t0 = time.perf_counter()
    r = client.get(url + path, params=params)
    elapsed = time.perf_counter() - t0
    body = r.json()
    if body.get("status") != "success":
        raise RuntimeError(f"{url}{path} {params['query']}: {body.get('error', r.text[:300])}")
    return elapsed, len(body["data"]["result"])


def _wait_quiet(srv: peers.Server, limit_s: float = 180.0) -> float:
    """Wait until the server has finished its startup work (compacting the loaded
    blocks, building caches: Vigil and Prometheus both compact after a restart),
    i.e. until it uses under 5% of a CPU over two seconds; returns seconds waited.
    Timing during compaction would measure the compaction."""
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        before = srv.cpu_seconds()
        time.sleep(2.0)
        if srv.cpu_seconds() - before < 0.1:
            break
    return time.monotonic() - started


def time_servers(
    servers: list[peers.Server], runs: int, modes: list[tuple[str, dict[str, Any]]]
) -> dict[str, dict[tuple[str, str], tuple[float, int]]]:
    """server -> (query name, mode) -> (median seconds, series in the answer).

    All servers run at once and take turns: every run of a query asks each server
    once, one after the other, so a slow spell of a shared machine hits all of
    them alike instead of whichever server happened to be running then."""
    out: dict[str, dict[tuple[str, str], tuple[float, int]]] = {s.name: {} for s in servers}
    clients = {s.name: httpx.Client(timeout=600) for s in servers}
    try:
        for name, expr in QUERIES:
            for mode, extra in modes:
                path = "/api/v1/query" if mode == "instant" else "/api/v1/query_range"
                params = {"query": expr, **extra}
                times: dict[str, list[float]] = {s.name: [] for s in servers}
                counts: dict[str, int] = {}
                for srv in servers:
                    _time_one(clients[srv.name], srv.url, path, params)  # warm-up
                for _ in range(runs):
                    for srv in servers:
                        t, counts[srv.name] = _time_one(clients[srv.name], srv.url, path, params)
                        times[srv.name].append(t)
                line = []
                for srv in servers:
                    med = statistics.median(times[srv.name])
                    out[srv.name][(name, mode)] = (med, counts[srv.name])
                    line.append(f"{srv.name} {med * 1000:.1f}")
                _step(f"{mode:>10} {name}: " + ", ".join(line) + " ms")
    finally:
        for c in clients.values():
            c.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("workdir", type=Path, help="cache for the data set and each server's copy")
    ap.add_argument("--series", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=5, help="timed runs per query (median)")
    ap.add_argument("--skip-victoria", action="store_true")
    ap.add_argument(
        "--only",
        action="append",
        default=[],
        help="time only queries whose name or expression contains this (repeatable)",
    )
    ap.add_argument("--modes", default="", help="comma-separated subset of the timing modes")
    args = ap.parse_args()
    if args.only:
        QUERIES[:] = [(q, e) for q, e in QUERIES if any(o in q or o in e for o in args.only)]
    work: Path = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    n = args.series
    data, meta = ensure_data(work, n)

    servers: list[tuple[str, Path, Callable[[Path], peers.Server], str]] = []
    loads: dict[str, float] = {}
    vigil_dir = work / f"vigil-{n}"
    if (s := _once(vigil_dir, lambda: load_vigil(data, vigil_dir))) is not None:
        loads["vigil"] = s
    vigil_cfg = "vigil: {self_scrape: false, query_timeout: 10m}\n"
    servers.append(
        (
            "vigil",
            vigil_dir,
            lambda d: peers.start_vigil(d, vigil_cfg, data_dir=d / "data"),
            "/-/ready",
        )
    )
    if peers.have("prometheus") and peers.have("promtool"):
        prom_dir = work / f"prom-{n}"
        if (s := _once(prom_dir, lambda: load_prometheus(data, prom_dir))) is not None:
            loads["prometheus"] = s
        servers.append(
            (
                "prometheus",
                prom_dir,
                lambda d: peers.start_prometheus(
                    d,
                    "global: {}\n",
                    data_dir=d / "data",
                    extra_args=["--storage.tsdb.retention.time=30d", "--query.timeout=10m"],
                ),
                "/-/ready",
            )
        )
    if not args.skip_victoria and peers.have("victoria-metrics"):
        vm_dir = work / f"vm-{n}"
        if (s := _once(vm_dir, lambda: load_victoria(data, vm_dir, n))) is not None:
            loads["victoriametrics"] = s
        servers.append(("victoriametrics", vm_dir, lambda d: peers.start_victoria(d), "/health"))
    for name, secs in loads.items():
        _step(f"loaded {name} in {secs:.0f}s")

    end_s = meta["end_ms"] / 1000
    start_s = meta["start_ms"] / 1000
    modes: list[tuple[str, dict[str, Any]]] = [
        ("instant", {"time": end_s}),
        ("range 60s", {"start": start_s, "end": end_s, "step": 60}),
        ("range 15s", {"start": start_s, "end": end_s, "step": 15}),
    ]
    if args.modes:
        wanted = {m.strip() for m in args.modes.split(",")}
        modes = [m for m in modes if m[0] in wanted]
    running: list[peers.Server] = []
    try:
        for name, directory, start, ready in servers:
            srv = start(directory)
            running.append(srv)
            srv.wait_ready(ready, timeout=300)
            settled = _wait_quiet(srv)
            _step(
                f"{name} up (RSS {srv.rss_bytes() / 2**20:.0f} MiB; "
                f"startup work such as compaction done after {settled:.0f} s)"
            )
        results = time_servers(running, args.runs, modes)
    finally:
        for srv in running:
            srv.stop()

    names = list(results)
    print(
        f"\n## PromQL latency: {n:,} series x {HOURS:g} h ({meta['samples']:,} samples), "
        f"median of {args.runs} (ms)\n"
    )
    header = "| query | mode | series | " + " | ".join(names) + " | vigil/prometheus |"
    print(header)
    print("|---" * (len(names) + 4) + "|")
    for qname, expr in QUERIES:
        for mode, _ in modes:
            row = [f"{results[s][(qname, mode)][0] * 1000:.1f}" for s in names]
            series = results.get("prometheus", results["vigil"])[(qname, mode)][1]
            ratio = ""
            if "prometheus" in results:
                ratio = f"{results['vigil'][(qname, mode)][0] / results['prometheus'][(qname, mode)][0]:.2f}"
            print(f"| `{expr}` | {mode} | {series} | " + " | ".join(row) + f" | {ratio} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
