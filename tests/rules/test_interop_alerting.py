"""Rules and alerting across process boundaries, against the real tools.

A: the real Prometheus evaluates an alerting rule and sends to `vigil up
   --alertmanager-config`; Vigil's routing delivers it to a webhook sink.
B: Vigil's rule engine sends to the real Alertmanager, which delivers to the sink;
   a rule reload makes the alert resolve and the resolved notification arrives.

Both use the same rule, so the label and annotation templates are checked on both
engines: `$value`, `$externalLabels` and rule labels.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from _support import ServerProcess, free_port, wait_for

PROM_BIN = shutil.which("prometheus")
AM_BIN = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")

pytestmark = pytest.mark.interop

RULES = """
groups:
  - name: interop
    rules:
      - alert: InteropAlways
        expr: {expr}
        for: 0s
        labels:
          severity: page
        annotations:
          summary: "value is {{{{ $value }}}}"
          description: "from {{{{ $externalLabels.cluster }}}}"
"""

AM_CONFIG = """
route:
  receiver: hook
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: {sink}/hook
        send_resolved: true
"""


class Sink:
    """Webhook receiver recording every JSON body it is posted."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                sink.bodies.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def alerts(self, status: str) -> list[dict[str, Any]]:
        """Alerts of `status` ("firing"/"resolved") in everything received so far."""
        return [a for b in list(self.bodies) for a in b["alerts"] if a["status"] == status]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sink() -> Iterator[Sink]:
    s = Sink()
    yield s
    s.close()


@pytest.fixture
def procs() -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    yield started
    for p in reversed(started):
        p.stop()


def start_vigil(tmp: Path, config: str, *extra: str) -> ServerProcess:
    port = free_port()
    cfg = tmp / "vigil.yml"
    cfg.write_text(config)
    argv = [
        sys.executable,
        "-m",
        "vigil.cli",
        "up",
        "--config",
        str(cfg),
        "--data-dir",
        str(tmp / "vigil-data"),
        "--listen",
        f"127.0.0.1:{port}",
        *extra,
    ]
    return ServerProcess("vigil", argv, port, tmp)


def parse_time(s: str) -> dt.datetime:
    """RFC 3339 with up to nanoseconds (Go prints 9 digits, Python parses 6)."""
    head, _, frac = s.rstrip("Z").partition(".")
    micros = int((frac + "000000")[:6]) if frac else 0
    return dt.datetime.fromisoformat(head).replace(microsecond=micros, tzinfo=dt.UTC)


def check_alert(a: dict[str, Any], cluster: str, generator_prefix: str) -> None:
    assert a["labels"] == {"alertname": "InteropAlways", "severity": "page", "cluster": cluster}
    assert a["annotations"] == {"summary": "value is 7", "description": f"from {cluster}"}
    assert a["generatorURL"].startswith(generator_prefix + "/graph?g0.expr=vector%287%29")


@pytest.mark.skipif(PROM_BIN is None, reason="Prometheus binary not installed")
def test_prometheus_alerts_route_through_vigil(tmp_path: Path, sink: Sink, procs) -> None:
    am_cfg = tmp_path / "am.yml"
    am_cfg.write_text(AM_CONFIG.format(sink=sink.url))
    vigil = start_vigil(
        tmp_path, "vigil: {self_scrape: false}\n", "--alertmanager-config", str(am_cfg)
    )
    procs.append(vigil)

    (tmp_path / "rules.yml").write_text(RULES.format(expr="vector(7)"))
    prom_port = free_port()
    prom_url = f"http://127.0.0.1:{prom_port}"
    (tmp_path / "prometheus.yml").write_text(
        f"""
global:
  evaluation_interval: 1s
  external_labels: {{cluster: prom-interop}}
rule_files: [rules.yml]
alerting:
  alertmanagers:
    - static_configs: [{{targets: ['127.0.0.1:{vigil.url.rsplit(":", 1)[1]}']}}]
"""
    )
    vigil.wait_ready()
    assert PROM_BIN is not None
    prom = ServerProcess(
        "prometheus",
        [
            PROM_BIN,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'prom-data'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
            f"--web.external-url={prom_url}/",
            # Alerts sent before notify discovery's first update (throttled to 5 s)
            # are dropped; a short resend delay gets the next one through at once.
            "--rules.alert.resend-delay=1s",
        ],
        prom_port,
        tmp_path,
    )
    procs.append(prom)
    prom.wait_ready()

    t0 = time.monotonic()
    firing = wait_for(lambda: sink.alerts("firing"), timeout=30)
    assert time.monotonic() - t0 < 30
    check_alert(firing[0], "prom-interop", prom_url)
    body = sink.bodies[0]
    assert body["receiver"] == "hook"
    assert body["groupLabels"] == {"alertname": "InteropAlways"}
    assert body["externalURL"] == vigil.url
    # Vigil's own API v2 shows the alert it routed, as the real Alertmanager would.
    ams = httpx.get(vigil.url + "/api/v2/alerts", timeout=5).json()
    assert [a["labels"]["alertname"] for a in ams] == ["InteropAlways"]
    assert ams[0]["status"]["state"] == "active"
    assert ams[0]["receivers"] == [{"name": "hook"}]


