"""Rule evaluation benchmark: 500 rules over 10k series, Vigil beside the real Prometheus.

The data: a 1 h slice of the shared 10k-series data set (bench/datagen.py), ending
now, imported into a data dir for each server (`vigil.tsdb.importer` /
`promtool tsdb create-blocks-from openmetrics`). The rules: 50 groups of 10, a
realistic mix of recording rules (`sum by (job) (rate(x[5m]))`, `avg`, `max_over_time`,
histogram quantiles, regex selectors) and alerting rules with `for` over
thresholds, ratios, latency quantiles and earlier recording rules, with templated
annotations.

Vigil: the groups are built by `RuleManager` and evaluated in-process with
`Group.evaluate(t)` at fixed times 15 s apart (one warm-up cycle, then
`--cycles`), at the same distance after the data's last sample as Prometheus
evaluated; a full cycle is every group one after the other. Prometheus: the same
500 rules in the same order as one group (it runs groups concurrently; on a small
machine their durations would include waiting for each other, while one group's
rules run one after another, as Vigil's cycle does), `evaluation_interval` 15 s;
after `--prom-wait` seconds the group's and rules' evaluation times are read from
`/api/v1/rules` (the group's is `prometheus_rule_group_last_duration_seconds`)
once per cycle, and its CPU seconds per cycle from /proc.

Usage: python bench/bench_rules.py [--rules 500] [--series 10000] [--cycles 5]
       [--skip-prometheus]
Prints a table; ratios are Vigil / Prometheus (lower is better).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

import peers
from datagen import JOBS, write_openmetrics

RULES_PER_GROUP = 10
INTERVAL_S = 15
OPENMETRICS = "application/openmetrics-text; version=1.0.0"


def _q(s: str) -> str:
    """A YAML double-quoted scalar."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def rule_yaml(i: int) -> str:
    """Rule number `i`: 60% recording, 40% alerting, over every family of the data."""
    job = JOBS[i % len(JOBS)]
    k = i // 20
    kind = i % 20
    if kind in (0, 1, 2):
        return (
            f"      - record: job:http_requests:rate5m_{i}\n"
            f"        expr: sum by (job) (rate(http_requests_total{{job={_q(job)}}}[5m]))\n"
        )
    if kind in (3, 4):
        code = ("2", "4", "5")[k % 3]
        return (
            f"      - record: job_handler:http_requests:rate5m_{i}\n"
            "        expr: 'sum by (job, handler) "
            f'(rate(http_requests_total{{code=~"{code}.."}}[5m]))\'\n'
        )
    if kind in (5, 6):
        q = (0.5, 0.9, 0.99)[k % 3]
        return (
            f"      - record: job:http_request_duration_seconds:p{int(q * 100)}_{i}\n"
            f"        expr: histogram_quantile({q}, sum by (job, le) "
            f"(rate(http_request_duration_seconds_bucket{{job={_q(job)}}}[5m])))\n"
        )
    if kind in (7, 8):
        return (
            f"      - record: job:process_memory_bytes:avg_{i}\n"
            f"        expr: avg by (job) (process_memory_bytes{{area={_q(f'pool{k % 20}')}}})\n"
        )
    if kind == 9:
        return (
            f"      - record: instance:process_memory_bytes:max10m_{i}\n"
            "        expr: max_over_time(process_memory_bytes"
            f"{{job={_q(job)}, area=~{_q(f'pool{k % 10}.*')}}}[10m])\n"
        )
    if kind in (10, 11):
        items = "|".join(str((k + d) % 40) for d in range(3))
        return (
            f"      - record: instance:http_requests:rate5m_{i}\n"
            "        expr: 'sum by (instance) (rate(http_requests_total"
            f'{{handler=~"/api/v1/item({items})", method!="DELETE"}}[5m]))\'\n'
        )
    if kind == 12:
        return (
            f"      - alert: HighErrorRatio{i}\n"
            "        expr: 'sum by (job, instance) (rate(http_requests_total"
            f'{{job="{job}", code=~"5.."}}[5m])) / sum by (job, instance) '
            f'(rate(http_requests_total{{job="{job}"}}[5m])) > 0.2\'\n'
            "        for: 5m\n"
            "        labels: {severity: page}\n"
            "        annotations:\n"
            "          summary: '{{ $labels.instance }} errors at {{ $value | humanizePercentage }}'\n"
        )
    if kind in (13, 14):
        threshold = 3.4e9 + (k % 5) * 1e8  # gauges are 0.1-4 GB: ~10% fire
        return (
            f"      - alert: MemoryHigh{i}\n"
            f"        expr: process_memory_bytes{{job={_q(job)}}} > {threshold:g}\n"
            "        for: 10m\n"
            "        labels: {severity: warning}\n"
            "        annotations:\n"
            "          summary: '{{ $labels.instance }} uses {{ $value | humanize1024 }}B'\n"
        )
    if kind in (15, 16):
        return (
            f"      - alert: SlowHandler{i}\n"
            "        expr: histogram_quantile(0.9, sum by (job, handler, le) "
            f"(rate(http_request_duration_seconds_bucket{{handler={_q(f'/h{k % 8}')}}}[5m]))) "
            "> 0.3\n"
            "        for: 2m\n"
            "        labels: {severity: ticket}\n"
            "        annotations:\n"
            "          summary: '{{ $labels.job }}{{ $labels.handler }} p90 {{ $value }}s'\n"
        )
    if kind in (17, 18):
        src = i - kind  # the kind-0 recording rule of this block of 20
        return (
            f"      - alert: TrafficHigh{i}\n"
            f"        expr: job:http_requests:rate5m_{src} > {50 + k}\n"
            "        for: 1m\n"
            "        labels: {severity: info}\n"
            "        annotations:\n"
            "          summary: '{{ $labels.job }} serves {{ $value | humanize }} req/s'\n"
        )
    return (
        f"      - alert: InstanceQuiet{i}\n"
        "        expr: sum by (instance) (rate(http_requests_total"
        f"{{job={_q(job)}, method=~{_q('GET|POST')}}}[5m])) < 1\n"
        "        for: 15m\n"
        "        labels: {severity: ticket}\n"
    )


