"""The push endpoint through `vigil up` as a process, driven by the real SDK client."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge

from vigil.sdk import push as sdk_push

from _support import free_port, wait_for


class Vigil:
    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / f"vigil-{self.port}.log"
        argv = [sys.executable, "-m", "vigil.cli", "up", "--data-dir", str(tmp / "data"),
                "--listen", f"127.0.0.1:{self.port}"]  # fmt: skip
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=tmp)
        wait_for(self._ready, timeout=30)

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"vigil exited: {self.log_path.read_text()[-3000:]}")
        try:
            return httpx.get(self.url + "/-/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def query(self, expr: str) -> list[dict]:
        r = httpx.get(self.url + "/api/v1/query", params={"query": expr}, timeout=10)
        assert r.status_code == 200, r.text
        return r.json()["data"]["result"]

    def groups(self) -> list[dict]:
        return httpx.get(self.url + "/api/v1/push/groups", timeout=5).json()["data"]

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def vigils(tmp_path: Path) -> Iterator[list[Vigil]]:
    started: list[Vigil] = []
    yield started
    for v in started:
        v.stop(signal.SIGKILL)


def _job_registry(rows: float) -> CollectorRegistry:
    reg = CollectorRegistry()
    Gauge("batch_rows", "Rows written by the last run.", ["table"], registry=reg).labels(
        "orders"
    ).set(rows)
    Counter("batch_runs", "Runs.", registry=reg).inc()
    return reg


def test_sdk_push_is_queryable_then_expires(tmp_path: Path, vigils: list[Vigil]) -> None:
    v = Vigil(tmp_path)
    vigils.append(v)
    key = {"instance": "worker/1"}  # a "/" travels base64-encoded
    t0 = time.time()
    status = sdk_push.push_metrics(
        _job_registry(42), job="nightly", url=v.url, grouping_key=key, ttl=3
    )
    assert status == 200
    [s] = v.query("batch_rows")
    assert s["metric"] == {
        "__name__": "batch_rows",
        "job": "nightly",
        "instance": "worker/1",
        "table": "orders",
    }
    assert s["value"][1] == "42"
    assert v.query('batch_runs_total{job="nightly"}')[0]["value"][1] == "1"
    [pt] = v.query('push_time_seconds{job="nightly"}')
    assert abs(float(pt["value"][1]) - t0) < 5
    [g] = v.groups()
    assert g["labels"] == {"job": "nightly", "instance": "worker/1"}
    assert g["ttlSeconds"] == 3 and g["series"] >= 2

    # a second job without TTL stays
    sdk_push.push_metrics(_job_registry(7), job="keeper", url=v.url)
    with pytest.raises(sdk_push.PushError, match=r"HTTP 400.*improper label name"):
        sdk_push.push_metrics(_job_registry(1), job="x", url=v.url, grouping_key={"a-b": "1"})

    # the TTL passes without a push: gone from instant queries at once (staleness
    # markers), not 5 minutes later
    wait_for(lambda: not v.query('batch_rows{job="nightly"}'), timeout=15)
    assert time.time() - t0 >= 3
    assert not v.query('push_time_seconds{job="nightly"}')
    assert [g["labels"]["job"] for g in v.groups()] == ["keeper"]
    assert v.query('batch_rows{job="keeper"}')[0]["value"][1] == "7"
    metrics = httpx.get(v.url + "/metrics").text
    assert "vigil_push_expired_groups_total 1" in metrics

    # DELETE through the SDK
    assert sdk_push.delete_metrics(job="keeper", url=v.url) == 202
    assert not v.query("batch_rows")
    assert v.groups() == []


def test_groups_survive_restart(tmp_path: Path, vigils: list[Vigil]) -> None:
    v = Vigil(tmp_path)
    vigils.append(v)
    sdk_push.push_metrics(_job_registry(5), job="kept", url=v.url, ttl=600)
    v.stop()
    again = Vigil(tmp_path)
    vigils.append(again)
    [g] = again.groups()
    assert g["labels"] == {"job": "kept"} and g["ttlSeconds"] == 600
    assert again.query('batch_rows{job="kept"}')[0]["value"][1] == "5"
