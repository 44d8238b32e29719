"""The lock-free request accumulator behind the HTTP metrics."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from vigil.sdk import request_stats
from vigil.sdk.metrics import DEFAULT_BUCKETS, http_metrics
from vigil.sdk.request_stats import RequestStats, RequestStatsCollector


def samples(reg: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for metric in reg.collect():
        for s in metric.samples:
            if not s.name.endswith("_created"):
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_exposition_equals_prometheus_client_histogram() -> None:
    # The same observations, including values exactly on bucket bounds (le means
    # "less than or equal"), through prometheus_client and through the accumulator.
    rng = random.Random(7)
    values = [rng.choice(DEFAULT_BUCKETS) for _ in range(200)]
    values += [rng.uniform(0, 12) for _ in range(800)] + [0.0, 1e9]
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    stats = RequestStats(DEFAULT_BUCKETS)
    ours.register(RequestStatsCollector(stats))
    hist = Histogram(
        "http_request_duration_seconds", "h", ["method", "route", "status"],
        buckets=DEFAULT_BUCKETS, registry=theirs,
    )  # fmt: skip
    for i, v in enumerate(values):
        status = 200 if i % 3 else 503
        stats.begin("GET")
        stats.finish("GET", "/r/{id}", status, v)
        hist.labels("GET", "/r/{id}", str(status)).observe(v)
    got = samples(ours)
    want = samples(theirs)
    for key, value in want.items():
        assert got[key] == pytest.approx(value), key
    labels = (("method", "GET"), ("route", "/r/{id}"), ("status", "200"))
    assert got[("http_requests_total", labels)] == sum(1 for i in range(len(values)) if i % 3)
    assert got[("http_requests_in_progress", (("method", "GET"),))] == 0
    text = generate_latest(ours).decode()
    assert "# TYPE http_requests_total counter" in text
    assert "# TYPE http_request_duration_seconds histogram" in text
    assert "http_requests_created{" in text  # like prometheus_client's own counters


def test_threads_count_exactly_and_finished_threads_are_retired() -> None:
    stats = RequestStats((0.1, 1.0))
    barrier = threading.Barrier(8)

    def work(t: int) -> None:
        barrier.wait()
        for i in range(5000):
            stats.begin("POST")
            stats.finish("POST", f"/t{t % 2}", 200, (i % 3) * 0.5)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    snap = stats.snapshot()
    assert stats._shards == []  # all eight threads ended: folded into the retired shard
    for route in ("/t0", "/t1"):
        counts = snap.series[("POST", route, 200)]
        # per thread: 1667 x 0.0, 1667 x 0.5, 1666 x 1.0 (1.0 is inside le="1.0")
        assert counts[:-1] == [4 * 1667, 4 * (1667 + 1666), 0]
        assert counts[-1] == pytest.approx(4 * (1667 * 0.5 + 1666 * 1.0))
    assert snap.in_progress() == {"POST": 0}
    # Reading again after retirement gives the same totals (nothing lost or doubled).
    again = stats.snapshot()
    assert again.series == snap.series and again.begun == snap.begun


def test_thread_per_request_servers_do_not_pile_up_shards() -> None:
    # 600 short-lived threads, one request each, and no scrape in between.
    stats = RequestStats((1.0,))

    def one() -> None:
        stats.begin("GET")
        stats.finish("GET", "/", 200, 0.1)

    for _ in range(600):
        th = threading.Thread(target=one)
        th.start()
        th.join()
    assert len(stats._shards) <= 128
    snap = stats.snapshot()
    assert sum(snap.series[("GET", "/", 200)][:-1]) == 600
    assert snap.in_progress() == {"GET": 0}


def test_reads_while_threads_write_never_fail_or_go_backwards() -> None:
    stats = RequestStats((0.1,))
    stop = threading.Event()

    def writer(t: int) -> None:
        i = 0
        while not stop.is_set():
            stats.begin("GET")
            stats.finish("GET", f"/w{i % 50}", 200 + t, 0.05)  # new series keep appearing
            i += 1

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(3)]
    for th in threads:
        th.start()
    try:
        last = 0.0
        for _ in range(200):
            total = sum(sum(c[:-1]) for c in stats.snapshot().series.values())
            assert total >= last
            last = total
    finally:
        stop.set()
        for th in threads:
            th.join()


def test_in_progress_counts_requests_not_yet_finished() -> None:
    reg = CollectorRegistry()
    metrics = http_metrics(reg, service="s")
    metrics.begin("GET")
    metrics.begin("GET")
    metrics.begin("BREW")  # unknown methods share one label value
    assert reg.get_sample_value("http_requests_in_progress", {"method": "GET"}) == 2
    assert reg.get_sample_value("http_requests_in_progress", {"method": "OTHER"}) == 1
    metrics.observe("GET", "/a", 200, 0.01)
    metrics.observe("BREW", "/a", 418, 0.01)
    assert reg.get_sample_value("http_requests_in_progress", {"method": "GET"}) == 1
    assert reg.get_sample_value("http_requests_in_progress", {"method": "OTHER"}) == 0
    labels = {"method": "OTHER", "route": "/a", "status": "418"}
    assert reg.get_sample_value("http_requests_total", labels) == 1


def test_buckets_must_ascend() -> None:
    with pytest.raises(ValueError, match="distinct and ascending"):
        RequestStats((1.0, 0.5))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_starts_from_zero() -> None:
    stats = RequestStats((1.0,))
    stats.finish("GET", "/", 200, 0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads
        pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        ok = stats.snapshot().series == {}
        stats.finish("GET", "/", 200, 0.1)
        ok = ok and sum(stats.snapshot().series[("GET", "/", 200)][:-1]) == 1
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert sum(stats.snapshot().series[("GET", "/", 200)][:-1]) == 1


MP_WORKER = """
import os, sys, time
from vigil.sdk.metrics import http_metrics
m = http_metrics(service="w")
for i in range(int(sys.argv[1])):
    m.begin("GET")
    m.observe("GET", "/job", 200, 0.02)
