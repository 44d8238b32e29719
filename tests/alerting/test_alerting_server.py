"""The notification pipeline as users run it: `vigil alertmanager`, `vigil up
--alertmanager-config`, and `vigil test routes` beside the real amtool."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from _support import free_port, wait_for

AM_CONFIG = """
route:
  receiver: default
  group_by: [alertname]
  group_wait: 1s
  routes:
    - matchers: ['severity="critical"']
      receiver: pager
      continue: true
    - matchers: ['team=~"db|storage"']
      receiver: dba
    - match_re: {service: "^(api|web)$"}
      receiver: web
receivers:
  - name: default
  - name: pager
  - name: dba
  - name: web
"""

LABEL_TABLE = [
    ["severity=critical"],
    ["severity=critical", "team=db"],
    ["team=storage"],
    ["service=api"],
    ["service=apis"],
    ["severity=warning", "team=web"],
    [],
]


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("labels", LABEL_TABLE, ids=lambda ls: ",".join(ls) or "none")
def test_routes_command_prints_what_amtool_prints(tmp_path: Path, labels: list[str]) -> None:
    cfg = tmp_path / "am.yml"
    cfg.write_text(AM_CONFIG)
    ours = _run(sys.executable, "-m", "vigil.cli", "test", "routes", str(cfg), *labels)
    assert ours.returncode == 0, ours.stderr
    if shutil.which("amtool") is None:
        pytest.skip("amtool not installed")
    theirs = _run("amtool", "config", "routes", "test", f"--config.file={cfg}", *labels)
    assert ours.stdout.strip() == theirs.stdout.strip()


def test_routes_command_verify_receivers(tmp_path: Path) -> None:
    cfg = tmp_path / "am.yml"
    cfg.write_text(AM_CONFIG)
    base = [sys.executable, "-m", "vigil.cli", "test", "routes", str(cfg)]
    ok = _run(*base, "--verify.receivers=pager,dba", "severity=critical", "team=db")
    assert ok.returncode == 0
    bad = _run(*base, "--verify.receivers=default", "severity=critical")
    assert bad.returncode == 1


def test_routes_command_rejects_bad_label_and_bad_config(tmp_path: Path) -> None:
    cfg = tmp_path / "am.yml"
    cfg.write_text(AM_CONFIG)
    r = _run(sys.executable, "-m", "vigil.cli", "test", "routes", str(cfg), "novalue")
    assert r.returncode == 2 and "name=value" in r.stderr
    cfg.write_text("route: {receiver: missing}\nreceivers: [{name: x}]\n")
    r = _run(sys.executable, "-m", "vigil.cli", "test", "routes", str(cfg), "a=b")
    assert r.returncode == 1 and "am.yml:" in r.stderr


def _post_alert(url: str, name: str) -> None:
    r = httpx.post(
        url + "/api/v2/alerts",
        json=[{"labels": {"alertname": name, "severity": "critical"}, "annotations": {}}],
        timeout=5,
    )
    assert r.status_code == 200, r.text


def test_standalone_alertmanager_serves_amtool_and_reloads(tmp_path: Path) -> None:
    cfg = tmp_path / "am.yml"
    cfg.write_text(AM_CONFIG)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(tmp_path / "am.log", "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "vigil.cli",
                "alertmanager",
                "--config",
                str(cfg),
                "--data-dir",
                str(tmp_path / "amdata"),
                "--listen",
                f"127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for(lambda: _ready(url), timeout=30)
            _post_alert(url, "DiskFull")
            alerts = httpx.get(url + "/api/v2/alerts").json()
            assert [a["labels"]["alertname"] for a in alerts] == ["DiskFull"]
            if shutil.which("amtool"):
                q = _run("amtool", f"--alertmanager.url={url}", "alert", "query", "-o", "json")
                assert q.returncode == 0, q.stderr
                assert "DiskFull" in q.stdout
            # A broken config on SIGHUP is refused; the server keeps serving the old one.
            cfg.write_text("route: {receiver: nowhere}\n")
            proc.send_signal(signal.SIGHUP)
            time.sleep(0.5)
            r = httpx.post(url + "/-/reload")
            assert r.status_code == 500 and "nowhere" in r.text
            assert httpx.get(url + "/api/v2/status").status_code == 200
            assert proc.poll() is None
        finally:
            proc.terminate()
            proc.wait(20)
    assert (tmp_path / "amdata").is_dir()


def _ready(url: str) -> bool:
    try:
        return httpx.get(url + "/-/ready", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_vigil_up_runs_alertmanager_in_process(tmp_path: Path) -> None:
    cfg = tmp_path / "am.yml"
    cfg.write_text(AM_CONFIG)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(tmp_path / "vigil.log", "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "vigil.cli",
                "up",
                "--data-dir",
                str(tmp_path / "d"),
                "--listen",
                f"127.0.0.1:{port}",
                "--alertmanager-config",
                str(cfg),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for(lambda: _ready(url), timeout=30)
            _post_alert(url, "HighLatency")
            groups = httpx.get(url + "/api/v2/alerts/groups").json()
            assert any(g["receiver"]["name"] == "pager" for g in groups)
            assert httpx.get(url + "/api/v1/status/buildinfo").json()["status"] == "success"
            assert httpx.post(url + "/-/reload").status_code == 200
        finally:
            proc.terminate()
            proc.wait(20)
        assert proc.returncode == 0, (tmp_path / "vigil.log").read_text()