@pytest.mark.skipif(AM_BIN is None, reason="Alertmanager binary not installed")
def test_vigil_rules_alert_real_alertmanager(tmp_path: Path, sink: Sink, procs) -> None:
    am_cfg = tmp_path / "am.yml"
    am_cfg.write_text(AM_CONFIG.format(sink=sink.url))
    am_port = free_port()
    assert AM_BIN is not None
    am = ServerProcess(
        "alertmanager",
        [
            AM_BIN,
            f"--config.file={am_cfg}",
            f"--storage.path={tmp_path / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{am_port}",
            "--cluster.listen-address=",
        ],
        am_port,
        tmp_path,
    )
    procs.append(am)

    rules = tmp_path / "rules.yml"
    rules.write_text(RULES.format(expr="vector(7)"))
    vigil = start_vigil(
        tmp_path,
        f"""
global:
  evaluation_interval: 1s
  external_labels: {{cluster: vigil-interop}}
rule_files: [rules.yml]
alerting:
  alertmanagers:
    - static_configs: [{{targets: ['127.0.0.1:{am_port}']}}]
vigil: {{self_scrape: false}}
""",
    )
    procs.append(vigil)
    am.wait_ready()
    vigil.wait_ready()

    firing = wait_for(lambda: sink.alerts("firing"), timeout=30)
    check_alert(firing[0], "vigil-interop", vigil.url)

    # The real Alertmanager accepted Vigil's payload as Vigil built it.
    ams = httpx.get(am.url + "/api/v2/alerts", timeout=5).json()
    assert len(ams) == 1, ams
    check_alert(ams[0], "vigil-interop", vigil.url)
    assert ams[0]["status"]["state"] == "active"
    vigil_alerts = httpx.get(vigil.url + "/api/v1/alerts", timeout=5).json()["data"]["alerts"]
    assert [a["state"] for a in vigil_alerts] == ["firing"]
    # `for: 0s`: the alert fired at the evaluation that made it active.
    assert parse_time(ams[0]["startsAt"]) == parse_time(vigil_alerts[0]["activeAt"])
    assert parse_time(ams[0]["endsAt"]) > parse_time(ams[0]["startsAt"])

    # The same rule over an empty result: the alert resolves and Vigil says so.
    rules.write_text(RULES.format(expr="vector(7) < 0"))
    r = httpx.post(vigil.url + "/-/reload", timeout=10)
    assert r.status_code == 200, r.text
    resolved = wait_for(lambda: sink.alerts("resolved"), timeout=30)
    assert resolved[0]["labels"] == firing[0]["labels"]
    assert parse_time(resolved[0]["startsAt"]) == parse_time(firing[0]["startsAt"])
    assert parse_time(resolved[0]["endsAt"]) > parse_time(resolved[0]["startsAt"])
    ams = httpx.get(am.url + "/api/v2/alerts", params={"active": "true"}, timeout=5).json()
    assert ams == []
