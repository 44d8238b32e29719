"""/api/v1/rules and /api/v1/alerts through an ASGI client."""

from __future__ import annotations

import warnings
from pathlib import Path

from starlette.applications import Starlette

from vigil.model.labels import Labels
from vigil.promql.engine import Engine
from vigil.rules.manager import RuleManager
from vigil.storage.memory import MemoryStorage
from vigil.web.rules_api import create_rules_routes

with warnings.catch_warnings():
    # Starlette deprecates its httpx-based TestClient in favour of httpx2; still works.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

M = 60_000
RULES = """
groups:
- name: g
  interval: 30s
  rules:
  - record: job:x:sum
    expr: sum by(job)(x)
  - alert: High
    expr: x > 5
    for: 1m
    labels: {severity: page}
    annotations: {summary: "{{ $value }}"}
  - alert: Broken
    expr: x > 5
    labels: {instance: same}
"""


def _client(tmp_path: Path) -> tuple[TestClient, RuleManager]:
    store = MemoryStorage()
    app = store.appender()
    for i in range(5):
        app.append(Labels.from_dict({"__name__": "x", "job": "a", "instance": "1"}), i * M, 10.0)
        app.append(Labels.from_dict({"__name__": "x", "job": "a", "instance": "2"}), i * M, 7.0)
    app.commit()
    f = tmp_path / "r.yml"
    f.write_text(RULES)
    mgr = RuleManager(query=Engine(store).instant_query, appendable=store)
    mgr.apply([str(f)], M)
    [g] = mgr.groups()
    g.evaluate(0)
    g.evaluate(30_000)
    return TestClient(Starlette(routes=create_rules_routes(mgr))), mgr


def test_rules_shape(tmp_path: Path) -> None:
    client, _mgr = _client(tmp_path)
    body = client.get("/api/v1/rules").json()
    assert body["status"] == "success"
    [g] = body["data"]["groups"]
    assert g["name"] == "g" and g["interval"] == 30.0 and g["file"].endswith("r.yml")
    assert g["lastEvaluation"] == "1970-01-01T00:00:30Z"
    rec, high, broken = g["rules"]
    assert rec == {
        "name": "job:x:sum",
        "query": "sum by (job) (x)",
        "health": "ok",
        "evaluationTime": rec["evaluationTime"],
        "lastEvaluation": "1970-01-01T00:00:30Z",
        "type": "recording",
    }
    assert high["type"] == "alerting" and high["state"] == "pending" and high["duration"] == 60.0
    assert high["labels"] == {"severity": "page"} and high["annotations"] == {
        "summary": "{{ $value }}"
    }
    assert high["alerts"][0] == {
        "labels": {"alertname": "High", "instance": "1", "job": "a", "severity": "page"},
        "annotations": {"summary": "10"},
        "state": "pending",
        "activeAt": "1970-01-01T00:00:00Z",
        "value": "1e+01",
    }
    assert broken["health"] == "err" and "same labelset" in broken["lastError"]
    assert "lastError" not in high


def test_rules_filters_and_alerts(tmp_path: Path) -> None:
    client, _ = _client(tmp_path)
    only_rec = client.get("/api/v1/rules?type=record").json()["data"]["groups"][0]["rules"]
    assert [r["name"] for r in only_rec] == ["job:x:sum"]
    named = client.get("/api/v1/rules", params={"rule_name[]": "High"}).json()["data"]["groups"]
    assert [r["name"] for r in named[0]["rules"]] == ["High"]
    assert client.get("/api/v1/rules", params={"rule_group[]": "nope"}).json()["data"] == {
        "groups": []
    }
    bad = client.get("/api/v1/rules?type=x")
    assert bad.status_code == 400 and bad.json()["errorType"] == "bad_data"
    alerts = client.get("/api/v1/alerts").json()["data"]["alerts"]
    assert sorted(a["labels"]["instance"] for a in alerts) == ["1", "2"]
    assert {a["state"] for a in alerts} == {"pending"}
