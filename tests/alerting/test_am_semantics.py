"""Alertmanager behaviours found by the parity test, pinned with a fake clock."""

from __future__ import annotations

from typing import Any

import pytest

from vigil.alerting.alert import Alert
from vigil.alerting.config import load_config
from vigil.alerting.dispatch import Dispatcher, alert_sort_key
from vigil.alerting.inhibit import Inhibitor
from vigil.alerting.receivers.base import NotifyContext
from vigil.alerting.route import Route
from vigil.model.labels import Labels

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def L(**kv: str) -> Labels:
    return Labels.from_dict(kv)


def test_group_order_is_job_instance_then_fewer_labels_first() -> None:
    alerts = [
        Alert(L(alertname="A", a="1", b="2")),
        Alert(L(alertname="A", z="1")),
        Alert(L(alertname="A", instance="i2")),
        Alert(L(alertname="A", instance="i1", x="y")),
        Alert(L(alertname="A", job="j")),
    ]
    got = [dict(a.labels) for a in sorted(alerts, key=alert_sort_key)]
    assert got == [
        {"alertname": "A", "job": "j"},
        {"alertname": "A", "instance": "i1", "x": "y"},
        {"alertname": "A", "instance": "i2"},
        {"alertname": "A", "z": "1"},
        {"alertname": "A", "a": "1", "b": "2"},
    ]


def test_alerts_matching_both_sides_do_not_inhibit_each_other() -> None:
    cfg = load_config(
        """
route: {receiver: r}
receivers: [{name: r}]
inhibit_rules:
- source_matchers: [alertname=~"Loop.*"]
  target_matchers: [alertname=~"Loop.*"]
- source_matchers: [severity="critical"]
  target_matchers: [alertname=~"Loop.*"]
"""
    )
    alerts = [Alert(L(alertname="LoopA"), ends_at=2e9), Alert(L(alertname="LoopB"), ends_at=2e9)]
    inh = Inhibitor(cfg.inhibit_rules, lambda: alerts, lambda: 1e9)
    assert not inh.mutes(L(alertname="LoopA"))
    # A source that does not also match the target side still inhibits.
    alerts.append(Alert(L(alertname="Other", severity="critical"), ends_at=2e9))
    assert inh.mutes(L(alertname="LoopA"))


class Recorder:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def exec(self, ctx: NotifyContext, alerts: list[Alert]) -> list[Alert]:
        self.calls.append(ctx.now)
        return alerts


async def test_empty_group_keeps_ticking_until_cleanup() -> None:
    cfg = load_config(
        "route: {receiver: r, group_wait: 1s, group_interval: 10s}\nreceivers: [{name: r}]"
    )
    t = [1000.0]
    rec = Recorder()
    d = Dispatcher(Route.build(cfg.route), rec, lambda: t[0], cleanup_interval=30)
    d.insert([Alert(L(alertname="A"), starts_at=1000, ends_at=1005)])

    async def at(when: float) -> Any:
        t[0] = when
        return await d.flush_due(when)

    await at(1001)  # firing
    await at(1011)  # resolved: the alert leaves the group, the group stays
    assert len(d.groups()) == 1 and not d.groups()[0].alerts
    # Fires again: waits for the group's next tick (1021), not group_wait.
    d.insert([Alert(L(alertname="A"), starts_at=1015, ends_at=2000)])
    await at(1016.5)
    assert rec.calls == [1001, 1011]
    await at(1021)
    assert rec.calls == [1001, 1011, 1021]
    d.insert([Alert(L(alertname="A"), starts_at=1015, ends_at=1022)])
    await at(1031)  # resolved and flushed; the 30 s cleanup then drops the empty group
    assert d.groups() == []
