from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from sdk_helpers import free_port

from vigil.sdk import multiprocess

HERE = Path(__file__).parent

WORKER = """
import os, sys
from prometheus_client import Counter, Gauge, Histogram
c = Counter("jobs", "j", ["kind"])
h = Histogram("lat", "l", buckets=(1, 2))
g_sum = Gauge("g_sum", "g", multiprocess_mode="sum")
g_live = Gauge("g_live", "g", multiprocess_mode="livesum")
g_max = Gauge("g_max", "g", multiprocess_mode="max")
n = int(sys.argv[1])
c.labels("a").inc(n)
h.observe(0.5); h.observe(1.5)
g_sum.set(1); g_live.set(1); g_max.set(n)
"""


def run_worker(path: Path, n: int) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(path)}
    subprocess.run([sys.executable, "-c", WORKER, str(n)], env=env, check=True)


def collect(collector: object) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for metric in collector.collect():  # type: ignore[attr-defined]
        for s in metric.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_dead_workers_are_archived_exactly(tmp_path: Path) -> None:
    for n in range(1, 9):
        run_worker(tmp_path, n)
    before = len(list(tmp_path.glob("*.db")))
    assert before == 8 * 5  # counter, histogram, three gauge files per dead worker
    plain = collect(MultiProcessCollector(CollectorRegistry(), str(tmp_path)))
    ours = collect(multiprocess.VigilMultiProcessCollector(str(tmp_path)))
    names = sorted(p.name for p in tmp_path.glob("*.db"))
    assert names == [
        "counter_archive.db", "gauge_max_archive.db", "gauge_sum_archive.db", "histogram_archive.db",
    ]  # fmt: skip
    assert ours[("jobs_total", (("kind", "a"),))] == 36 == plain[("jobs_total", (("kind", "a"),))]
    assert ours[("lat_bucket", (("le", "1.0"),))] == 8
    assert ours[("lat_bucket", (("le", "+Inf"),))] == 16 and ours[("lat_count", ())] == 16
    assert ours[("lat_sum", ())] == pytest.approx(16.0)
    assert ours[("g_sum", ())] == 8 and ours[("g_max", ())] == 8
    assert ("g_live", ()) not in ours  # live gauges of dead processes are dropped
    # More dead workers fold into the same archive; totals stay exact.
    run_worker(tmp_path, 100)
    again = collect(multiprocess.VigilMultiProcessCollector(str(tmp_path)))
    assert again[("jobs_total", (("kind", "a"),))] == 136
    assert len(list(tmp_path.glob("*.db"))) == 4


def test_scrape_time_stays_flat_with_many_dead_workers(tmp_path: Path) -> None:
    for n in range(40):
        run_worker(tmp_path, n)
    plain_dir = tmp_path / "plain"
    plain_dir.mkdir()
    for f in tmp_path.glob("*.db"):
        (plain_dir / f.name).write_bytes(f.read_bytes())
    ours = multiprocess.VigilMultiProcessCollector(str(tmp_path))
    collect(ours)  # first scrape archives
    t0 = time.perf_counter()
    for _ in range(20):
        collect(ours)
    ours_s = (time.perf_counter() - t0) / 20
    plain = MultiProcessCollector(CollectorRegistry(), str(plain_dir))
    t0 = time.perf_counter()
    for _ in range(20):
        collect(plain)
    plain_s = (time.perf_counter() - t0) / 20
    print(f"scrape with 40 dead workers: vigil {ours_s * 1e3:.2f} ms, plain {plain_s * 1e3:.2f} ms")
    assert ours_s < plain_s


def _sum_requests(text: str, route: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith("http_requests_total{") and f'route="{route}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_gunicorn_restarting_workers_count_exactly(tmp_path: Path) -> None:
    port = free_port()
    mpdir = tmp_path / "mp"
    mpdir.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(mpdir)}
    log = tmp_path / "gunicorn.log"
    log_file = log.open("wb")
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "gunicorn", "-w", "2", "--max-requests", "7",
            "--max-requests-jitter", "0", "-b", f"127.0.0.1:{port}", "-c", str(HERE / "mp_gunicorn_conf.py"),
            "--chdir", str(HERE), "--log-level", "warning", "mp_app:app",
        ],
        env=env, stdout=subprocess.DEVNULL, stderr=log_file,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(base + "/health", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError(log.read_text()) from None
                time.sleep(0.1)
        n = 120
        with httpx.Client(timeout=5) as client:
            for i in range(n):
                assert client.get(f"{base}/work/{i}").status_code == 200
            # The last request is recorded as its body is closed; allow that moment.
            deadline = time.monotonic() + 5
            while True:
                text = client.get(base + "/metrics").text
                got = _sum_requests(text, "/work/<int:n>")
                if got == n or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
        assert got == n, text
        # ~18 worker lifetimes happened, but only live workers plus the archive have files.
        files = sorted(p.name for p in mpdir.glob("*.db"))
        pids = {f.rsplit("_", 1)[1] for f in files}
        assert len(pids) <= 4, files  # two workers, maybe one just respawned, archive
        assert "archive.db" in pids
    finally:
        proc.terminate()
        proc.wait(10)
        log_file.close()