def rules_file(n_rules: int, per_group: int = RULES_PER_GROUP) -> str:
    lines = ["groups:\n"]
    for i in range(n_rules):
        if i % per_group == 0:
            lines.append(f"  - name: bench_{i // per_group:03d}\n    rules:\n")
        lines.append(rule_yaml(i))
    return "".join(lines)


def pct(xs: list[float], p: float) -> float:
    return float(np.percentile(np.array(xs), p)) if xs else float("nan")


def bench_vigil(data: Path, rules: Path, start_ms: int, cycles: int) -> dict[str, Any]:
    from vigil.promql.engine import Engine
    from vigil.rules.loader import load_rule_files
    from vigil.rules.manager import RuleManager
    from vigil.tsdb.db import TSDB
    from vigil.tsdb.importer import import_exposition

    data_dir = data.parent / "vigil-data"
    t0 = time.monotonic()
    import_exposition(data, data_dir, content_type=OPENMETRICS)
    import_s = time.monotonic() - t0
    db = TSDB.open(data_dir)
    try:
        engine = Engine(db)
        mgr = RuleManager(query=engine.instant_query, appendable=db, queryable=db)
        groups = mgr.build_groups(load_rule_files([str(rules)]), INTERVAL_S * 1000)
        start = start_ms - INTERVAL_S * 1000  # one warm-up cycle first
        cycle_s: list[float] = []
        per_rule: list[float] = []
        for c in range(cycles + 1):
            t = start + c * INTERVAL_S * 1000
            c0 = time.perf_counter()
            for g in groups:
                g.evaluate(t)
            if c == 0:
                first = time.perf_counter() - c0
                continue
            cycle_s.append(time.perf_counter() - c0)
            per_rule.extend(r.evaluation_time_s for g in groups for r in g.rules)
        errors = [f"{r.name}: {r.last_error}" for g in groups for r in g.rules if r.last_error]
        alerts = sum(len(r.snapshot()) for r in alerting_rules(groups))
    finally:
        db.close()
    return {
        "import_s": import_s,
        "first_cycle_s": first,
        "cycle_s": cycle_s,
        "per_rule_s": per_rule,
        "errors": errors,
        "alerts": alerts,
    }


