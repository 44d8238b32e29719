"""Differential test: the same generated queries against the real Prometheus and Vigil.

One small data set (~300 series x 2 h at 15 s: counters with resets, gauges,
classic histogram buckets, series with gaps, series that stop) is backfilled
into both (`promtool tsdb create-blocks-from openmetrics` / `vigil import`), both
servers are started on it, and a few hundred generated queries run as instant and
range queries through both HTTP APIs. Results must agree: result type, series
label sets, timestamps, values (relative 1e-9, or both NaN), and whether the
query failed at all (error messages are not compared).

The installed Prometheus is 2.42; Vigil follows 3.x semantics. Where they differ
the data and the queries are shaped so the difference cannot show:

- Range selectors and the lookback window are left-open in 3.x and closed in
  2.x. Every sample sits at a multiple of 125 ms past a whole second (never
  .000 or .300) and every evaluation time sits at .300 past a whole second, with
  whole-second ranges, offsets and subquery steps; so no sample, and no subquery
  step, ever lands exactly on a window's lower bound.
  A subquery nested in a subquery is evaluated at the outer one's steps (whole
  multiples of its step), so the inner range is chosen to be no multiple of the
  inner step (`[330s:1m]` inside `[10m:2m]`).
- Sample timestamps are multiples of 1/8 s so "seconds with 3 decimals" parses
  to the same integer milliseconds however a parser rounds.
- `holt_winters` (2.x) was renamed `double_exponential_smoothing` (3.x, experimental):
  neither is generated. Nor are functions 2.42 lacks (`sort_by_label`, `limitk`,
  `limit_ratio`, `mad_over_time`, `info`, native-histogram functions).
- `__name__` removal: 2.x drops the name as soon as a function or arithmetic
  applies; Vigil delays it to the end (3.x's delayed name removal). The results
  agree except where a query reads `__name__` after it was dropped
  (`label_replace(rate(x[5m]), "n", "$1", "__name__", "(.*)")`) or merges series
  that differ only by name before the end; such queries are not generated.
- Counter extrapolation: when a `rate` window starts well before a series' first
  sample, 2.x first clamps the extrapolation to where the counter would reach
  zero and then applies the 1.1 x average-interval threshold; 3.x applies the
  threshold first. Counters (and histogram buckets) therefore start at 1e6..1e7,
  so the zero point is always further away than either bound.
- `atan2` keeps `__name__` in 2.x and drops it in 3.x: it is generated only
  under unary minus, which drops the name in both.
- Label names: 3.x accepts any UTF-8 label name (`label_replace(x, "1bad", ...)`),
  2.x rejects names that are not identifiers; not generated.
- Float summation: 3.x uses Kahan summation in `sum`, `avg`, `sum_over_time`,
  `avg_over_time`, where 2.42 adds plainly or keeps an incremental mean. Values
  therefore agree to ~1e-15 relative, except after cancellation (a difference
  of nearly equal sums), hence an absolute floor of 1e-6 next to the relative 1e-9
  for values whose magnitude inputs are ~1e9 (see `_close`).

Run: pytest -m interop tests/promql/test_differential.py -s (prints a summary).
"""

from __future__ import annotations

import math
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from _support import ServerProcess, free_port

pytestmark = pytest.mark.interop

PROMETHEUS = Path("/usr/bin/prometheus")
PROMTOOL = Path("/usr/bin/promtool")

STEP_S = 15
POINTS = 2 * 3600 // STEP_S
EVAL_MS = 300  # every evaluation time is a whole second plus this
REL_TOL = 1e-9

JOBS = ["api", "worker", "db", "cache"]
INSTANCES = [f"i-{k}:9100" for k in range(5)]
METHODS = ["GET", "POST"]
CODES = ["200", "404", "500"]
LES = ["0.01", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf"]


# --- data -------------------------------------------------------------------------


@dataclass(frozen=True)
class DataSet:
    start_ms: int  # a whole minute; samples follow from start + 15 s
    end_ms: int  # the last sample's whole-second base

    def at(self, minutes: float) -> float:
        """An evaluation time, in seconds, `minutes` after the start (plus .300)."""
        return (self.start_ms + int(minutes * 60_000) + EVAL_MS) / 1000


def _labels(name: str, lbls: dict[str, str]) -> str:
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in lbls.items()) + "}"


