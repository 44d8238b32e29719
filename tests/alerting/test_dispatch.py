"""Grouping timers, dedup, resolution, inhibition, silences, retries and restart,
driven by an injected clock against a real HTTP webhook sink."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vigil.alerting.alert import Alert
from vigil.alerting.alertmanager import Alertmanager
from vigil.alerting.config import load_config
from vigil.alerting.silence import Silence
from vigil.model.labels import Labels
from vigil.model.matchers import Matcher

Clock = Any  # conftest's fake clock
Sink = Any  # conftest's HTTP sink

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def cfg(url: str, extra_route: str = "", extra: str = "", send_resolved: str = "true") -> Any:
    return load_config(
        f"""
route:
  receiver: hook
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
{extra_route}
receivers:
- name: hook
  webhook_configs:
  - url: {url}/hook
    send_resolved: {send_resolved}
{extra}
"""
    )


def alert(clock: Clock, name: str = "A", ends: float = 0.0, **labels: str) -> Alert:
    return Alert(
        Labels.from_dict({"alertname": name, **labels}),
        Labels.from_dict({"summary": f"{name} is bad"}),
        starts_at=clock(),
        ends_at=ends or clock() + 300,
        updated_at=clock(),
    )


async def step(am: Alertmanager, clock: Clock, seconds: float) -> None:
    clock.advance(seconds)
    await am.tick()


async def test_group_wait_interval_repeat(sink: Sink, clock: Clock) -> None:
    am = Alertmanager(cfg(sink.url), now=clock)
    am.put_alerts([alert(clock, instance="a", ends=clock() + 10**6)])
    await step(am, clock, 29)
    assert sink.bodies == []  # still in group_wait
    await step(am, clock, 1)
    assert len(sink.bodies) == 1
    body = sink.bodies[0]
    assert body["groupKey"] == '{}:{alertname="A"}'
    assert body["status"] == "firing" and body["version"] == "4"
    assert body["alerts"][0]["endsAt"] == "0001-01-01T00:00:00Z"
    # A second alert joins: sent at the next group_interval, not before.
    am.put_alerts([alert(clock, instance="b", ends=clock() + 10**6)])
    await step(am, clock, 299)
    assert len(sink.bodies) == 1
    await step(am, clock, 1)
    assert len(sink.bodies) == 2 and len(sink.bodies[1]["alerts"]) == 2
    # Unchanged: nothing until repeat_interval (4h) has passed.
    for _ in range(47):
        await step(am, clock, 300)
    assert len(sink.bodies) == 2
    await step(am, clock, 300)
    assert len(sink.bodies) == 3


async def test_old_alert_skips_group_wait(sink: Sink, clock: Clock) -> None:
    am = Alertmanager(cfg(sink.url), now=clock)
    old = alert(clock)
    clock.advance(60)
    am.put_alerts([old])
    await am.tick()
    assert len(sink.bodies) == 1


async def test_resolved_sent_once_and_group_removed(sink: Sink, clock: Clock) -> None:
    am = Alertmanager(cfg(sink.url), now=clock)
    am.put_alerts([alert(clock)])
    await step(am, clock, 30)
    am.put_alerts([alert(clock, ends=clock() + 1)])  # resolves one second later
    await step(am, clock, 300)
    assert [b["status"] for b in sink.bodies] == ["firing", "resolved"]
    assert sink.bodies[1]["alerts"][0]["endsAt"] != "0001-01-01T00:00:00Z"
    assert am.dispatcher.groups() == []
    await step(am, clock, 300)
    assert len(sink.bodies) == 2


async def test_resolve_timeout_for_alerts_without_ends_at(sink: Sink, clock: Clock) -> None:
    am = Alertmanager(cfg(sink.url), now=clock)
    am.put_postable([{"labels": {"alertname": "A"}}])
    await step(am, clock, 30)
    assert sink.bodies[0]["status"] == "firing"
    await step(am, clock, 300)  # resolve_timeout (5m) passes without a refresh
    assert sink.bodies[-1]["status"] == "resolved"


async def test_send_resolved_false_skips_resolved(sink: Sink, clock: Clock) -> None:
    am = Alertmanager(cfg(sink.url, send_resolved="false"), now=clock)
    am.put_alerts([alert(clock)])
    await step(am, clock, 30)
    am.put_alerts([alert(clock, ends=clock() + 1)])
    await step(am, clock, 300)
    assert [b["status"] for b in sink.bodies] == ["firing"]


async def test_inhibition(sink: Sink, clock: Clock) -> None:
    extra = """
inhibit_rules:
- source_matchers: [severity="critical"]
  target_matchers: [severity="warning"]
  equal: [cluster]
"""
    am = Alertmanager(cfg(sink.url, extra=extra), now=clock)
    am.put_alerts(
        [
            alert(clock, "Crit", severity="critical", cluster="c1"),
            alert(clock, "Warn", severity="warning", cluster="c1"),
            alert(clock, "Warn2", severity="warning", cluster="c2"),
        ]
    )
    await step(am, clock, 30)
    names = sorted(b["groupLabels"]["alertname"] for b in sink.bodies)
    assert names == ["Crit", "Warn2"]
    warn = Labels.from_dict({"alertname": "Warn", "severity": "warning", "cluster": "c1"})
    assert am.inhibitor.inhibited_by(warn)


async def test_alert_does_not_inhibit_itself(clock: Clock, sink: Sink) -> None:
    extra = """
inhibit_rules:
- source_matchers: [severity="critical"]
  target_matchers: [severity=~"critical|warning"]