def alerting_rules(groups: list[Any]) -> list[Any]:
    from vigil.rules.alerting import AlertingRule

    return [r for g in groups for r in g.rules if isinstance(r, AlertingRule)]


def bench_prometheus(
    work: Path, data: Path, n_rules: int, end_ms: int, wait_s: float, samples: int
) -> dict[str, Any]:
    blocks = work / "prom-data"
    t0 = time.monotonic()
    subprocess.run(
        ["promtool", "tsdb", "create-blocks-from", "openmetrics", str(data), str(blocks)],
        check=True,
        capture_output=True,
    )
    import_s = time.monotonic() - t0
    # One group: Prometheus runs groups concurrently, and on a small machine their
    # durations would include waiting for each other. In one group the rules run
    # one after another, as Vigil's cycle below does, so the times compare.
    rules = work / "prom-rules.yml"
    rules.write_text(rules_file(n_rules, per_group=n_rules))
    cfg = f"global: {{evaluation_interval: {INTERVAL_S}s}}\nrule_files: ['{rules}']\n"
    srv = peers.start_prometheus(work, cfg, data_dir=blocks)
    cycle_s: list[float] = []
    per_rule: list[float] = []
    eval_ms: list[int] = []
    errors: list[str] = []
    alerts = 0
    cpu_per_cycle = float("nan")
    try:
        srv.wait_ready()
        time.sleep(wait_s)
        cpu0, cycles0 = srv.cpu_seconds(), None
        deadline = time.monotonic() + samples * INTERVAL_S * 3 + 60
        last = ""
        while len(cycle_s) < samples and time.monotonic() < deadline:
            (g,) = httpx.get(srv.url + "/api/v1/rules", timeout=30).json()["data"]["groups"]
            if g["lastEvaluation"] != last and not g["lastEvaluation"].startswith("0001"):
                if cycles0 is None:  # the CPU window starts at a cycle boundary
                    cpu0, cycles0 = srv.cpu_seconds(), len(cycle_s)
                last = g["lastEvaluation"]
                cycle_s.append(g["evaluationTime"])
                per_rule.extend(r["evaluationTime"] for r in g["rules"])
                eval_ms.append(int(parse_rfc3339(last) * 1000))
                errors = [
                    f"{r['name']}: {r['lastError']}" for r in g["rules"] if r.get("lastError")
                ]
                alerts = sum(len(r.get("alerts", [])) for r in g["rules"])
            time.sleep(1.0)
        if cycles0 is not None and len(cycle_s) > cycles0 + 1:
            cpu_per_cycle = (srv.cpu_seconds() - cpu0) / (len(cycle_s) - cycles0 - 1)
        metric = _metric_sum(srv.url, "prometheus_rule_group_last_duration_seconds")
    finally:
        srv.stop()
    return {
        "import_s": import_s,
        "cycle_s": cycle_s,
        "per_rule_s": per_rule,
        "metric_cycle_s": metric,
        "cpu_per_cycle_s": cpu_per_cycle,
        "offset_ms": int(np.median(np.array(eval_ms)) - end_ms) if eval_ms else None,
        "errors": errors,
        "alerts": alerts,
    }


def parse_rfc3339(s: str) -> float:
    """Seconds since the epoch of Go's RFC3339Nano in UTC."""
    import datetime as dt

    head, _, frac = s.rstrip("Z").partition(".")
    t = dt.datetime.fromisoformat(head).replace(tzinfo=dt.UTC).timestamp()
    return t + (float("0." + frac) if frac else 0.0)


