"""End to end: `vigil up` as a real process, used the way a person would."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from _support import ServerProcess, free_port, wait_for


class VigilProcess(ServerProcess):
    """`vigil up` on a free port, with an optional config file, in `tmp`."""

    def __init__(self, tmp: Path, config: str | None, data_dir: Path | None = None) -> None:
        port = free_port()
        self.data_dir = data_dir or tmp / "data"
        self.config = tmp / "vigil.yml"
        argv = [
            sys.executable,
            "-m",
            "vigil.cli",
            "up",
            "--data-dir",
            str(self.data_dir),
            "--listen",
            f"127.0.0.1:{port}",
        ]
        if config is not None:
            self.config.write_text(config)
            argv += ["--config", str(self.config)]
        super().__init__(f"vigil-{port}", argv, port, tmp)

    def wait_ready(self, timeout: float = 30, path: str = "/-/ready") -> None:
        super().wait_ready(timeout, path)

    def query(self, expr: str) -> list[dict]:
        r = httpx.get(self.url + "/api/v1/query", params={"query": expr}, timeout=10)
        assert r.status_code == 200, r.text
        return r.json()["data"]["result"]


@pytest.fixture
def vigil_factory(tmp_path: Path) -> Iterator:
    procs: list[VigilProcess] = []

    def make(config: str | None = None, data_dir: Path | None = None) -> VigilProcess:
        p = VigilProcess(tmp_path, config, data_dir)
        procs.append(p)
        return p

    yield make
    for p in procs:
        p.stop(signal.SIGKILL)


SELF_FAST = """
global: {scrape_interval: 1s, scrape_timeout: 1s}
"""


def test_fresh_start_scrapes_itself(vigil_factory) -> None:
    v = vigil_factory(SELF_FAST)
    v.wait_ready()
    # up can read 0 for a scrape that missed its 1 s timeout on a loaded machine.
    wait_for(lambda: v.query('up{job="vigil"} == 1'))
    names = httpx.get(v.url + "/api/v1/label/__name__/values").json()["data"]
    assert "scrape_duration_seconds" in names
    assert "process_resident_memory_bytes" in names


def test_default_config_and_defaults_listen_on_loopback(vigil_factory) -> None:
    v = vigil_factory(None)
    v.wait_ready()
    flags = httpx.get(v.url + "/api/v1/status/flags").json()["data"]
    assert flags["storage.tsdb.path"] == str(v.data_dir)
    assert httpx.get(v.url + "/-/healthy").status_code == 200


def test_sighup_reload_and_bad_reload_keeps_old_config(vigil_factory, tmp_path: Path) -> None:
    v = vigil_factory(SELF_FAST)
    v.wait_ready()
    v.config.write_text(
        SELF_FAST
        + "scrape_configs:\n  - job_name: extra\n    static_configs: [{targets: ['127.0.0.1:1']}]\n"
    )
    v.proc.send_signal(signal.SIGHUP)
    wait_for(
        lambda: any(
            t["labels"]["job"] == "extra"
            for t in httpx.get(v.url + "/api/v1/targets").json()["data"]["activeTargets"]
        )
    )
    v.config.write_text("global: {scrape_interval: nonsense}\n")
    r = httpx.post(v.url + "/-/reload")
    assert r.status_code == 500
    assert "scrape_interval" in r.text
    targets = httpx.get(v.url + "/api/v1/targets").json()["data"]["activeTargets"]
    assert any(t["labels"]["job"] == "extra" for t in targets)
    cfg = httpx.get(v.url + "/api/v1/status/config").json()["data"]["yaml"]
    assert "extra" in cfg


def test_broken_config_refuses_to_start_with_position(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yml"
    cfg.write_text(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: a\n    bogus_key: 1\n"
    )
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "vigil.cli",
            "up",
            "--config",
            str(cfg),
            "--data-dir",
            str(tmp_path / "d"),
            "--listen",
            f"127.0.0.1:{free_port()}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode != 0
    assert "bad.yml:5" in r.stderr


def test_second_process_on_same_data_dir_is_refused(vigil_factory, tmp_path: Path) -> None:
    v = vigil_factory(SELF_FAST)
    v.wait_ready()
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "vigil.cli",
            "up",
            "--data-dir",
            str(v.data_dir),
            "--listen",
            f"127.0.0.1:{free_port()}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode != 0
    assert str(v.data_dir) in r.stderr + r.stdout


def test_kill_9_keeps_acknowledged_remote_writes(vigil_factory) -> None:
    from vigil.web.remote_write import encode_write_request

    v = vigil_factory(
        "global: {scrape_interval: 1s}\nvigil: {wal_fsync: always, self_scrape: false}\n"
    )
    v.wait_ready()
    now_ms = int(time.time() * 1000)
    acked = []
    for i in range(50):
        body = encode_write_request(
            [({"__name__": "crash_test", "i": str(i % 5)}, [(now_ms + i, float(i))])]
        )
        r = httpx.post(
            v.url + "/api/v1/write",
            content=body,
            headers={
                "Content-Encoding": "snappy",
                "Content-Type": "application/x-protobuf",
                "X-Prometheus-Remote-Write-Version": "0.1.0",
            },
        )
        assert r.status_code == 204, r.text
        acked.append(i)
    v.stop(signal.SIGKILL)
    v2 = vigil_factory(
        "global: {scrape_interval: 1s}\nvigil: {self_scrape: false}\n", data_dir=v.data_dir
    )
    v2.wait_ready()
    r = httpx.get(
        v2.url + "/api/v1/query",
        params={"query": "count_over_time(crash_test[10m])", "time": now_ms / 1000 + 60},
    ).json()
    total = sum(int(float(s["value"][1])) for s in r["data"]["result"])
    assert total == len(acked)


def test_import_then_query(tmp_path: Path, vigil_factory) -> None:
    data = tmp_path / "backfill.om"
    t0 = int(time.time()) - 30 * 86400
    lines = ["# TYPE old_metric gauge"]
    lines += [f'old_metric{{k="v"}} {i} {t0 + 60 * i}' for i in range(100)]
    data.write_text("\n".join(lines) + "\n# EOF\n")
    ddir = tmp_path / "imported"
    r = subprocess.run(
        [sys.executable, "-m", "vigil.cli", "import", str(data), "--data-dir", str(ddir)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    v = vigil_factory("vigil: {self_scrape: false, retention_time: 90d}\n", data_dir=ddir)
    v.wait_ready()
    r = httpx.get(
        v.url + "/api/v1/query", params={"query": "old_metric", "time": t0 + 60 * 99}
    ).json()
    assert r["data"]["result"][0]["value"][1] == "99"


def test_rules_record_and_alert_into_in_process_alertmanager(vigil_factory, tmp_path: Path) -> None:
    (tmp_path / "rules.yml").write_text(
        """