def write_dataset(path: Path, end_s: int, seed: int = 7) -> DataSet:
    """Write the OpenMetrics file; deterministic for a seed and an end time."""
    rng = random.Random(seed)
    start_s = end_s - POINTS * STEP_S
    bases = [start_s + STEP_S * (k + 1) for k in range(POINTS)]

    def stamp(base: int) -> str:
        return f"{base + rng.randrange(1, 8) / 8:.3f}"

    out: list[str] = []

    def family(name: str, typ: str, rows: list[tuple[str, list[tuple[int, float]]]]) -> None:
        out.append(f"# HELP {name} Differential test data.\n# TYPE {name} {typ}\n")
        for key, points in rows:
            out.extend(f"{key} {v!r} {stamp(b)}\n" for b, v in points)

    counters = []
    for job in JOBS:
        for inst in INSTANCES:
            for method in METHODS:
                for code in CODES:
                    rate = rng.uniform(0.1, 20)
                    v, pts = float(rng.randrange(10**6, 10**7)), []
                    reset_at = rng.randrange(POINTS) if rng.random() < 0.2 else -1
                    for k, b in enumerate(bases):
                        v = 0.0 if k == reset_at else v + rng.randrange(0, int(rate * 30) + 1)
                        pts.append((b, v))
                    lbls = {"job": job, "instance": inst, "method": method, "code": code}
                    counters.append((_labels("dt_requests_total", lbls), pts))
    family("dt_requests", "counter", counters)

    mem, temp = [], []
    for job in JOBS:
        for inst in INSTANCES:
            v, pts = rng.uniform(1e8, 2e9), []
            for b in bases:
                v = round(v + rng.gauss(0, 5e6))
                pts.append((b, float(v)))
            mem.append((_labels("dt_memory_bytes", {"job": job, "instance": inst}), pts))
            for sensor in ("cpu", "board"):
                t, tpts = rng.uniform(20, 80), []
                for b in bases:
                    t = round(t + rng.gauss(0, 0.5), 2)
                    tpts.append((b, t))
                lbls = {"job": job, "instance": inst, "sensor": sensor}
                temp.append((_labels("dt_temperature_celsius", lbls), tpts))
    family("dt_memory_bytes", "gauge", mem)
    family("dt_temperature_celsius", "gauge", temp)

    buckets = []
    for job in JOBS:
        for inst in INSTANCES[:3]:
            cum = [float(rng.randrange(10**6, 10**7))] * len(LES)
            rows: list[list[tuple[int, float]]] = [[] for _ in LES]
            weights = [rng.random() for _ in LES]
            for b in bases:
                n = rng.randrange(0, 60)
                per = [0] * len(LES)
                for _ in range(n):
                    per[rng.choices(range(len(LES)), weights)[0]] += 1
                running = 0
                for i in range(len(LES)):
                    running += per[i]
                    cum[i] += running
                    rows[i].append((b, cum[i]))
            for i, le in enumerate(LES):
                lbls = {"job": job, "instance": inst, "le": le}
                buckets.append((_labels("dt_latency_seconds_bucket", lbls), rows[i]))
    family("dt_latency_seconds_bucket", "gauge", buckets)

    gappy = []
    for k in range(8):
        pts = []
        gap_from = rng.randrange(POINTS - 80)
        gap_len = rng.choice([4, 19, 25, 60])  # 1 min (under lookback) .. 15 min (over)
        for i, b in enumerate(bases):
            if not gap_from <= i < gap_from + gap_len:
                pts.append((b, float(rng.randrange(100))))
        gappy.append((_labels("dt_gappy", {"job": JOBS[k % 4], "instance": INSTANCES[k % 5]}), pts))
    family("dt_gappy", "gauge", gappy)

    stops = []
    for k, stop in enumerate((POINTS - 120, POINTS - 30)):
        pts = [(b, float(i % 17)) for i, b in enumerate(bases[:stop])]
        stops.append((_labels("dt_stops", {"job": JOBS[k], "instance": INSTANCES[k]}), pts))
    family("dt_stops", "gauge", stops)

    out.append("# EOF\n")
    path.write_text("".join(out))
    return DataSet(start_s * 1000, bases[-1] * 1000)


# --- queries ----------------------------------------------------------------------