def _metric_sum(url: str, name: str) -> float:
    total = 0.0
    for line in httpx.get(url + "/metrics", timeout=30).text.splitlines():
        if line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rules", type=int, default=500)
    ap.add_argument("--series", type=int, default=10_000)
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--cycles", type=int, default=5)
    ap.add_argument("--prom-wait", type=float, default=40.0)
    ap.add_argument("--skip-prometheus", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="vigil-bench-rules-") as tmp:
        work = Path(tmp)
        rules = work / "rules.yml"
        rules.write_text(rules_file(args.rules))
        data = work / "data.om"
        end_s = int(time.time()) // INTERVAL_S * INTERVAL_S
        t0 = time.monotonic()
        n, _, end_ms = write_openmetrics(data, args.series, args.hours, end_s=end_s)
        print(
            f"data: {args.series:,} series x {args.hours:g} h = {n:,} samples "
            f"(generated in {time.monotonic() - t0:.0f}s); {args.rules} rules in "
            f"{-(-args.rules // RULES_PER_GROUP)} groups"
        )
        results: dict[str, dict[str, Any]] = {}
        offset_ms = 60_000  # evaluate a minute after the last sample, unless told
        if not args.skip_prometheus and peers.have("prometheus") and peers.have("promtool"):
            results["prometheus"] = bench_prometheus(
                work, data, args.rules, end_ms, args.prom_wait, args.cycles
            )
            offset_ms = results["prometheus"]["offset_ms"] or offset_ms
        # Vigil evaluates at the same distance from the data's end as Prometheus did,
        # so range selectors see as many samples on both.
        start_ms = end_ms + offset_ms - (args.cycles - 1) * INTERVAL_S * 1000 // 2
        results["vigil"] = bench_vigil(data, rules, start_ms, args.cycles)
        results["vigil"]["offset_ms"] = offset_ms
    print_table(results)
    return 0


def print_table(results: dict[str, dict[str, Any]]) -> None:
    rows: dict[str, dict[str, float]] = {}
    for name, r in results.items():
        rows[name] = {
            "import_s": r["import_s"],
            "cycle_s_p50": pct(r["cycle_s"], 50),
            "cycle_s_max": max(r["cycle_s"]) if r["cycle_s"] else float("nan"),
            "rule_ms_p50": pct(r["per_rule_s"], 50) * 1e3,
            "rule_ms_p99": pct(r["per_rule_s"], 99) * 1e3,
            "rule_ms_mean": float(np.mean(r["per_rule_s"])) * 1e3 if r["per_rule_s"] else 0.0,
        }
    counts = ", ".join(f"{k}: {len(v['cycle_s'])} cycles" for k, v in results.items())
    print(f"\n## rule evaluation ({counts})")
    names = list(rows)
    print("| measure | " + " | ".join(names) + " | vigil/prometheus |")
    print("|---" * (len(names) + 2) + "|")
    for key in rows["vigil"]:
        vals = [f"{rows[n][key]:.3f}" for n in names]
        ratio = ""
        if "prometheus" in rows and rows["prometheus"][key]:
            ratio = f"{rows['vigil'][key] / rows['prometheus'][key]:.1f}"
        print(f"| {key} | " + " | ".join(vals) + f" | {ratio} |")
    v = results["vigil"]
    print(
        f"\nvigil: first (cold) cycle {v['first_cycle_s']:.2f}s; {v['alerts']} active alerts; "
        f"evaluated {v['offset_ms'] / 1000:.0f}s after the last sample"
    )
    if "prometheus" in results:
        p = results["prometheus"]
        cpu = p["cpu_per_cycle_s"]
        print(
            f"prometheus: prometheus_rule_group_last_duration_seconds {p['metric_cycle_s']:.3f}s; "
            f"CPU {cpu:.3f}s per cycle (vigil/prometheus wall/CPU "
            f"{pct(v['cycle_s'], 50) / cpu:.1f}); {p['alerts']} active alerts"
        )
    for name, r in results.items():
        if r["errors"]:
            print(f"{name}: {len(r['errors'])} rules failed, e.g. {r['errors'][:3]}")


if __name__ == "__main__":
    sys.exit(main())
