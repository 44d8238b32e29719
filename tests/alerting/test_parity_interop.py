"""Parity with the real Alertmanager: the same config and the same timed sequence
of alerts and silences go to Alertmanager 0.25 and to `vigil alertmanager`;
each server's webhook notifications are captured by its own sink and compared
after normalising times (relative to the scenario start, within a second).

All scenarios run at once (a thread each; both servers of a scenario are driven
side by side), so the module takes about as long as the longest scenario.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from _support import free_port, wait_for

AM_BIN = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(AM_BIN is None, reason="Alertmanager binary not installed"),
]

TOLERANCE = 1.0  # seconds allowed between the two servers' notification times


class RecordingSink:
    """Webhook sink recording (arrival time on the monotonic clock, path, body)."""

    def __init__(self) -> None:
        self.records: list[tuple[float, str, Any]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                sink.records.append((time.monotonic(), self.path, json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    url: str
    sink: RecordingSink
    log: Path

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.sink.close()


def start_server(kind: str, config: str, workdir: Path) -> Server:
    sink = RecordingSink()
    workdir.mkdir(parents=True)
    cfg = workdir / "am.yml"
    cfg.write_text(config.replace("SINK", sink.url))
    port = free_port()
    listen = f"127.0.0.1:{port}"
    if kind == "alertmanager":
        assert AM_BIN is not None
        argv = [
            AM_BIN,
            f"--config.file={cfg}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address={listen}",
            "--cluster.listen-address=",
        ]
    else:
        argv = [
            sys.executable,
            "-m",
            "vigil.cli",
            "alertmanager",
            "--config",
            str(cfg),
            "--data-dir",
            str(workdir / "data"),
            "--listen",
            listen,
        ]
    log = workdir / "log.txt"
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    server = Server(kind, proc, f"http://{listen}", sink, log)

    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"{kind} exited:\n{log.read_text()}")
        try:
            return httpx.get(f"{server.url}/-/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(ready, timeout=30)
    return server


# -- scenarios -----------------------------------------------------------------
# A step is (seconds after the start, action). Times inside actions are also
# seconds after the start; `rfc(t0, s)` turns them into RFC3339.


def rfc(t0: float, s: float) -> str:
    return dt.datetime.fromtimestamp(t0 + s, dt.UTC).isoformat().replace("+00:00", "Z")


def alert(
    t0: float,
    labels: dict[str, str],
    start: float = 0.0,
    end: float | None = 120.0,
    **annotations: str,
) -> dict[str, Any]:
    # Without startsAt each server uses its own receive time, so a step delayed by
    # load cannot land one server on either side of the "older than group_wait" line.
    d: dict[str, Any] = {"labels": labels, "annotations": annotations}
    if start is None and end is not None:
        start = 0.0
    if start is not None:
        d["startsAt"] = rfc(t0, start)
    if end is not None:
        d["endsAt"] = rfc(t0, end)
    return d


@dataclass
class Ctx:
    """What an action sees: the server, the scenario start and ids it made."""

    server: Server
    t0: float
    ids: dict[str, str] = field(default_factory=dict)

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        r = httpx.post(f"{self.server.url}/api/v2/alerts", json=alerts, timeout=5)
        assert r.status_code == 200, (self.server.name, r.text)

    def silence(self, name: str, matchers: dict[str, str], start: float, end: float) -> None:
        body = {
            "matchers": [
                {"name": k, "value": v, "isRegex": False, "isEqual": True}
                for k, v in matchers.items()
            ],
            "startsAt": rfc(self.t0, start),
            "endsAt": rfc(self.t0, end),
            "createdBy": "parity",
            "comment": name,
        }
        r = httpx.post(f"{self.server.url}/api/v2/silences", json=body, timeout=5)
        assert r.status_code == 200, (self.server.name, r.text)
        self.ids[name] = r.json()["silenceID"]

    def expire(self, name: str) -> None:
        r = httpx.delete(f"{self.server.url}/api/v2/silence/{self.ids[name]}", timeout=5)
        assert r.status_code == 200, (self.server.name, r.text)


Action = Callable[[Ctx], None]


@dataclass
class Scenario:
    name: str
    config: str
    steps: list[tuple[float, Action]]
    duration: float


def _receivers(*names: str) -> str:
    return "receivers:\n" + "".join(
        f"  - name: {n}\n    webhook_configs:\n      - url: SINK/{n}\n        send_resolved: true\n"
        for n in names
    )


GROUPING = Scenario(
    "grouping",
    """
route:
  receiver: r0
  group_by: [alertname]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 5s
