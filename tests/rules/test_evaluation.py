"""Rule evaluation over MemoryStorage and the real engine, clock injected."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from vigil.model.labels import Labels
from vigil.model.samples import is_stale
from vigil.promql.engine import Engine
from vigil.rules.group import Group
from vigil.rules.loader import RuleFileError, parse_rules
from vigil.rules.manager import RuleManager
from vigil.rules.notifier import Notifier
from vigil.storage.memory import MemoryStorage

M = 60_000


class Env:
    def __init__(self) -> None:
        self.store = MemoryStorage()
        self.engine = Engine(self.store)
        self.sent: list[list[dict[str, Any]]] = []
        self.clock = 0.0
        self.manager = RuleManager(
            query=self.engine.instant_query,
            appendable=self.store,
            queryable=self.store,
            notify=self.sent.append,
            external_url="http://vigil:9090",
            now=lambda: self.clock,
        )

    def series(self, labels: dict[str, str], values: list[float | None], step: int = M) -> None:
        app = self.store.appender()
        for i, v in enumerate(values):
            if v is not None:
                app.append(Labels.from_dict(labels), i * step, v)
        app.commit()

    def group(self, text: str, interval: int = M) -> Group:
        specs, errors = parse_rules(text, "rules.yml")
        assert errors == []
        [g] = self.manager.build_groups(specs, interval)
        return g

    def query(self, expr: str, t: int) -> list[tuple[dict[str, str], float]]:
        res = self.engine.instant_query(expr, t)
        return [(s.labels.to_dict(), s.v) for s in res.value]  # type: ignore[union-attr]

    def raw(self, name: str) -> dict[Labels, list[tuple[int, float]]]:
        from vigil.model.matchers import Matcher

        q = self.store.querier(-(10**12), 10**12)
        return {
            s.labels: list(zip(s.timestamps.tolist(), s.values.tolist(), strict=True))
            for s in q.select([Matcher.equal("__name__", name)], -(10**12), 10**12)
        }


ALERT = """
groups:
- name: g
  rules:
  - alert: High
    expr: x > 5
    for: 2m
    labels: {severity: page, doubled: "{{ $value }}"}
    annotations:
      summary: "{{ $labels.instance }} is {{ $value | humanize }}"