m.begin("GET")  # one request still running
print("ready", flush=True)
time.sleep(60)
"""


def _mp_samples(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    reg = CollectorRegistry()
    MultiProcessCollector(reg, path=str(path))
    return samples(reg)


def test_multiprocess_worker_flushes_without_exiting_and_sigkill_keeps_flushed(
    tmp_path: Path,
) -> None:
    # A worker that never exits cleanly: what it recorded reaches the shared files
    # within the flush interval, and survives its SIGKILL.
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-c", MP_WORKER, "37"], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        labels = (("method", "GET"), ("route", "/job"), ("status", "200"))
        deadline = time.monotonic() + 5 * request_stats.FLUSH_INTERVAL + 5
        got: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        while time.monotonic() < deadline:
            got = _mp_samples(tmp_path)
            if got.get(("http_requests_total", labels)) == 37:
                break
            time.sleep(0.05)
        assert got[("http_requests_total", labels)] == 37
        assert got[("http_request_duration_seconds_count", labels)] == 37
        assert got[("http_request_duration_seconds_sum", labels)] == pytest.approx(0.74)
        bucket = (*labels[:2], ("le", "0.025"), labels[2])
        assert got[("http_request_duration_seconds_bucket", tuple(sorted(bucket)))] == 37
        assert got[("http_requests_in_progress", (("method", "GET"),))] == 1
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
    after = _mp_samples(tmp_path)
    assert after[("http_requests_total", labels)] == 37  # flushed values outlive the worker


def test_repeated_flushes_add_only_what_is_new(tmp_path: Path) -> None:
    code = """
from vigil.sdk import request_stats
from vigil.sdk.metrics import http_metrics
m = http_metrics(service="w")
for n in (3, 0, 5):
    for _ in range(n):
        m.begin("POST")
        m.observe("POST", "/x", 201, 0.3)
    request_stats.flush_all()
"""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    got = _mp_samples(tmp_path)
    labels = (("method", "POST"), ("route", "/x"), ("status", "201"))
    assert got[("http_requests_total", labels)] == 8
    assert got[("http_request_duration_seconds_sum", labels)] == pytest.approx(2.4)
