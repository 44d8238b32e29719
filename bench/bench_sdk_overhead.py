"""Requests/s of a trivial FastAPI endpoint with and without vigil.sdk.

Usage: ``python bench/bench_sdk_overhead.py [--side-by-side] [--seconds 5] [--rounds 3]
[--connections 32] [--variants bare,metrics,...]``.

Variants (the endpoint and the load are the same in all of them):

* ``bare``: FastAPI, no logging.
* ``stdlog``: bare plus the handler's one log line per request through a plain
  stdlib ``StreamHandler`` and ``Formatter``: what logging itself costs.
* ``metrics``: ``sdk.instrument`` (HTTP metrics, request ids), no log line.
* ``sdk``: metrics plus ``sdk.setup_logging``: one JSON line per request.
* ``access``: metrics plus the middleware's own access log
  (``instrument(..., access_log=...)``): one JSON line per request, no stdlib
  logging call.
* ``tracing``: sdk plus ``sdk.setup_tracing`` exporting to a real OTLP/HTTP sink
  started here (it accepts and counts every export). FastAPI's native telemetry
  records four spans per request (server, dependencies, endpoint, serialization).
* ``tracing1``: tracing with ``FastAPI(telemetry={"operation_spans": False})``:
  the server span only.

Each run starts uvicorn (one worker) in a subprocess, pinned to the first CPU
while the load generator gets the others (``--no-pin`` to share them); the load comes from ``wrk``
when installed, else a multi-threaded httpx client (which measures the client as
much as the server: prefer wrk). Rounds interleave the variants, in a rotated
order, so a noisy neighbour hurts all of them alike; medians are printed, with the
range. Besides requests/s, the server's CPU time per request (from
``/proc/<pid>/stat``) is printed: it is far less sensitive to other processes on
the machine than throughput.

``--side-by-side`` is the steadiest measure under real load: each round runs the
bare app and one variant at the same time, both pinned to the same CPU, each under
its own ``wrk`` on the other CPUs. Both servers are saturated and the kernel gives
each half of the core, so a noisy neighbour slows both alike; the throughput ratio
is the ratio of CPU spent per request. A bare-against-bare pair runs first in every
round: its spread is the method's noise floor. ``--baseline`` compares against
another variant (``--baseline metrics --variants access``: what the access log
adds).

``--instructions`` measures something noise cannot touch: each variant's uvicorn
runs under valgrind's callgrind, a keep-alive client sends ``--requests`` requests
after a warm-up, and the instructions the server executed for them are counted
(counters zeroed before and dumped after, with ``callgrind_control``). The count
barely moves between runs or machines, so overheads of a few percent can be told
apart; it is user space only, so the kernel's share of a request (socket reads
and writes, the same in every variant) is left out of the denominator, which
makes the printed loss an upper bound of the instruction share. Instructions are
not time: Python code of the kind added here runs at fewer instructions per
cycle than uvicorn's C parts, so compare with the CPU-time columns too.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

VARIANTS = ("bare", "stdlog", "metrics", "sdk", "access", "tracing", "tracing1")

APP = """
import logging, os
from fastapi import FastAPI

variant = os.environ["VARIANT"]
TRACING = variant in ("tracing", "tracing1")
if variant == "tracing1":  # FastAPI's native telemetry, server spans only
    app = FastAPI(telemetry={"operation_spans": False})
else:
    app = FastAPI()
log = logging.getLogger("bench")
LOG = variant in ("stdlog", "sdk") or TRACING

@app.get("/items/{item_id}")
async def item(item_id: int):
    if LOG:
        log.info("item", extra={"item_id": item_id})
    return {"id": item_id}

if variant == "stdlog":
    handler = logging.StreamHandler(open(os.devnull, "w"))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.INFO)