"""


def test_pending_firing_resolved_lifecycle_and_sending() -> None:
    env = Env()
    env.series({"__name__": "x", "instance": "i1"}, [10] * 8 + [1] * 20)
    g = env.group(ALERT)
    rule = g.rules[0]
    states = []
    for i in range(26):
        g.evaluate(i * M)
        states.append(rule.state())
    assert states[:3] == ["pending", "pending", "firing"]
    assert states[7] == "firing" and states[8] == "inactive"
    batches = [(i, b) for i, b in enumerate(env.sent)]
    assert len(batches) > 0
    first = env.sent[0][0]
    assert first == {
        "labels": {"alertname": "High", "instance": "i1", "severity": "page", "doubled": "10"},
        "annotations": {"summary": "i1 is 10"},
        "startsAt": "1970-01-01T00:02:00Z",
        "endsAt": "1970-01-01T00:06:00Z",
        "generatorURL": "http://vigil:9090/graph?g0.expr=x+%3E+5&g0.tab=1",
    }
    # ALERTS and ALERTS_FOR_STATE while active; none after resolution.
    assert env.query("ALERTS", M) == [
        (
            {
                "__name__": "ALERTS",
                "alertname": "High",
                "alertstate": "pending",
                "doubled": "10",
                "instance": "i1",
                "severity": "page",
            },
            1.0,
        )
    ]
    assert env.query("ALERTS_FOR_STATE", 3 * M)[0][1] == 0.0
    assert env.query("ALERTS", 9 * M) == []
    alerts = env.raw("ALERTS")
    firing = next(v for k, v in alerts.items() if k.get("alertstate") == "firing")
    assert is_stale(firing[-1][1]) and firing[-1][0] == 8 * M


def test_send_times_resend_delay_and_resolved_retention() -> None:
    env = Env()
    env.series({"__name__": "x"}, [10] * 5 + [1] * 25)
    g = env.group(ALERT.replace("for: 2m", "for: 0s"))
    sent_at = []
    for i in range(30):
        before = len(env.sent)
        g.evaluate(i * M)
        if len(env.sent) > before:
            sent_at.append((i, env.sent[-1][0]["endsAt"]))
    # Firing at 0; re-sent when more than resend_delay (1m) has passed: every 2 evaluations.
    assert [i for i, _ in sent_at if i < 5] == [0, 2, 4]
    # Resolved at 5 (sent at once with endsAt = ResolvedAt), re-sent for 15 minutes.
    resolved = [(i, e) for i, e in sent_at if i >= 5]
    assert resolved[0] == (5, "1970-01-01T00:05:00Z")
    assert all(e == "1970-01-01T00:05:00Z" for _, e in resolved)
    assert max(i for i, _ in resolved) <= 5 + 15 + 1
    assert g.rules[0].active == {}


def test_for_shorter_than_interval_fires_on_next_evaluation() -> None:
    env = Env()
    env.series({"__name__": "x"}, [10] * 10)
    g = env.group(ALERT.replace("for: 2m", "for: 30s"))
    g.evaluate(0)
    assert g.rules[0].state() == "pending"
    g.evaluate(M)
    assert g.rules[0].state() == "firing"


def test_keep_firing_for() -> None:
    env = Env()
    env.series({"__name__": "x"}, [10] * 3 + [1] * 10)
    g = env.group(ALERT.replace("for: 2m", "for: 0s\n    keep_firing_for: 2m"))
    states = []
    for i in range(7):
        g.evaluate(i * M)
        states.append(g.rules[0].state())
    assert states == ["firing", "firing", "firing", "firing", "firing", "inactive", "inactive"]


def test_duplicate_labelset_is_an_error_without_side_effects() -> None:
    env = Env()
    env.series({"__name__": "x", "a": "1"}, [10])
    env.series({"__name__": "x", "a": "2"}, [10])
    g = env.group(
        ALERT.replace("for: 2m", "for: 0s").replace(
            "x > 5", 'max without(__name__) ({__name__="x"}) > 5 or x > 5'
        )
    )
    g2 = env.group(
        "groups:\n- name: g\n  rules:\n  - alert: Dup\n    expr: x > 5\n    labels: {a: same}\n"
    )
    g2.evaluate(0)
    rule = g2.rules[0]
    assert rule.health == "err"
    assert "same labelset after applying alert labels" in rule.last_error
    assert env.query("ALERTS", 0) == [] and env.sent == []
    assert g is not None


def test_limit_discards_everything() -> None:
    env = Env()
    for i in range(3):
        env.series({"__name__": "x", "i": str(i)}, [10])
    g = env.group(
        "groups:\n- name: g\n  limit: 2\n  rules:\n  - record: r\n    expr: x\n"
        "  - alert: A\n    expr: x > 5\n"
    )
    g.evaluate(0)
    assert [r.health for r in g.rules] == ["err", "err"]
    assert g.rules[0].last_error == "exceeded limit of 2 with 3 series"
    assert g.rules[1].last_error == "exceeded limit of 2 with 3 alerts"
    assert env.query("r", 0) == [] and env.query("ALERTS", 0) == []


def test_recording_rules_chain_and_staleness() -> None:
    env = Env()
    env.series({"__name__": "x", "job": "a", "i": "1"}, [1, 2, 3])
    env.series({"__name__": "x", "job": "b", "i": "1"}, [5])
    g = env.group(
        "groups:\n- name: g\n  labels: {team: t}\n  rules:\n"
        "  - record: job:x:sum\n    expr: sum by (job) (x)\n    labels: {src: rule}\n"
        "  - record: total\n    expr: sum(job:x:sum)\n"
    )
    g.evaluate(0)
    assert env.query("total", 0) == [({"__name__": "total", "team": "t"}, 6.0)]
    assert env.query("job:x:sum", 0) == [
        ({"__name__": "job:x:sum", "job": "a", "src": "rule", "team": "t"}, 1.0),
        ({"__name__": "job:x:sum", "job": "b", "src": "rule", "team": "t"}, 5.0),
    ]
    # x{job="b"} goes stale after the 5m lookback; at 6m its recorded series gets a marker.
    g.evaluate(6 * M)
    raw = env.raw("job:x:sum")
    b = next(v for k, v in raw.items() if k.get("job") == "b")
    assert b[-1][0] == 6 * M and is_stale(b[-1][1])
    assert g.rules[0].health == "ok" and g.rules[0].last_evaluation_ms == 6 * M


def test_query_offset_and_scalar_results() -> None:
    env = Env()
    env.series({"__name__": "x"}, [1, 2, 3, 4])
    g = env.group(
        "groups:\n- name: g\n  query_offset: 1m\n  rules:\n  - record: r\n    expr: x\n"
        "  - record: s\n    expr: scalar(x) * 2\n"
    )
    g.evaluate(3 * M)
    assert env.raw("r") == {Labels.from_dict({"__name__": "r"}): [(2 * M, 3.0)]}
    assert env.query("s", 2 * M) == [({"__name__": "s"}, 6.0)]


def test_bad_result_type_is_a_rule_error() -> None:
    env = Env()
    g = env.group("groups:\n- name: g\n  rules:\n  - record: r\n    expr: '\"str\"'\n")
    g.evaluate(0)
    assert g.rules[0].last_error == "rule result is not a vector or scalar"


def test_eval_timestamp_is_aligned_with_hash_offset() -> None:
    env = Env()
    g = env.group("groups:\n- name: g\n  rules:\n  - record: r\n    expr: vector(1)\n")
    t = g.eval_timestamp(1_000_000_000)
    assert t <= 1_000_000_000 < t + M
    assert (t - g.hash() % (M * 1_000_000) // 1_000_000) % M in (0, M - 1)


def _write(tmp: Path, text: str) -> str:
    f = tmp / "rules.yml"
    f.write_text(text)
    return str(f)


def test_restore_for_state_after_restart(tmp_path: Path) -> None:
    env = Env()
    env.series({"__name__": "x"}, [10] * 120)
    text = ALERT.replace("for: 2m", "for: 30m")
    path = _write(tmp_path, text)
    env.manager.apply([path], M)
    [g] = env.manager.groups()
    for i in range(11):  # restored state from a "previous life": active since 0
        g.rules[0].restored = True
        g.evaluate(i * M)
    # A new process: first evaluation at 20m, then restore at 20m.
    env2 = Env()
    env2.store = env.store
    env2.engine = env.engine
    m2 = RuleManager(
        query=env.engine.instant_query,
        appendable=env.store,
        queryable=env.store,
        notify=env2.sent.append,
        now=lambda: 20 * 60.0,
    )
    m2.apply([path], M)
    [g2] = m2.groups()
    g2.evaluate(20 * M)
    # Not yet restored: the first evaluation writes no ALERTS series (as Prometheus).
    assert env.raw("ALERTS_FOR_STATE")[next(iter(env.raw("ALERTS_FOR_STATE")))][-1][0] == 10 * M
    g2.restore_for_state(20 * M, env.store)
    [a] = g2.rules[0].snapshot()
    # Pending 10m before going down at 10m, down for 10m: ActiveAt shifted by the downtime.
    assert a.active_at == 10 * M


def test_manager_reload_keeps_state_and_marks_removed_stale(tmp_path: Path) -> None:
    env = Env()
    env.series({"__name__": "x"}, [10] * 10)
    path = _write(tmp_path, ALERT + "  - record: r\n    expr: x\n")
    env.manager.apply([path], M)
    [g] = env.manager.groups()
    for r in g.rules:
        if hasattr(r, "restored"):
            r.restored = True
    g.evaluate(0)
    g.evaluate(M)
    _write(tmp_path, ALERT + "  - record: r2\n    expr: x\n")
    env.manager.apply([path], M)
    [g2] = env.manager.groups()
    assert g2 is not g
    assert g2.rules[0].snapshot()[0].active_at == 0
    g2.evaluate(2 * M)
    r = env.raw("r")[Labels.from_dict({"__name__": "r"})]
    assert is_stale(r[-1][1]) and r[-1][0] == 2 * M
    _write(tmp_path, "groups: [")
    with pytest.raises(RuleFileError):
        env.manager.apply([path], M)
    assert env.manager.groups()[0] is g2


def test_end_to_end_alert_reaches_notify_and_resolves() -> None:
    env = Env()
    env.series({"__name__": "errors", "service": "pay"}, [0, 0, 5, 5, 5, 5, 5, 0, 0, 0])
    received: list[dict[str, Any]] = []
    notifier = Notifier(external_labels={"cluster": "c1"}, local=received.extend)
    env.manager.notify = notifier.send
    g = env.group(
        "groups:\n- name: e2e\n  rules:\n  - alert: Errors\n    expr: errors > 1\n    for: 2m\n"
        "    annotations:\n      summary: '{{ $labels.service }}: {{ $value }} errors'\n"
    )
    timeline = []
    for i in range(10):
        g.evaluate(i * M)
        notifier.flush()
        timeline.append((i, [(a["labels"]["alertname"], a["endsAt"]) for a in received]))
        received_now = list(received)
        received.clear()
        if i == 4:
            assert received_now[0]["labels"] == {
                "alertname": "Errors",
                "service": "pay",
                "cluster": "c1",
            }
            assert received_now[0]["annotations"] == {"summary": "pay: 5 errors"}
            assert received_now[0]["startsAt"] == "1970-01-01T00:04:00Z"
    sends = {i: s for i, s in timeline if s}
    assert min(sends) == 4  # pending at 2m and 3m, firing at 4m
    assert sends[7] == [("Errors", "1970-01-01T00:07:00Z")]  # resolved with endsAt


def test_notifier_relabel_and_http(tmp_path: Path) -> None:
    from vigil.config import load_config

    cfg = load_config(
        "alerting:\n  alert_relabel_configs:\n  - source_labels: [severity]\n    regex: info\n"
        "    action: drop\n  alertmanagers:\n  - static_configs:\n    - targets: ['am:9093']\n"
        "    path_prefix: /am\n",
        "<t>",
    ).config
    posts: list[tuple[str, bytes]] = []
    calls = {"n": 0}

    def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
        calls["n"] += 1
        posts.append((url, body))
        return 500 if calls["n"] == 1 else 200

    n = Notifier(post=post, retry_backoff_s=0)
    n.apply_config(cfg.alerting, {"region": "eu"})
    n.send(
        [
            {"labels": {"alertname": "A", "severity": "info"}},
            {"labels": {"alertname": "B", "region": "us"}},
        ]
    )
    assert n.flush() == 1
    assert [u for u, _ in posts] == ["http://am:9093/am/api/v2/alerts"] * 2
    import json

    assert json.loads(posts[-1][1]) == [{"labels": {"alertname": "B", "region": "us"}}]
    assert n.destinations[0].sent == 1


def test_notifier_queue_drops_oldest() -> None:
    n = Notifier(queue_capacity=3)
    n.send([{"labels": {"i": str(i)}} for i in range(2)])
    n.send([{"labels": {"i": str(i)}} for i in range(2, 5)])
    assert n.queue_length() == 3 and n.dropped == 2
    assert not math.isnan(n.flush())


def test_scheduler_evaluates_on_its_own_and_stops(tmp_path: Path) -> None:
    from _support import wait_for

    store = MemoryStorage()
    mgr = RuleManager(query=Engine(store).instant_query, appendable=store, queryable=store)
    mgr.apply(
        [_write(tmp_path, "groups:\n- name: s\n  rules:\n  - record: r\n    expr: vector(1)\n")],
        200,
    )
    mgr.start()
    try:
        [g] = mgr.groups()
        wait_for(lambda: g.last_evaluation_ms is not None, timeout=5)
        assert (
            g.last_evaluation_ms is not None
            and g.last_evaluation_ms % 200 == g.eval_timestamp(g.last_evaluation_ms) % 200
        )
    finally:
        mgr.stop()
    assert mgr._threads == {}