"""
    + _receivers("r0"),
    [
        # group_wait batches these; in the group, job and instance sort first, then
        # label sets with fewer labels.
        (
            0.0,
            lambda c: c.post_alerts(
                [
                    alert(c.t0, {"alertname": "A", "instance": "i2", "zone": "z"}, summary="two"),
                    alert(c.t0, {"alertname": "A", "instance": "i1", "zone": "z"}, summary="one"),
                    alert(c.t0, {"alertname": "A", "a": "1", "b": "2"}),
                    alert(c.t0, {"alertname": "A", "z": "1"}),
                    alert(c.t0, {"alertname": "A", "job": "j"}),
                ]
            ),
        ),
        # Older than group_wait: its new group flushes at once.
        (0.3, lambda c: c.post_alerts([alert(c.t0, {"alertname": "B"}, start=-3)])),
        # A late alert joins group A at its next group_interval flush.
        (2.2, lambda c: c.post_alerts([alert(c.t0, {"alertname": "A", "instance": "i3"})])),
        # Resolving one alert (endsAt now) is sent at the next flush (send_resolved).
        (
            9.6,
            lambda c: c.post_alerts(
                [alert(c.t0, {"alertname": "A", "instance": "i1", "zone": "z"}, end=9.6)]
            ),
        ),
    ],
    12.0,
)

RESOLVE = Scenario(
    "resolve",
    """
global:
  resolve_timeout: 2500ms
route:
  receiver: r0
  group_by: ['...']
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 4s
"""
    + _receivers("r0"),
    [
        # No endsAt: resolves by resolve_timeout unless re-posted.
        (0.0, lambda c: c.post_alerts([alert(c.t0, {"alertname": "T", "n": "1"}, end=None)])),
        (0.2, lambda c: c.post_alerts([alert(c.t0, {"alertname": "T", "n": "2"}, end=None)])),
        (0.4, lambda c: c.post_alerts([alert(c.t0, {"alertname": "E"}, start=0.4, end=4.4)])),
        (1.8, lambda c: c.post_alerts([alert(c.t0, {"alertname": "T", "n": "2"}, end=None)])),
        # Fires again after its resolved notification: its (empty) group still
        # exists, so the alert waits for the group's next tick, not group_wait.
        (7.6, lambda c: c.post_alerts([alert(c.t0, {"alertname": "E"}, start=7.6, end=30)])),
    ],
    11.0,
)

INHIBIT = Scenario(
    "inhibit",
    """
route:
  receiver: r0
  group_by: [alertname, cluster]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 1h
inhibit_rules:
  - source_matchers: [severity="critical"]
    target_matchers: [severity="warning"]
    equal: [cluster]
  - source_matchers: [alertname="NodeDown"]
    target_matchers: [alertname="Unreachable"]
  - source_matchers: [alertname=~"Loop.*"]
    target_matchers: [alertname=~"Loop.*"]
"""
    + _receivers("r0"),
    [
        (
            0.0,
            lambda c: c.post_alerts(
                [
                    alert(c.t0, {"alertname": "Down", "severity": "critical", "cluster": "a"}),
                    alert(c.t0, {"alertname": "NodeDown", "host": "h"}),
                    alert(c.t0, {"alertname": "LoopA"}),
                    alert(c.t0, {"alertname": "LoopB"}),
                ]
            ),
        ),
        (
            0.1,
            lambda c: c.post_alerts(
                [
                    alert(c.t0, {"alertname": "Slow", "severity": "warning", "cluster": "a"}),
                    alert(c.t0, {"alertname": "Slow", "severity": "warning", "cluster": "b"}),
                    alert(c.t0, {"alertname": "Unreachable", "host": "x"}),
                ]
            ),
        ),
        # The source resolves: its target is no longer inhibited.
        (
            4.5,
            lambda c: c.post_alerts(
                [
                    alert(
                        c.t0, {"alertname": "Down", "severity": "critical", "cluster": "a"}, end=4.5
                    )
                ]
            ),
        ),
    ],
    9.0,
)

SILENCE = Scenario(
    "silence",
    """
route:
  receiver: r0
  group_by: [alertname]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 1h
  routes:
    - matchers: [team="a"]
      receiver: r1
      continue: true
    - matchers: [team="a"]
      receiver: r2
    - matchers: [team="b"]
      receiver: r2