C = "dt_requests_total"
G = "dt_memory_bytes"
T = "dt_temperature_celsius"
B = "dt_latency_seconds_bucket"

SELECTORS = {
    C: [
        "",
        '{job="api"}',
        '{code=~"5.."}',
        '{method!="GET",job=~"api|db"}',
        '{instance!~"i-[01].*"}',
    ],
    G: ["", '{job="worker"}', '{instance=~"i-[0-2]:9100"}'],
    T: ["", '{sensor="cpu"}', '{job!="cache"}'],
    "dt_gappy": [""],
    "dt_stops": [""],
}
RANGES = ["1m", "5m", "10m", "1h"]
GROUPINGS = ["", " by (job)", " by (job, instance)", " without (instance)", " by ()"]


def _sel(rng: random.Random, metric: str) -> str:
    return metric + rng.choice(SELECTORS[metric])


def generated_queries(seed: int = 1) -> list[str]:
    """Fixed queries plus combinations drawn with a fixed seed (a stable list)."""
    rng = random.Random(seed)
    qs: list[str] = [
        # raw data, to check both imports hold the same samples
        f"{C}[5m]",
        f"{B}[2m]",
        "dt_gappy[20m]",
        f"{G}",
        "dt_stops",
        "dt_gappy",
        # histograms
        f"histogram_quantile(0.9, sum by (le) (rate({B}[5m])))",
        f"histogram_quantile(0.5, sum by (job, le) (rate({B}[10m])))",
        f"histogram_quantile(0.99, sum by (instance, le) (increase({B}[1h])))",
        f"histogram_quantile(0, sum by (le) (rate({B}[5m])))",
        f"histogram_quantile(1, sum by (le) (rate({B}[5m])))",
        f"histogram_quantile(1.5, sum by (le) (rate({B}[5m])))",
        f"histogram_quantile(-0.5, sum by (le) (rate({B}[5m])))",
        f"histogram_quantile(0.75, rate({B}[5m]))",
        f'histogram_quantile(0.9, sum by (le) (rate({B}{{le!="+Inf"}}[5m])))',
        f'histogram_quantile(0.9, sum by (le) (rate({B}{{le=~"0.1|0.5|\\\\+Inf"}}[5m])))',
        # label manipulation
        f'label_replace({G}, "host", "$1", "instance", "(.*):.*")',
        f'label_replace({G}, "instance", "", "instance", ".*")',
        f'label_replace({G}, "job", "x-$1", "job", "(w.*)")',
        f'label_replace(rate({C}[5m]), "foo", "$2", "instance", "(i)-(.*)")',
        f'label_join({T}, "both", "/", "job", "sensor")',
        f'label_join({T}, "job", "", "sensor")',
        f'label_replace({G}, "a", "$1", "instance", "(")',
        # absent
        'absent(nonexistent{job="x"})',
        f"absent({G})",
        'absent(nonexistent{job="x", job="y"})',
        'absent(nonexistent{job=~"x.*"})',
        "absent_over_time(dt_stops[5m])",
        'absent_over_time(nonexistent{a="b"}[5m])',
        "present_over_time(dt_gappy[5m])",
        # count_values
        f'count_values("v", floor({T}))',
        f'count_values by (job) ("v", round({G} / 1e8))',
        f'count_values("v", {G} / 7)',
        f'count_values("job", floor({T} / 10))',
        # scalars, time
        "time()",
        f"scalar(sum({G}))",
        f"scalar({G})",
        "vector(1)",
        f"vector(time()) - scalar(max(timestamp({G})))",
        f"timestamp({G})",
        "timestamp(dt_stops)",
        f"hour({G})",
        f"minute(timestamp({G}))",
        "day_of_week()",
        "days_in_month(vector(1700000000))",
        "year()",
        "1 + 2 * 3",
        "-2 ^ 2",
        "2 ^ 3 ^ 2",
        "5 % 3",
        "(1 > bool 0) + 1",
        # @ and offset
        f"{G} @ start()",
        f"{G} @ end()",
        f"rate({C}[5m] @ end())",
        f"sum by (job) (rate({C}[5m] @ start()))",
        f"{G} offset 10m",
        f"{G} offset -5m",
        f"rate({C}[5m] offset 30m)",
        f"max_over_time({T}[10m] offset 1h)",
        # subqueries
        f"max_over_time(rate({C}[5m])[30m:1m])",
        f"avg_over_time({G}[10m:])",
        f"min_over_time(sum by (job) (rate({C}[1m]))[20m:30s] offset 5m)",
        f"rate(sum by (job) ({C})[10m:15s])",
        f"max_over_time(deriv({G}[5m])[15m:1m])",
        "sum_over_time(vector(1)[5m:1m])",
        f"last_over_time({G}[5m:2m] @ end())",
        "count_over_time(dt_gappy[30m:1m])",
        # binary operators and vector matching
        f"rate({C}[5m]) * on(job, instance) group_left {G}",
        f"{T} / on(job, instance) group_left {G}",
        f"{T} / ignoring(sensor) group_left {G}",
        f"{G} / on(job, instance) group_right {T}",
        f"{T} * on(job, instance) group_left(job) {G}",
        f"{T} + on(job) {G}",
        f"{T} + {G}",
        f"{G} + on(job, instance) {G} offset 5m",
        f"{G} - {G} offset 5m",
        f"{G} > 1e9",
        f"{G} > bool 1e9",
        f"1e9 < {G}",
        f"{G} == {G}",
        f"{G} != bool {G}",
        f"{T} and {T} > 50",
        f"{T} unless {T} > 50",
        f"{T} > 50 or {T} < 30",
        f"{T} and on(job) {G}",
        f"{T} unless ignoring(sensor) {G} > 1e9",
        f"{G} or {T}",
        f"sum by (job) (rate({C}[5m])) / on(job) group_left sum by (job, instance) (rate({C}[5m]))",
        f"sum by (job, instance) (rate({C}[5m])) / ignoring(instance) group_left sum by (job) (rate({C}[5m]))",
        f"sum by (job) (rate({C}[5m])) / ignoring(instance) sum by (job, instance) (rate({C}[5m]))",
        f'rate({C}{{code="500"}}[5m]) / ignoring(code) rate({C}{{code="200"}}[5m])',
        f'sum without (code) (rate({C}{{code="500"}}[5m])) / sum without (code) (rate({C}[5m]))',
        f"-({G} atan2 {G} offset 1h)",
        f"-{G}",
        f"+{G}",
        f"{G} ^ 0.5",
        f"{G} % 1000",
        f"{G} / 0",
        f"-{G} / 0",
        f"({G} - {G}) / 0",
        # name handling that 2.x and 3.x agree on
        '{__name__=~"dt_memory_bytes|dt_temperature_celsius"}',
        '{__name__=~"dt_memory_bytes|dt_temperature_celsius"} > 50',
        'abs({__name__=~"dt_memory_bytes|dt_temperature_celsius"})',
        'sum by (__name__) ({__name__=~"dt_memory_bytes|dt_temperature_celsius"})',
        'count by (__name__, job) ({__name__=~"dt_.*"})',
        # aggregations with parameters
        f"topk(3, {G})",
        f"bottomk(2, {T})",
        f"topk by (job) (1, {G})",
        f"topk(2, sum by (job) (rate({C}[5m])))",
        f"bottomk by (job) (1, rate({C}[5m]))",
        f"topk(scalar(count({G})) / 5, {G})",
        f"topk(0, {G})",
        f"quantile(0.5, {T})",
        f"quantile by (job) (0.9, {G})",
        f"quantile(1.5, {T})",
        f"quantile(-1, {T})",
        f"stddev by (job) ({T})",
        f"stdvar without (sensor) ({T})",
        f"group by (job) ({T})",
        f"count({C})",
        f"sort(sum by (job) ({G}))",
        f"sort_desc({T})",
        # errors on both sides
        f"{T} + on(job) group_left {G}",
        f"{T} * on(job, instance) {G}",
        f"rate({G})",
        f"topk(x, {G})",
        "sum(",
        f"{C}[5m] + 1",
        f"{G} and 1",
        f"quantile_over_time(0.5, {G})",
        f"scalar({C}[5m])",
        f'label_replace({G}, "instance", "x", "instance", ".*")',
        # explicit @ times ({AT} is replaced by a time inside the data)
        f"{G} @ {{AT}}",
        f"rate({C}[10m] @ {{AT}})",
        f"max_over_time(sum by (job) (rate({C}[5m]))[30m:1m] @ {{AT}})",
        f"sum by (job) ({T} @ {{AT}}) - sum by (job) ({T})",
        # more shapes
        f'count_values("v", {G} * 1e12)',
        f'count_values("v", 1 / {G})',
        f'count_values("v", {T} / 0)',
        f'count_values("v", -{T} / 0)',
        f'count_values("v", ({T} - {T}) / 0)',
        f'sum(count_values by (job) ("v", floor({T} / 10)))',
        f"sum by (job) (sum by (job, instance) (rate({C}[5m])))",
        f"avg by (job) ({G}) * 1e9",
        f"avg({G} * 1e300)",
        f"sum({G} * 1e300)",
        f"stddev({G})",
        f"stdvar by (job) ({G})",
        f"quantile(0.3, {G})",
        f"quantile(0.3, ({T} - {T}) / 0)",
        f"max(({T} - {T}) / 0)",
        f"min(({T} - {T}) / 0 or {T})",
        # k covers every series: which NaNs win a tie is unspecified in Prometheus
        f"topk(50, ({T} - {T}) / 0 or {T})",
        f"bottomk(50, ({T} - {T}) / 0 or {T})",
        f"sort(({T} - {T}) / 0 or {T})",
        f"{T} > on() group_left vector(50)",
        f"{T} > ignoring(job, instance, sensor) group_left vector(50)",
        f"vector(1) + on() group_right {T}",
        "1 > bool 2",
        f"{T} == bool {T} offset 1m",
        f"sum({T}) == bool sum({T} offset 1m)",
        f"scalar({T}) + 1",
        f"timestamp(rate({C}[5m]))",
        f"timestamp({T} offset 5m)",
        f"timestamp({T} @ end())",
        f"timestamp(sum({T}))",
        f"resets({T}[30m])",
        "changes(dt_stops[1h])",
        "deriv(dt_stops[10m])",
        "irate(dt_gappy[10m])",
        "idelta(dt_gappy[10m])",
        "delta(dt_gappy[20m])",
        "rate(dt_gappy[20m])",
        "last_over_time(dt_stops[1h])",
        "max_over_time(dt_stops[10m:1m])",
        "absent_over_time(dt_stops[10m:1m])",
        "absent(dt_stops)",
        "absent(sum(dt_stops))",
        "absent(rate(nonexistent[5m]))",
        'absent(nonexistent{job="a"} offset 5m)',
        "present_over_time(dt_stops[10m])",
        "count_over_time(dt_gappy[1m])",
        "avg_over_time(dt_gappy[1m])",
        f"sum_over_time({G}[1h])",
        f"avg_over_time({G}[1h])",
        f"stddev_over_time({G}[1h])",
        f"avg_over_time({G}[1h]) - avg_over_time({G}[1h] offset 1m)",
        "quantile_over_time(0.5, dt_gappy[20m])",
        f"predict_linear({G}[10m:1m], 3600)",
        f"deriv(sum({G})[10m:])",
        f"rate({C}[5m:])",
        f"increase({C}[1h:5m])",
        f"irate({C}[5m:1m] offset 2m)",
        f"max_over_time(max_over_time({T}[330s:1m])[10m:2m])",
        f"{C} offset 1h",
        f"{G} @ start() offset 5m",
        f"rate({C}[5m]) > 1000",
        f"sum by (job) (rate({C}[5m])) > on(job) group_left sum by (job) (rate({C}[5m] offset 5m))",
        f'label_replace(sum by (job) ({G}), "j", "$1$1", "job", "(.)")',
        f'label_replace({G}, "__name__", "renamed", "job", "api")',
        f'label_join({G}, "__name__", "_", "job")',
        f'label_replace({G}, "job", "same", "job", ".*")',
        f'sum by (job) (label_replace({G}, "job", "same", "job", ".*"))',
        f"{G} + on(job, instance) group_left(sensor) {T}",
        f"{G} * on(job, instance) group_right {T}",
        f"{T} / ignoring(sensor) group_left {G} offset 10m",
        f"{T} and on(job, instance) ({G} > 1e9)",
        f'({T} or {G}) unless on(job) {G}{{job="api"}}',
        f"sum by (job) (rate({C}[5m])) or on(job) vector(0)",
        f"clamp_max(sum by (job) (rate({C}[5m])), scalar(max(rate({C}[5m]))))",
        # literals, strings, matcher edge cases
        '"a string"',
        "0x1f + 1e3",
        "Inf",
        "-Inf",
        "NaN",
        f'{G}{{job=~"a.i|w.*"}}',
        f'{G}{{job=~"api|"}}',
        f'{G}{{job!~""}}',
        '{__name__="dt_memory_bytes", job="api"}',
        f"{G}{{}}",
        '{job=""}',
        '{job=~".*"}',
        '{job="api"}',
        # parameters at their edges
        f"quantile(NaN, {T})",
        f"quantile_over_time(NaN, {T}[5m])",
        f"round({T}, 0)",
        f"clamp({T}, NaN, 50)",
        f"topk(1.5, {T})",
        f"bottomk(-1, {T})",
        f"scalar({T})",
        f"absent({G} @ {{AT}})",
        f"timestamp({G} @ {{AT}})",
        f"rate({C}[5m] offset -1h @ {{AT}})",
        f"sum_over_time({G}[1m:15s])",
        f"max_over_time((-{G})[10m:])",
        "1 + vector(1) * 2",
        f"time() - timestamp({G})",
        f"sum without (le) (rate({B}[5m]))",
        "vector(1) and on() absent(nonexistent)",
        f"{G} * on(job, instance) group_right(code) rate({C}[5m])",
        f"sort_desc(sum by (job) (rate({C}[5m])))",
        "changes(dt_gappy[30m])",
        "resets(dt_gappy[30m])",
        f"histogram_quantile(0.9, rate({B}[5m]) offset 10m)",
        f"histogram_quantile(scalar(vector(0.3)), sum by (le) (rate({B}[5m])))",
    ]
    # Functions of one range vector over counters / gauges.
    over_counter = ["rate", "irate", "increase", "resets", "changes"]
    over_gauge = [
        "delta",
        "idelta",
        "deriv",
        "avg_over_time",
        "min_over_time",
        "max_over_time",
        "sum_over_time",
        "count_over_time",
        "last_over_time",
        "stddev_over_time",
        "stdvar_over_time",
        "present_over_time",
        "changes",
    ]
    for fn in over_counter:
        for _ in range(4):
            qs.append(f"{fn}({_sel(rng, C)}[{rng.choice(RANGES)}])")
    for fn in over_gauge:
        for metric in (G, T, "dt_gappy"):
            qs.append(f"{fn}({_sel(rng, metric)}[{rng.choice(RANGES)}])")
    for q in (0, 0.25, 0.5, 0.99, 1, 1.5):
        qs.append(f"quantile_over_time({q}, {_sel(rng, T)}[{rng.choice(RANGES)}])")
    for r in ("5m", "1h"):
        qs.append(f"predict_linear({_sel(rng, G)}[{r}], 600)")
        qs.append(f"predict_linear(dt_gappy[{r}], -300)")
    # Instant functions over gauges.
    instant = [
        "abs",
        "ceil",
        "floor",
        "round",
        "sqrt",
        "ln",
        "log2",
        "log10",
        "exp",
        "sgn",
        "sin",
        "cos",
        "tan",
        "asin",
        "acos",
        "atan",
        "sinh",
        "cosh",
        "tanh",
        "asinh",
        "acosh",
        "atanh",
        "deg",
        "rad",
    ]
    for fn in instant:
        arg = rng.choice([f"{_sel(rng, T)} / 100", f"-{_sel(rng, T)}", _sel(rng, T)])
        qs.append(f"{fn}({arg})")
    qs += [
        f"round({T}, 5)",
        f"round({G}, 1e6)",
        f"round({T}, 0.1)",
        f"clamp({T}, 30, 60)",
        f"clamp({T}, 60, 30)",
        f"clamp_min({G}, 1e9)",
        f"clamp_max({T}, 50)",
        f"exp({G})",
        f"ln(-{T})",
    ]
    # Aggregations over rates and gauges, by various groupings.
    aggs = ["sum", "avg", "min", "max", "count", "group", "stddev", "stdvar"]
    for _ in range(40):
        agg = rng.choice(aggs)
        grp = rng.choice(GROUPINGS)
        inner = rng.choice(
            [
                f"rate({_sel(rng, C)}[{rng.choice(RANGES)}])",
                _sel(rng, G),
                _sel(rng, T),
                f"increase({_sel(rng, C)}[{rng.choice(RANGES)}])",
                f"avg_over_time({_sel(rng, T)}[{rng.choice(RANGES)}])",
            ]
        )
        qs.append(f"{agg}{grp} ({inner})")
    # Binary operators between generated operands.
    ops = ["+", "-", "*", "/", "%", "^", "==", "!=", ">", "<", ">=", "<=", "> bool", "< bool"]
    for _ in range(30):
        op = rng.choice(ops)
        grp = rng.choice([" by (job)", " by (job, instance)"])
        lhs = f"sum{grp} (rate({_sel(rng, C)}[{rng.choice(RANGES)}]))"
        rhs = rng.choice(
            [
                "2",
                "0.5",
                f"sum{grp} (rate({_sel(rng, C)}[{rng.choice(RANGES)}]))",
                f"avg{grp} ({_sel(rng, T)})",
                f"scalar(count({_sel(rng, G)}))",
            ]
        )
        qs.append(f"{lhs} {op} {rhs}")
    # Offsets and @ on generated selectors.
    for _ in range(12):
        fn = rng.choice(over_gauge)
        off = rng.choice(["offset 5m", "offset 1h", "offset -10m", "@ start()", "@ end()"])
        qs.append(f"{fn}({_sel(rng, T)}[{rng.choice(RANGES)}] {off})")
    return qs


