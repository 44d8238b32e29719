"""Vigil's extensions beyond Alertmanager: alert history, acknowledgement and
statistics, through the API v2 routes (ASGI client) with an injected clock."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from vigil.alerting.alert import Alert, format_time
from vigil.alerting.alertmanager import Alertmanager
from vigil.alerting.api_v2 import create_alertmanager_routes
from vigil.alerting.config import load_config
from vigil.alerting.history import History
from vigil.model.labels import Labels

Clock = Any  # conftest's fake clock
Sink = Any  # conftest's HTTP sink

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def config(url: str) -> Any:
    return load_config(
        f"""
route:
  receiver: hook
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 1h
  routes:
  - matchers: [team="broken"]
    receiver: broken
receivers:
- name: hook
  webhook_configs:
  - url: {url}/hook
- name: broken
  webhook_configs:
  - url: {url}/broken
inhibit_rules:
- source_matchers: [severity="critical"]
  target_matchers: [severity="warning"]
  equal: [alertname]
"""
    )


def alert(clock: Clock, name: str = "A", summary: str = "bad", **labels: str) -> Alert:
    return Alert(
        Labels.from_dict({"alertname": name, **labels}),
        Labels.from_dict({"summary": summary}),
        starts_at=clock(),
        ends_at=clock() + 10**6,
        updated_at=clock(),
    )


class Harness:
    def __init__(self, sink: Sink, clock: Clock, data: Path) -> None:
        self.sink, self.clock, self.data = sink, clock, data
        self.am = self.start()

    def start(self) -> Alertmanager:
        self.am = Alertmanager(config(self.sink.url), data_dir=self.data, now=self.clock)
        app = Starlette(routes=create_alertmanager_routes(self.am))
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://am")
        return self.am

    async def restart(self) -> Alertmanager:
        await self.http.aclose()
        await self.am.stop()
        return self.start()

    async def step(self, seconds: float) -> None:
        self.clock.advance(seconds)
        await self.am.tick()

    async def history(self, **params: Any) -> list[dict[str, Any]]:
        r = await self.http.get("/api/v2/history", params=params)
        assert r.status_code == 200, r.text
        return list(r.json())

    def hook_bodies(self) -> list[Any]:
        return [r["body"] for r in self.sink.requests if r["path"] == "/hook"]


@pytest.fixture
async def h(sink: Sink, clock: Clock, tmp_path: Path) -> Any:
    harness = Harness(sink, clock, tmp_path)
    yield harness
    await harness.http.aclose()
    await harness.am.stop()


async def test_history_records_the_life_of_alerts_and_silences(h: Harness) -> None:
    t0 = h.clock()
    crit = alert(h.clock, "Disk", severity="critical")
    warn = alert(h.clock, "Disk", severity="warning")
    h.am.put_alerts([crit, warn])
    await h.step(30)
    r = await h.http.post(
        "/api/v2/silences",
        json={
            "matchers": [{"name": "alertname", "value": "Disk", "isRegex": False}],
            "startsAt": format_time(h.clock()),
            "endsAt": format_time(h.clock() + 600),
            "createdBy": "ops",
            "comment": "maintenance",
        },
    )
    sid = r.json()["silenceID"]
    await h.step(60)
    assert (await h.http.delete(f"/api/v2/silence/{sid}")).status_code == 200
    await h.step(60)
    resolved = Alert(crit.labels, crit.annotations, crit.starts_at, h.clock(), "", h.clock())
    h.am.put_alerts([resolved])
    await h.step(60)

    kinds = [(e["kind"], e["labels"].get("severity")) for e in await h.history()]
    assert kinds == [
        ("firing", "critical"),
        ("firing", "warning"),
        ("inhibited", "warning"),
        ("notification", "critical"),
        ("silence_created", None),
        ("silenced", "critical"),
        ("silenced", "warning"),
        ("silence_expired", None),
        ("unsilenced", "critical"),
        ("unsilenced", "warning"),
        ("resolved", "critical"),
        ("uninhibited", "warning"),
    ]
    note = (await h.history(kind="notification"))[0]
    assert note["receiver"] == "hook" and note["integration"] == "webhook/0"
    assert note["success"] is True and note["alerts"] == [crit.fingerprint]
    # Time range (inclusive, RFC3339 or Unix seconds) and label filters.
    early = await h.history(start=t0, end=format_time(t0 + 30))
    assert {e["kind"] for e in early} == {
        "firing",
        "inhibited",
        "notification",
        "silence_created",
        "silenced",
    }
    assert {e["kind"] for e in await h.history(end=t0 + 29.9)} == {"firing", "inhibited"}
    warn_only = await h.history(filter='severity="warning"', kind=["silenced", "unsilenced"])
    assert [e["kind"] for e in warn_only] == ["silenced", "unsilenced"]
    assert (await h.history(ref=sid))[0]["comment"] == "maintenance"
    assert (await h.http.get("/api/v2/history", params={"kind": "nope"})).status_code == 400
    assert (await h.http.get("/api/v2/history", params={"filter": "{"})).status_code == 400

    # Persisted: a restart keeps the history and does not record the same transitions again.
    before = await h.history()
    await h.restart()
    h.am.put_alerts([warn])
    await h.step(1)
    after = await h.history()
    assert after[: len(before)] == before
    assert [e["kind"] for e in after[len(before) :]] == ["notification"]  # warning, now uninhibited


async def test_history_log_is_bounded(tmp_path: Path, clock: Clock) -> None:
    hist = History(tmp_path, clock, max_bytes=2000)
    for i in range(200):
        hist.record("firing", Labels.from_dict({"alertname": f"A{i}"}), f"{i:016x}")
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["history.1.jsonl", "history.jsonl"]
    assert all(p.stat().st_size <= 2000 for p in tmp_path.iterdir())
    # A torn last line (crash mid-write) is skipped, not fatal.
    with open(tmp_path / "history.jsonl", "ab") as f:
        f.write(b'{"time": 1, "kin')
    again = History(tmp_path, clock, max_bytes=2000)
    names = [e.labels.get("alertname") for e in again.events()]
    assert names[-1] == "A199" and len(names) < 200
    assert names == sorted(names, key=lambda n: int(n[1:]))


async def test_ack_stops_repeats_until_the_alert_changes(h: Harness) -> None:
    a = alert(h.clock, "Cpu", severity="warning")
    h.am.put_alerts([a])
    await h.step(30)
    assert len(h.hook_bodies()) == 1
    r = await h.http.post(
        f"/api/v2/alerts/{a.fingerprint}/ack", json={"by": "alice", "comment": "on it"}
    )
    assert r.status_code == 200, r.text
    shown = (await h.http.get("/api/v2/alerts")).json()[0]
    assert shown["acknowledged"]["by"] == "alice" and shown["acknowledged"]["expiresAt"] is None
    for _ in range(30):  # 2.5 h: no repeats while acknowledged
        await h.step(300)
    assert len(h.hook_bodies()) == 1

    # Persisted across a restart.
    await h.restart()
    h.am.put_alerts([a])
    assert (await h.http.get("/api/v2/alerts")).json()[0]["acknowledged"]["comment"] == "on it"
    for _ in range(13):
        await h.step(300)
    assert len(h.hook_bodies()) == 1

    # New annotations end it: the overdue repeat goes out at the next flush.
    h.am.put_alerts([alert(h.clock, "Cpu", summary="worse", severity="warning")])
    await h.step(300)
    assert len(h.hook_bodies()) == 2
    assert "acknowledged" not in (await h.http.get("/api/v2/alerts")).json()[0]
    events = await h.history(ref=a.fingerprint, kind=["acknowledged", "unacknowledged"])
    assert [(e["kind"], e.get("reason")) for e in events] == [
        ("acknowledged", None),
        ("unacknowledged", "annotations changed"),
    ]


async def test_ack_ends_on_resolve_or_expiry_and_validates(h: Harness) -> None:
    a = alert(h.clock, "Mem")
    h.am.put_alerts([a])
    await h.step(30)
    url = f"/api/v2/alerts/{a.fingerprint}/ack"
    assert (await h.http.post(url, json={"comment": "who?"})).status_code == 400
    assert (
        await h.http.post("/api/v2/alerts/00000000000000ff/ack", json={"by": "x"})
    ).status_code == 404
    past = format_time(h.clock() - 1)
    assert (await h.http.post(url, json={"by": "bob", "expiresAt": past})).status_code == 400
    soon = format_time(h.clock() + 600)
    assert (await h.http.post(url, json={"by": "bob", "expiresAt": soon})).status_code == 200
    await h.step(601)
    assert "acknowledged" not in (await h.http.get("/api/v2/alerts")).json()[0]
    assert (await h.history(kind="unacknowledged"))[-1]["reason"] == "expired"

    assert (await h.http.post(url, json={"by": "bob"})).status_code == 200
    assert (await h.http.delete(url)).status_code == 200
    assert (await h.http.delete(url)).status_code == 404
    assert (await h.http.post(url, json={"by": "bob"})).status_code == 200
    h.am.put_alerts([Alert(a.labels, a.annotations, a.starts_at, h.clock(), "", h.clock())])
    await h.step(1)
    assert (await h.history(kind="unacknowledged"))[-1]["reason"] == "resolved"
    assert (await h.http.post(url, json={"by": "bob"})).status_code == 400  # resolved


async def test_stats_by_severity_state_and_integration(h: Harness) -> None:
    h.sink.status_after_fail = 200
    h.am.put_alerts(
        [
            alert(h.clock, "A", severity="critical"),
            alert(h.clock, "A", severity="warning"),
            alert(h.clock, "B", severity="warning"),
            alert(h.clock, "C"),
        ]
    )
    await h.step(30)
    h.sink.status_after_fail = 400  # not retried: one failed notification
    h.am.put_alerts([alert(h.clock, "D", team="broken")])
    await h.step(30)
    s = (await h.http.get("/api/v2/stats")).json()
    assert s["alerts"]["total"] == 5
    assert s["alerts"]["byState"] == {"active": 4, "suppressed": 1, "resolved": 0}
    assert s["alerts"]["bySeverity"]["warning"] == {"active": 1, "suppressed": 1, "resolved": 0}
    assert s["alerts"]["bySeverity"]["none"]["active"] == 2
    by = {(n["receiver"], n["integration"]): n for n in s["notifications"]["byIntegration"]}
    assert by["hook", "webhook/0"]["sent"] == 3 and by["hook", "webhook/0"]["successRate"] == 1.0
    assert by["broken", "webhook/0"]["failed"] == 1
    assert "400" in by["broken", "webhook/0"]["lastError"]
    assert s["notifications"]["sent"] == 3 and s["notifications"]["successRate"] == 0.75

    await h.restart()  # notification counts come from the persisted history
    s2 = (await h.http.get("/api/v2/stats")).json()
    assert s2["notifications"] == s["notifications"]
    assert s2["alerts"]["total"] == 0