if variant in ("metrics", "sdk", "access") or TRACING:
    from vigil import sdk
    if LOG:
        sdk.setup_logging(service="bench", stream=open(os.devnull, "w"))
    access = None
    if variant == "access":
        access = sdk.setup_access_log(
            service="bench",
            stream=open(os.devnull, "wb"),
            flush_interval=float(os.environ.get("BENCH_FLUSH_INTERVAL", "0.1")),
            flush_lines=int(os.environ.get("BENCH_FLUSH_LINES", "1024")),
            max_buffer_lines=int(os.environ.get("BENCH_MAX_LINES", "16384")),
        )
    app = sdk.instrument(app, service="bench", access_log=access or False)
if TRACING:
    from vigil.sdk.tracing import setup_tracing
    setup_tracing("bench", endpoint=os.environ["OTLP_ENDPOINT"], app=app)
if os.environ.get("BENCH_GC_FREEZE"):
    import gc
    gc.freeze()
"""


class OtlpSink:
    """An OTLP/HTTP endpoint that accepts every export and counts them."""

    def __init__(self) -> None:
        self.requests = 0
        self.bytes = 0
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                sink.requests += 1
                sink.bytes += len(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# CPU pinning (``--pin``): the server on one core, the load generator on another,
# so they never compete for a core and requests/s measures the server alone.
SERVER_CPUS: set[int] | None = None
LOAD_CPUS: set[int] | None = None


def _pinned(cpus: set[int] | None) -> Any:
    if not cpus:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


def load_wrk(url: str, seconds: int, conns: int) -> tuple[float, int]:
    threads = len(LOAD_CPUS) if LOAD_CPUS else 2
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", url],
        capture_output=True,
        text=True,
        check=True,
        preexec_fn=_pinned(LOAD_CPUS),
    ).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    return (float(rps.group(1)) if rps else 0.0), (int(total.group(1)) if total else 0)


def load_httpx(url: str, seconds: int, conns: int) -> tuple[float, int]:
    import httpx

    count = [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def worker() -> None:
        n = 0
        with httpx.Client() as client:
            while time.monotonic() < stop:
                client.get(url)
                n += 1
        with lock:
            count[0] += n

    threads = [threading.Thread(target=worker) for _ in range(min(conns, 16))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return count[0] / seconds, count[0]


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of ``pid`` (Linux), ``None`` where unknown."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(variant: str, app_dir: str, endpoint: str) -> tuple[subprocess.Popen[bytes], str]:
    """Start the bench app as ``variant`` under uvicorn (one worker); wait until it answers."""
    port = free_port()
    env = {**os.environ, "VARIANT": variant, "OTLP_ENDPOINT": endpoint}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--app-dir", app_dir, "benchapp:app", "--port", str(port),
         "--log-level", "error", "--no-access-log"],
        env=env,
        preexec_fn=_pinned(SERVER_CPUS),
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/items/1"
    import httpx

    for _ in range(100):
        try:
            httpx.get(url, timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.1)
    return proc, url


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(10)


def run_variant(
    variant: str, seconds: int, conns: int, app_dir: str, endpoint: str
) -> tuple[float, float | None]:
    """Return (requests/s, server CPU microseconds per request) of one run."""
    proc, url = start_server(variant, app_dir, endpoint)
    try:
        load = load_wrk if shutil.which("wrk") else load_httpx
        load(url, 1, conns)  # warm-up
        cpu0 = cpu_seconds(proc.pid)
        rps, total = load(url, seconds, conns)
        cpu1 = cpu_seconds(proc.pid)
        per_request = None
        if cpu0 is not None and cpu1 is not None and total:
            per_request = (cpu1 - cpu0) / total * 1e6
        return rps, per_request
    finally:
        stop_server(proc)


def run_side_by_side(
    variant: str, seconds: int, conns: int, app_dir: str, endpoint: str, baseline: str = "bare"
) -> tuple[tuple[float, float], tuple[float | None, float | None]]:
    """Run bare and ``variant`` at the same time, on the same CPU, each under its
    own wrk; return ((bare req/s, variant req/s), (bare, variant CPU us/request)).

    Both servers are saturated and the kernel gives each half of the core, so
    whatever the machine's neighbours do at that moment slows both alike; the
    throughput ratio is the ratio of the CPU each spends per request.
    """
    servers = [start_server(v, app_dir, endpoint) for v in (baseline, variant)]
    try:

        def both(duration: int) -> list[str]:
            runs = [
                subprocess.Popen(
                    ["wrk", "-t1", f"-c{conns}", f"-d{duration}s", url],
                    stdout=subprocess.PIPE,
                    text=True,
                    preexec_fn=_pinned(LOAD_CPUS),
                )
                for _, url in servers
            ]
            return [run.communicate()[0] for run in runs]

        both(1)  # warm-up
        cpu0 = [cpu_seconds(proc.pid) for proc, _ in servers]
        outs = both(seconds)
        cpu1 = [cpu_seconds(proc.pid) for proc, _ in servers]
    finally:
        for proc, _ in servers:
            stop_server(proc)
    rps: list[float] = []
    per_request: list[float | None] = []
    for out, c0, c1 in zip(outs, cpu0, cpu1, strict=True):
        got = re.search(r"Requests/sec:\s+([\d.]+)", out)
        total = re.search(r"(\d+) requests in", out)
        rps.append(float(got.group(1)) if got else 0.0)
        n = int(total.group(1)) if total else 0
        per_request.append((c1 - c0) / n * 1e6 if c0 is not None and c1 is not None and n else None)
    return (rps[0], rps[1]), (per_request[0], per_request[1])


def main_side_by_side(args: argparse.Namespace, variants: list[str], sink: OtlpSink) -> None:
    if not shutil.which("wrk"):
        raise SystemExit("--side-by-side needs wrk (apt-get install wrk)")
    # bare against bare first: the noise floor of the method itself.
    baseline = args.baseline
    compared = [baseline] + [v for v in variants if v != baseline]
    ratios: dict[str, list[float]] = {v: [] for v in compared}
    cpu_ratios: dict[str, list[float]] = {v: [] for v in compared}
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "benchapp.py"), "w") as fh:
            fh.write(APP)
        print(f"side by side: bare and each variant together on CPU {sorted(SERVER_CPUS or ())}, "
              f"two wrk (-c{args.connections} each) on {sorted(LOAD_CPUS or ())}")  # fmt: skip
        for r in range(args.rounds):
            for v in compared:
                (base, got), (base_cpu, cpu) = run_side_by_side(
                    v, args.seconds, args.connections, tmp, sink.url, baseline
                )
                if base:
                    ratios[v].append(got / base)
                if base_cpu and cpu:
                    cpu_ratios[v].append(cpu / base_cpu)
                print(
                    f"  round {r + 1} {v:8s} {got:7.0f} req/s vs bare {base:7.0f}", file=sys.stderr
                )
    print(
        f"{'variant':8s} {'throughput loss':>15s} {'(rounds)':>20s} {'CPU/request':>12s} {'(rounds)':>20s}"
    )
    for v in compared:
        if not ratios[v]:
            continue
        loss = 100.0 * (1.0 - statistics.median(ratios[v]))
        lo, hi = 100.0 * (1.0 - max(ratios[v])), 100.0 * (1.0 - min(ratios[v]))
        line = f"{v + (' (A/A)' if v == baseline else ''):8s} {loss:14.1f}% {f'({lo:.1f}% to {hi:.1f}%)':>20s}"
        if cpu_ratios[v]:
            extra = 100.0 * (statistics.median(cpu_ratios[v]) - 1.0)
            clo, chi = (100.0 * (min(cpu_ratios[v]) - 1.0), 100.0 * (max(cpu_ratios[v]) - 1.0))
            line += f" {extra:+11.1f}% {f'({clo:+.1f}% to {chi:+.1f}%)':>20s}"
        print(line)


def _keepalive_requests(port: int, n: int) -> None:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        for i in range(n):
            conn.request("GET", f"/items/{i % 100}")
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"GET /items/{i % 100} answered {response.status}")
    finally:
        conn.close()


def count_instructions(variant: str, requests: int, app_dir: str, endpoint: str) -> float:
    """User-space instructions the server executes per request, under callgrind."""
    port = free_port()
    env = {**os.environ, "VARIANT": variant, "OTLP_ENDPOINT": endpoint}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with tempfile.TemporaryDirectory() as out:
        outfile = os.path.join(out, "callgrind.out")
        proc = subprocess.Popen(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={outfile}",
             sys.executable, "-m", "uvicorn", "--app-dir", app_dir, "benchapp:app",
             "--port", str(port), "--log-level", "error", "--no-access-log"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    _keepalive_requests(port, 1)
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(
                            f"{variant}: uvicorn under valgrind did not start"
                        ) from None
                    time.sleep(0.5)
            _keepalive_requests(port, max(200, requests // 5))  # warm-up: caches, children
            control = ["callgrind_control"]
            subprocess.run([*control, "-z", str(proc.pid)], check=True, capture_output=True)
            _keepalive_requests(port, requests)
            subprocess.run([*control, "-d", str(proc.pid)], check=True, capture_output=True)
        finally:
            proc.terminate()
            proc.wait(60)
        dumps = [f for f in os.listdir(out) if f.startswith("callgrind.out.")]
        if len(dumps) != 1:
            raise RuntimeError(f"{variant}: expected one callgrind dump, found {dumps}")
        with open(os.path.join(out, dumps[0])) as fh:
            found = re.search(r"^summary:\s+(\d+)", fh.read(), re.MULTILINE)
        if not found:
            raise RuntimeError(f"{variant}: no summary line in the callgrind dump")
        return int(found.group(1)) / requests


def main_instructions(variants: list[str], requests: int, sink: OtlpSink) -> None:
    from concurrent.futures import ThreadPoolExecutor

    for tool in ("valgrind", "callgrind_control"):
        if not shutil.which(tool):
            raise SystemExit(f"--instructions needs {tool} (apt-get install valgrind)")
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "benchapp.py"), "w") as fh:
            fh.write(APP)
        print(f"counting instructions under callgrind, {requests} requests per variant")
        workers = max(1, len(os.sched_getaffinity(0)))
        with ThreadPoolExecutor(workers) as pool:
            counts = dict(
                zip(
                    variants,
                    pool.map(lambda v: count_instructions(v, requests, tmp, sink.url), variants),
                    strict=True,
                )
            )
    bare = counts.get("bare")
    print(f"{'variant':8s} {'instructions/req':>16s} {'over bare':>10s} {'share':>7s}")
    for v in variants:
        cells = ""
        if bare and v != "bare":
            extra = counts[v] - bare
            cells = f"{f'+{extra:,.0f}':>10s} {100.0 * extra / counts[v]:6.1f}%"
        print(f"{v:8s} {counts[v]:16,.0f} {cells}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument(
        "--pin",
        action=argparse.BooleanOptionalAction,
        default=len(os.sched_getaffinity(0)) >= 2,
        help="server on the first CPU, wrk on the others (default with 2+ CPUs)",
    )
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="count the server's instructions per request under callgrind instead",
    )
    parser.add_argument(
        "--requests", type=int, default=1000, help="requests counted per variant (--instructions)"
    )
    parser.add_argument(
        "--side-by-side",
        action="store_true",
        help="run bare and each variant at the same time on the same CPU (needs wrk)",
    )
    parser.add_argument(
        "--baseline", default="bare", help="what --side-by-side compares each variant to"
    )
    args = parser.parse_args()
    if args.instructions:
        sink = OtlpSink()
        try:
            main_instructions([v for v in args.variants.split(",") if v], args.requests, sink)
        finally:
            sink.close()
        return
    global SERVER_CPUS, LOAD_CPUS
    if args.pin:
        cpus = sorted(os.sched_getaffinity(0))
        SERVER_CPUS, LOAD_CPUS = {cpus[0]}, set(cpus[1:])
    variants = [v for v in args.variants.split(",") if v]
    if args.side_by_side:
        sink = OtlpSink()
        try:
            main_side_by_side(args, variants, sink)
        finally:
            sink.close()
        return
    rps: dict[str, list[float]] = {v: [] for v in variants}
    cpu: dict[str, list[float]] = {v: [] for v in variants}
    sink = OtlpSink()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            with open(os.path.join(tmp, "benchapp.py"), "w") as fh:
                fh.write(APP)
            print(f"load generator: {'wrk' if shutil.which('wrk') else 'httpx threads'}")
            if SERVER_CPUS:
                print(
                    f"pinned: server on CPU {sorted(SERVER_CPUS)}, load on {sorted(LOAD_CPUS or ())}"
                )
            for r in range(args.rounds):
                order = variants[r % len(variants) :] + variants[: r % len(variants)]
                for v in order:
                    got, per_req = run_variant(v, args.seconds, args.connections, tmp, sink.url)
                    rps[v].append(got)
                    if per_req is not None:
                        cpu[v].append(per_req)
                    print(f"  round {r + 1} {v:8s} {got:8.0f} req/s", file=sys.stderr)
    finally:
        sink.close()
    bare = statistics.median(rps["bare"]) if rps.get("bare") else 0.0
    bare_best = max(rps["bare"]) if rps.get("bare") else 0.0
    bare_cpu = statistics.median(cpu["bare"]) if cpu.get("bare") else 0.0
    bare_cpu_best = min(cpu["bare"]) if cpu.get("bare") else 0.0
    # Noise on a shared machine only ever slows a run down, so besides medians the
    # best run of each variant (most req/s, least CPU per request) is compared.
    print(f"{'variant':8s} {'req/s median':>12s} {'(range)':>15s} {'loss':>7s} "
          f"{'best loss':>9s} {'CPU us/req':>10s} {'vs bare':>8s} {'best vs bare':>12s}")  # fmt: skip
    for v in variants:
        med = statistics.median(rps[v])
        loss = 100.0 * (bare - med) / bare if bare else 0.0
        best_loss = 100.0 * (bare_best - max(rps[v])) / bare_best if bare_best else 0.0
        line = (
            f"{v:8s} {med:12.0f} {f'({min(rps[v]):.0f}-{max(rps[v]):.0f})':>15s} {loss:6.1f}%"
            f" {best_loss:8.1f}%"
        )
        if cpu[v]:
            c, cb = statistics.median(cpu[v]), min(cpu[v])
            line += f" {c:10.0f} {f'+{c - bare_cpu:.0f}' if v != 'bare' else '':>8s}"
            line += f" {f'+{cb - bare_cpu_best:.0f} ({100 * (cb - bare_cpu_best) / bare_cpu_best:.0f}%)' if v != 'bare' else '':>12s}"
        print(line)
    # Paired: each round's variant against the same round's bare run, which ran
    # seconds apart, so slow spells of the machine cancel out; the median of those
    # ratios is the steadiest number this benchmark gives.
    if rps.get("bare") and len(rps["bare"]) == args.rounds:
        print(f"{'variant':8s} {'paired loss (median of per-round ratios)':>42s}")
        for v in variants:
            if v == "bare" or len(rps[v]) != args.rounds:
                continue
            ratios = [got / base for got, base in zip(rps[v], rps["bare"], strict=True) if base]
            if ratios:
                loss = 100.0 * (1.0 - statistics.median(ratios))
                lo, hi = 100.0 * (1.0 - max(ratios)), 100.0 * (1.0 - min(ratios))
                print(f"{v:8s} {loss:20.1f}% {f'(rounds: {lo:.1f}% to {hi:.1f}%)':>30s}")
    if "tracing" in variants or "tracing1" in variants:
        print(f"OTLP sink: {sink.requests} export requests, {sink.bytes} bytes")


if __name__ == "__main__":
    main()