# --- servers ----------------------------------------------------------------------


@dataclass
class Setup:
    data: DataSet
    prom: ServerProcess
    vigil: ServerProcess


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    if not (PROMETHEUS.exists() and PROMTOOL.exists()):
        pytest.skip("needs /usr/bin/prometheus and /usr/bin/promtool")
    work = tmp_path_factory.mktemp("differential")
    # Recent data, so neither server's retention drops it; whole minutes.
    end_s = int(time.time()) // 60 * 60 - 600
    data = write_dataset(work / "data.om", end_s)
    prom_dir, vigil_dir = work / "prom", work / "vigil"
    subprocess.run(
        [
            str(PROMTOOL),
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            str(work / "data.om"),
            str(prom_dir),
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "vigil.cli",
            "import",
            str(work / "data.om"),
            "--data-dir",
            str(vigil_dir),
        ],
        check=True,
        capture_output=True,
    )
    (work / "prometheus.yml").write_text("global: {evaluation_interval: 1m}\n")
    (work / "vigil.yml").write_text(
        "global: {evaluation_interval: 1m}\nvigil: {self_scrape: false}\n"
    )
    pport, vport = free_port(), free_port()
    prom = ServerProcess(
        "prometheus",
        [
            str(PROMETHEUS),
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={prom_dir}",
            "--storage.tsdb.retention.time=30d",
            f"--web.listen-address=127.0.0.1:{pport}",
            "--log.level=warn",
        ],
        pport,
        work,
    )
    vigil = ServerProcess(
        "vigil",
        [
            sys.executable,
            "-m",
            "vigil.cli",
            "up",
            "--config",
            str(work / "vigil.yml"),
            "--data-dir",
            str(vigil_dir),
            "--listen",
            f"127.0.0.1:{vport}",
            "--log-level",
            "warning",
        ],
        vport,
        work,
    )
    try:
        prom.wait_ready()
        vigil.wait_ready()
        yield Setup(data, prom, vigil)
    finally:
        prom.stop()
        vigil.stop()