groups:
  - name: self
    interval: 1s
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
      - alert: VigilIsUp
        expr: up{job="vigil"} == 1
        labels: {severity: critical}
        annotations: {summary: "{{ $labels.instance }} is up ({{ $value }})"}
"""
    )
    (tmp_path / "am.yml").write_text(
        "route: {receiver: default, group_wait: 1s}\nreceivers: [{name: default}]\n"
    )
    v = vigil_factory(SELF_FAST + "rule_files: [rules.yml]\nvigil: {alertmanager_config: am.yml}\n")
    v.wait_ready()
    wait_for(lambda: v.query("job:up:sum"), timeout=30)
    alerts = wait_for(lambda: httpx.get(v.url + "/api/v2/alerts").json(), timeout=30)
    assert alerts[0]["labels"]["alertname"] == "VigilIsUp"
    assert alerts[0]["annotations"]["summary"].endswith("is up (1)")
    rules = httpx.get(v.url + "/api/v1/rules").json()["data"]["groups"][0]["rules"]
    assert {r["type"] for r in rules} == {"recording", "alerting"}
    assert httpx.get(v.url + "/api/v1/alerts").json()["data"]["alerts"][0]["state"] == "firing"


def test_bad_rule_file_on_reload_keeps_old_rules(vigil_factory, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text("groups: [{name: g, interval: 1s, rules: [{record: a:b, expr: up}]}]\n")
    v = vigil_factory(SELF_FAST + "rule_files: [rules.yml]\n")
    v.wait_ready()
    rules.write_text("groups: [{name: g, rules: [{record: a:b, expr: 'sum(('}]}]\n")
    r = httpx.post(v.url + "/-/reload")
    assert r.status_code == 500 and "rules.yml" in r.text
    groups = httpx.get(v.url + "/api/v1/rules").json()["data"]["groups"]
    assert groups[0]["rules"][0]["query"] == "up"
