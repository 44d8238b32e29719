"""Process exporter against real processes, checked with prometheus_client's own collector."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from exporter_helpers import scrape, value, values
from prometheus_client import CollectorRegistry, ProcessCollector

from vigil.exporters import ExporterOptionError, create


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "37.5151"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_own_process_matches_prometheus_client() -> None:
    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=registry)
    ours = scrape(create("process"))
    theirs = {s.name: s.value for m in registry.collect() for s in m.samples}
    me = {"pid": str(os.getpid()), "name": Path("/proc/self/comm").read_text().strip()}
    assert value(ours, "process_start_time_seconds", **me) == pytest.approx(
        theirs["process_start_time_seconds"], abs=0.02
    )
    assert value(ours, "process_max_fds", **me) == theirs["process_max_fds"]
    assert value(ours, "process_virtual_memory_bytes", **me) == pytest.approx(
        theirs["process_virtual_memory_bytes"], rel=0.05
    )
    assert value(ours, "process_resident_memory_bytes", **me) == pytest.approx(
        theirs["process_resident_memory_bytes"], rel=0.05
    )
    assert value(ours, "process_cpu_seconds_total", **me) == pytest.approx(
        theirs["process_cpu_seconds_total"], abs=0.2
    )
    assert abs(value(ours, "process_open_fds", **me) - theirs["process_open_fds"]) <= 2
    assert (
        value(ours, "vigil_process_exporter_matched_processes", selector=f"pid={os.getpid()}") == 1
    )


def test_threads_are_counted() -> None:
    stop = threading.Event()
    workers = [threading.Thread(target=stop.wait) for _ in range(3)]
    for w in workers:
        w.start()
    try:
        s = scrape(create("process", {"pid": str(os.getpid())}))
        (threads,) = values(s, "process_threads").values()
        assert threads >= 4
    finally:
        stop.set()
        for w in workers:
            w.join()


def test_select_by_cmdline_name_and_pidfile(
    sleeper: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    pidfile = tmp_path / "sleep.pid"
    pidfile.write_text(f"{sleeper.pid}\n")
    s = scrape(
        create("process", {"cmdline": r"sleep 37\.5151", "name": "sleep", "pidfile": str(pidfile)})
    )
    labels = {"pid": str(sleeper.pid), "name": "sleep"}
    assert value(s, "process_threads", **labels) == 1
    assert (
        value(s, "vigil_process_exporter_matched_processes", selector=r"cmdline=sleep 37\.5151")
        == 1
    )
    assert value(s, "vigil_process_exporter_matched_processes", selector="name=sleep") >= 1
    assert value(s, "vigil_process_exporter_matched_processes", selector=f"pidfile={pidfile}") == 1


def test_gone_process_reports_zero_matches(sleeper: subprocess.Popen[bytes]) -> None:
    pid = sleeper.pid
    sleeper.kill()
    sleeper.wait()
    s = scrape(create("process", {"pid": str(pid), "pidfile": "/nonexistent/x.pid"}))
    assert value(s, "vigil_process_exporter_matched_processes", selector=f"pid={pid}") == 0
    assert (
        value(s, "vigil_process_exporter_matched_processes", selector="pidfile=/nonexistent/x.pid")
        == 0
    )
    assert values(s, "process_cpu_seconds_total") == {}


def test_bad_options() -> None:
    with pytest.raises(ExporterOptionError):
        create("process", {"pid": "abc"})
    with pytest.raises(ExporterOptionError):
        create("process", {"name": "("})