# --- comparison -------------------------------------------------------------------


def _num(s: str) -> float:
    return float(s)  # Go writes NaN, +Inf, -Inf, which float() reads


def _close(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if a == b:
        return True
    if math.isinf(a) or math.isinf(b):
        return False
    return abs(a - b) <= max(REL_TOL * max(abs(a), abs(b)), 1e-6)


def _normalise(body: dict[str, Any]) -> tuple[str, Any]:
    """(resultType, comparable result) or ("error", None)."""
    if body.get("status") != "success":
        return "error", None
    data = body["data"]
    kind, res = data["resultType"], data["result"]
    if kind in ("scalar", "string"):
        return kind, [(res[0], res[1])]
    out: dict[tuple[tuple[str, str], ...], list[tuple[float, str]]] = {}
    for s in res:
        key = tuple(sorted(s["metric"].items()))
        pts = [s["value"]] if kind == "vector" else s["values"]
        if key in out:
            key = (*key, ("__duplicate__", str(len(out))))
        out[key] = [(p[0], p[1]) for p in pts]
    return kind, out


def _diff(q: str, mode: str, pb: dict[str, Any], vb: dict[str, Any]) -> str | None:
    pk, pr = _normalise(pb)
    vk, vr = _normalise(vb)
    if pk != vk:
        perr = pb.get("error", "")
        verr = vb.get("error", "")
        return f"[{mode}] {q}\n    type: prometheus={pk} {perr[:150]} | vigil={vk} {verr[:150]}"
    if pk == "error":
        return None
    if pk in ("scalar", "string"):
        pr, vr = {(): pr}, {(): vr}
    if set(pr) != set(vr):
        only_p = sorted(set(pr) - set(vr))[:3]
        only_v = sorted(set(vr) - set(pr))[:3]
        return (
            f"[{mode}] {q}\n    series: {len(pr)} vs {len(vr)}; only prometheus: {only_p}; "
            f"only vigil: {only_v}"
        )
    for key, ppts in pr.items():
        vpts = vr[key]
        if [t for t, _ in ppts] != [t for t, _ in vpts]:
            pt = [t for t, _ in ppts]
            vt = [t for t, _ in vpts]
            return (
                f"[{mode}] {q}\n    {dict(key)}: timestamps differ: {len(pt)} vs {len(vt)}; "
                f"only prometheus {sorted(set(pt) - set(vt))[:4]}, only vigil "
                f"{sorted(set(vt) - set(pt))[:4]}"
            )
        for (t, a), (_, b) in zip(ppts, vpts, strict=True):
            if kind_is_string(pk):
                ok = a == b
            else:
                ok = _close(_num(a), _num(b))
            if not ok:
                return f"[{mode}] {q}\n    {dict(key)} @ {t}: prometheus={a} vigil={b}"
    return None


def _nonempty(body: dict[str, Any]) -> bool:
    return body.get("status") == "success" and bool(body["data"]["result"])


def kind_is_string(kind: str) -> bool:
    return kind == "string"


def _get(client: httpx.Client, url: str, path: str, params: dict[str, Any]) -> dict[str, Any]:
    r = client.post(url + path, data=params)
    try:
        return r.json()  # type: ignore[no-any-return]
    except ValueError:
        return {"status": "error", "error": f"HTTP {r.status_code}: {r.text[:200]}"}


def test_generated_queries_agree_with_prometheus(setup: Setup) -> None:
    queries = generated_queries()
    assert len(queries) > 250
    d = setup.data
    instants = [d.at(0.5), d.at(47), d.at(106), d.at(121)]  # 121 min: 1 min after the data
    ranges = [
        (d.at(20), d.at(125), "60"),
        (d.at(0), d.at(120), "37"),  # a step that is no multiple of the scrape interval
    ]
    at = f"{d.at(65):.3f}"
    queries = [q.replace("{AT}", at) for q in queries]
    mismatches: list[str] = []
    t0 = time.monotonic()
    n = nonempty = errors = 0
    with httpx.Client(timeout=30) as client:
        for q in queries:
            for t in instants:
                params = {"query": q, "time": f"{t:.3f}"}
                pb = _get(client, setup.prom.url, "/api/v1/query", params)
                vb = _get(client, setup.vigil.url, "/api/v1/query", params)
                n += 1
                nonempty += _nonempty(pb)
                errors += pb.get("status") != "success"
                if (m := _diff(q, f"instant t={t:.3f}", pb, vb)) is not None:
                    mismatches.append(m)
                    break
            for start, end, step in ranges:
                params = {"query": q, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": step}
                pb = _get(client, setup.prom.url, "/api/v1/query_range", params)
                vb = _get(client, setup.vigil.url, "/api/v1/query_range", params)
                n += 1
                nonempty += _nonempty(pb)
                errors += pb.get("status") != "success"
                if (m := _diff(q, f"range step={step}", pb, vb)) is not None:
                    mismatches.append(m)
                    break
    elapsed = time.monotonic() - t0
    print(
        f"\n{len(queries)} queries, {n} evaluations on each server in {elapsed:.1f}s: "
        f"{nonempty} with data, {errors} errors (on both sides)"
    )
    for m in mismatches:
        print(m)
    assert not mismatches, f"{len(mismatches)} mismatches with Prometheus:\n" + "\n".join(
        mismatches
    )