"""
    am = Alertmanager(cfg(sink.url, extra=extra), now=clock)
    a = alert(clock, severity="critical")
    am.put_alerts([a])
    assert am.inhibitor.inhibited_by(a.labels) == []


async def test_silence_mutes_and_expiry_unmutes(sink: Sink, clock: Clock) -> None:
    am = Alertmanager(cfg(sink.url), now=clock)
    sid = am.silences.set(
        Silence("", (Matcher.equal("alertname", "A"),), clock(), clock() + 100, "me", "maintenance")
    )
    am.put_alerts([alert(clock, ends=clock() + 10**6)])
    await step(am, clock, 30)
    assert sink.bodies == []
    assert am.status_of(am.alerts.list()[0])["silencedBy"] == [sid]
    await step(am, clock, 300)  # silence ended at +100s
    assert len(sink.bodies) == 1


async def test_retry_with_backoff(sink: Sink, clock: Clock) -> None:
    slept: list[float] = []

    async def fake_sleep(s: float) -> None:
        slept.append(s)

    am = Alertmanager(cfg(sink.url), now=clock, sleep=fake_sleep)
    sink.fail_next = 3
    am.put_alerts([alert(clock)])
    await step(am, clock, 30)
    assert len(sink.bodies) == 1
    assert len(slept) == 3 and slept[2] > slept[0]  # exponential
    stats = am.receivers["hook"].integrations[0].stats
    assert (stats.sent, stats.failed) == (1, 3)


async def test_nflog_survives_restart(sink: Sink, clock: Clock, tmp_path: Path) -> None:
    am = Alertmanager(cfg(sink.url), data_dir=tmp_path, now=clock)
    a = alert(clock, ends=clock() + 10**6)
    am.put_alerts([a])
    await step(am, clock, 30)
    await am.stop()
    assert len(sink.bodies) == 1
    # A new process with the same data dir does not resend within repeat_interval.
    am2 = Alertmanager(cfg(sink.url), data_dir=tmp_path, now=clock)
    am2.put_alerts([a])
    await step(am2, clock, 30)
    assert len(sink.bodies) == 1


async def test_silences_survive_restart(clock: Clock, tmp_path: Path, sink: Sink) -> None:
    am = Alertmanager(cfg(sink.url), data_dir=tmp_path, now=clock)
    sid = am.silences.set(Silence("", (Matcher.equal("a", "b"),), clock(), clock() + 60, "me", "x"))
    am2 = Alertmanager(cfg(sink.url), data_dir=tmp_path, now=clock)
    assert am2.silences.get(sid).comment == "x"
    (tmp_path / "silences.json").write_text("{not json")
    am3 = Alertmanager(cfg(sink.url), data_dir=tmp_path, now=clock)  # corrupt: moved aside
    assert am3.silences.list() == []
    assert (tmp_path / "silences.json.corrupt").exists()


async def test_continue_and_group_by_all(sink: Sink, clock: Clock) -> None:
    extra_route = """  routes:
  - matchers: [team="a"]
    receiver: hook
    group_by: ['...']
    continue: true
  - matchers: [team="a"]
    receiver: other"""
    extra = f"""- name: other
  webhook_configs:
  - url: {sink.url}/other
"""
    am = Alertmanager(cfg(sink.url, extra_route=extra_route, extra=extra), now=clock)
    am.put_alerts([alert(clock, team="a", instance="i")])
    await step(am, clock, 30)
    keys = sorted((r["path"], r["body"]["groupKey"]) for r in sink.requests)
    assert keys == [
        ("/hook", '{}/{team="a"}:{alertname="A", instance="i", team="a"}'),
        ("/other", '{}/{team="a"}:{alertname="A"}'),
    ]


async def test_max_alerts_truncates(sink: Sink, clock: Clock) -> None:
    c = load_config(
        f"""
route: {{receiver: hook, group_by: [alertname]}}
receivers:
- name: hook
  webhook_configs: [{{url: "{sink.url}", max_alerts: 2}}]
"""
    )
    am = Alertmanager(c, now=clock)
    am.put_alerts([alert(clock, instance=str(i)) for i in range(5)])
    await step(am, clock, 30)
    body = sink.bodies[0]
    assert len(body["alerts"]) == 2 and body["truncatedAlerts"] == 3


async def test_apply_config_keeps_state_and_rejects_bad(
    sink: Sink, clock: Clock, tmp_path: Path
) -> None:
    am = Alertmanager(cfg(sink.url), now=clock)
    am.put_alerts([alert(clock, ends=clock() + 10**6)])
    await step(am, clock, 30)
    am.apply_config(cfg(sink.url))
    await step(am, clock, 30)
    assert len(sink.bodies) == 1  # nflog prevents a resend after reload
    tmpl = tmp_path / "bad.tmpl"
    tmpl.write_text('{{ define "x" }}{{ if }}{{ end }}')
    bad = load_config(
        f"templates: ['{tmpl}']\nroute: {{receiver: hook}}\nreceivers: [{{name: hook}}]\n"
    )
    from vigil.alerting.config import ConfigError

    with pytest.raises(ConfigError, match="templates"):
        am.apply_config(bad)
    assert am.config.receivers[0].integrations  # old config still live


async def test_time_intervals_mute(sink: Sink, clock: Clock) -> None:
    extra_route = """  routes:
  - matchers: [alertname="A"]
    mute_time_intervals: [always]"""
    extra = """time_intervals:
- name: always
  time_intervals:
  - times: [{start_time: "00:00", end_time: "24:00"}]
"""
    am = Alertmanager(cfg(sink.url, extra_route=extra_route, extra=extra), now=clock)
    am.put_alerts([alert(clock), alert(clock, "B")])
    await step(am, clock, 30)
    assert [b["groupLabels"]["alertname"] for b in sink.bodies] == ["B"]