"""
    + _receivers("r0", "r1", "r2"),
    [
        (0.0, lambda c: c.silence("s1", {"alertname": "S"}, 0.0, 4.0)),
        (0.0, lambda c: c.silence("s2", {"alertname": "T"}, 0.0, 60.0)),
        (
            0.1,
            lambda c: c.post_alerts(
                [
                    alert(c.t0, {"alertname": "S", "team": "a"}),
                    alert(c.t0, {"alertname": "T", "team": "a"}),
                    alert(c.t0, {"alertname": "U", "team": "b"}),
                    alert(c.t0, {"alertname": "V"}),
                ]
            ),
        ),
        # s1 expires on its own at 4.0; s2 is expired through the API.
        (6.5, lambda c: c.expire("s2")),
    ],
    10.0,
)

SCENARIOS = [GROUPING, RESOLVE, INHIBIT, SILENCE]


# -- running and normalising ----------------------------------------------------


def _rel(t0: float, text: str) -> float | None:
    if text.startswith("0001-"):
        return None
    s = text.replace("Z", "+00:00")
    if "." in s:  # Go writes up to nanoseconds; Python parses microseconds.
        head, _, rest = s.partition(".")
        digits = "".join(ch for ch in rest if ch.isdigit())
        s = f"{head}.{digits[:6]}{rest[len(digits) :]}"
    return dt.datetime.fromisoformat(s).timestamp() - t0


def normalise(t0: float, m0: float, rec: tuple[float, str, Any]) -> dict[str, Any]:
    at, path, body = rec
    return {
        "t": at - m0,
        "path": path,
        "groupKey": body["groupKey"],
        "receiver": body["receiver"],
        "status": body["status"],
        "groupLabels": body["groupLabels"],
        "commonLabels": body["commonLabels"],
        "commonAnnotations": body["commonAnnotations"],
        "truncatedAlerts": body["truncatedAlerts"],
        "alerts": [
            {
                "status": a["status"],
                "labels": a["labels"],
                "annotations": a["annotations"],
                "startsAt": _rel(t0, a["startsAt"]),
                "endsAt": _rel(t0, a["endsAt"]),
                "fingerprint": a["fingerprint"],
            }
            for a in body["alerts"]
        ],
    }


def run_scenario(sc: Scenario, tmp: Path) -> dict[str, list[dict[str, Any]]]:
    servers = [
        start_server("alertmanager", sc.config, tmp / sc.name / "am"),
        start_server("vigil", sc.config, tmp / sc.name / "vigil"),
    ]
    try:
        t0, m0 = time.time(), time.monotonic()
        ctxs = [Ctx(s, t0) for s in servers]
        for at, action in sc.steps:
            time.sleep(max(0.0, m0 + at - time.monotonic()))
            for c in ctxs:
                action(c)
        time.sleep(max(0.0, m0 + sc.duration - time.monotonic()))
        return {
            s.name: [normalise(t0, m0, r) for r in sorted(s.sink.records, key=lambda r: r[0])]
            for s in servers
        }
    finally:
        for s in servers:
            s.stop()


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("parity")
    with ThreadPoolExecutor(len(SCENARIOS)) as pool:
        futures = {sc.name: pool.submit(run_scenario, sc, tmp) for sc in SCENARIOS}
        yield {name: f for name, f in futures.items()}


def _by_group(notes: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for n in notes:
        out.setdefault((n["path"], n["groupKey"]), []).append(n)
    return out


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) <= TOLERANCE


def differences(am: list[dict[str, Any]], vg: list[dict[str, Any]]) -> list[str]:
    """Human-readable differences; notifications are compared per (receiver path, group)."""
    out: list[str] = []
    ga, gv = _by_group(am), _by_group(vg)
    for key in sorted(set(ga) | set(gv)):
        la, lv = ga.get(key, []), gv.get(key, [])
        if len(la) != len(lv):
            out.append(
                f"{key}: {len(la)} notifications from Alertmanager at "
                f"{[round(n['t'], 2) for n in la]}, {len(lv)} from Vigil at "
                f"{[round(n['t'], 2) for n in lv]}"
            )
            continue
        for i, (na, nv) in enumerate(zip(la, lv, strict=True)):
            where = f"{key}[{i}]"
            if not _close(na["t"], nv["t"]):
                out.append(f"{where}: sent at {na['t']:.2f} vs {nv['t']:.2f}")
            for f in (
                "receiver",
                "status",
                "groupLabels",
                "commonLabels",
                "commonAnnotations",
                "truncatedAlerts",
            ):
                if na[f] != nv[f]:
                    out.append(f"{where}: {f} {na[f]!r} vs {nv[f]!r}")
            aa, av = na["alerts"], nv["alerts"]
            if [a["labels"] for a in aa] != [a["labels"] for a in av]:
                out.append(
                    f"{where}: alerts {[a['labels'] for a in aa]} vs {[a['labels'] for a in av]}"
                )
                continue
            for x, y in zip(aa, av, strict=True):
                for f in ("status", "annotations", "fingerprint"):
                    if x[f] != y[f]:
                        out.append(f"{where} {x['labels']}: {f} {x[f]!r} vs {y[f]!r}")
                for f in ("startsAt", "endsAt"):
                    if not _close(x[f], y[f]):
                        out.append(f"{where} {x['labels']}: {f} {x[f]} vs {y[f]}")
    return out


@pytest.mark.parametrize("name", [sc.name for sc in SCENARIOS])
def test_same_notifications_as_alertmanager(results: dict[str, Any], name: str) -> None:
    got = results[name].result(timeout=120)
    am, vg = got["alertmanager"], got["vigil"]
    assert am, "Alertmanager sent nothing: the scenario proves nothing"
    diffs = differences(am, vg)
    assert not diffs, "\n".join(diffs)
