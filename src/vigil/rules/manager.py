"""The rule manager: loads rule files into groups, schedules them, reloads them.

It is handed callables, never concrete subsystems (as Prometheus's rules.Manager):
``query(expr, t_ms) -> QueryResult`` and ``notify(alerts) -> None`` where each
alert is the Alertmanager API v2 JSON object (labels, annotations, startsAt,
endsAt, generatorURL). Writes go through an `Appendable`; `for` state is restored
from a `Queryable` on the first load after start.

Threads: one per group, each sleeping on an Event until its next slot. `apply`
validates every file before touching running groups (a bad reload changes nothing).
"""

from __future__ import annotations

import datetime as _dt
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from vigil.rules.alerting import Alert, AlertingRule
from vigil.rules.base import QueryFunc
from vigil.rules.group import Group, Rule
from vigil.rules.loader import GroupSpec, load_rule_files
from vigil.rules.recording import RecordingRule
from vigil.rules.templates import table_link
from vigil.storage.interface import Appendable, Queryable

log = logging.getLogger("vigil.rules")

NotifyFunc = Callable[[list[dict[str, Any]]], None]


def rfc3339(t_ms: int | None) -> str:
    """Go's RFC3339Nano of a ms time in UTC (``0001-01-01T00:00:00Z`` for None)."""
    if t_ms is None:
        return "0001-01-01T00:00:00Z"
    sec, ms = divmod(int(t_ms), 1000)
    t = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC) + _dt.timedelta(seconds=sec)
    frac = f".{ms:03d}".rstrip("0") if ms else ""
    return t.strftime("%Y-%m-%dT%H:%M:%S") + frac + "Z"


def build_rules(
    spec: GroupSpec,
    external_labels: Mapping[str, str],
    external_url: str,
    restored: bool,
) -> list[Rule]:
    rules: list[Rule] = []
    for r in spec.rules:
        labels = {**spec.labels, **r.labels}
        if r.alert:
            rules.append(
                AlertingRule(
                    r.alert,
                    r.expr,
                    for_ms=r.for_ms,
                    keep_firing_for_ms=r.keep_firing_for_ms,
                    labels=labels,
                    annotations=r.annotations,
                    external_labels=dict(external_labels),
                    external_url=external_url,
                    restored=restored,
                )
            )
        else:
            rules.append(RecordingRule(r.record, r.expr, labels))
    return rules


class RuleManager:
    """Owns the rule groups. Times are int ms; `now()` returns float seconds.

    `resend_delay_ms`: minimum time between re-sends of a firing alert (1m).
    `outage_tolerance_ms` / `for_grace_period_ms`: Prometheus's `for`-state
    restoration defaults (1h, 10m). `query_offset_ms`: the global rule query
    offset, used by groups that set none.
    """

    def __init__(
        self,
        *,
        query: QueryFunc,
        appendable: Appendable,
        queryable: Queryable | None = None,
        notify: NotifyFunc | None = None,
        external_labels: Mapping[str, str] | None = None,
        external_url: str = "",
        now: Callable[[], float] = time.time,
        resend_delay_ms: int = 60_000,
        outage_tolerance_ms: int = 3_600_000,
        for_grace_period_ms: int = 600_000,
        query_offset_ms: int = 0,
    ) -> None:
        self.query = query
        self.appendable = appendable
        self.queryable = queryable
        self.notify = notify
        self.external_labels = dict(external_labels or {})
        self.external_url = external_url.rstrip("/")
        self.now = now
        self.resend_delay_ms = int(resend_delay_ms)
        self.outage_tolerance_ms = int(outage_tolerance_ms)
        self.for_grace_period_ms = int(for_grace_period_ms)
        self.query_offset_ms = int(query_offset_ms)
        self._groups: dict[tuple[str, str], Group] = {}
        self._threads: dict[tuple[str, str], tuple[threading.Thread, threading.Event]] = {}
        self._lock = threading.RLock()
        self._restored = False
        self._running = False
        self._to_restore: set[tuple[str, str]] = set()

    # -- building --------------------------------------------------------------

    def now_ms(self) -> int:
        return int(self.now() * 1000)

    def build_groups(
        self, specs: Sequence[GroupSpec], eval_interval_ms: int, *, restored: bool = True
    ) -> list[Group]:
        """Groups from validated specs (not registered; for tests and `test_rules`)."""
        groups = []
        for spec in specs:
            groups.append(
                Group(
                    spec.name,
                    spec.file,
                    build_rules(spec, self.external_labels, self.external_url, restored),
                    interval_ms=spec.interval_ms or int(eval_interval_ms),
                    query=self.query,
                    appendable=self.appendable,
                    send=self._send,
                    limit=spec.limit,
                    query_offset_ms=(
                        spec.query_offset_ms
                        if spec.query_offset_ms is not None
                        else self.query_offset_ms
                    ),
                    resend_delay_ms=self.resend_delay_ms,
                    source=(
                        spec,
                        int(eval_interval_ms),
                        sorted(self.external_labels.items()),
                        self.external_url,
                    ),
                )
            )
        return groups

    def apply(
        self,
        rule_files: Sequence[str],
        eval_interval_ms: int,
        *,
        external_labels: Mapping[str, str] | None = None,
        external_url: str | None = None,
    ) -> None:
        """Load `rule_files` (already glob-expanded paths) and swap them in.

        Raises `RuleFileError` (nothing changed) when any file is invalid. Unchanged
        groups keep running untouched; changed ones take over their predecessor's
        alert state; removed ones stop and mark their series stale."""
        specs = load_rule_files(list(rule_files))
        with self._lock:
            if external_labels is not None:
                self.external_labels = dict(external_labels)
            if external_url is not None:
                self.external_url = external_url.rstrip("/")
            first = not self._restored
            new_groups = self.build_groups(specs, eval_interval_ms, restored=not first)
            old = self._groups
            result: dict[tuple[str, str], Group] = {}
            for g in new_groups:
                prev = old.get(g.key())
                if prev is not None and prev.source == g.source and not first:
                    result[g.key()] = prev
                    continue
                if prev is not None:
                    self._stop_group(prev.key())
                    g.copy_state_from(prev)
                result[g.key()] = g
                if first:
                    self._to_restore.add(g.key())
                else:
                    # Only groups of the first load restore (Prometheus's shouldRestore).
                    self._to_restore.discard(g.key())
            for key, g in old.items():
                if key not in result:
                    self._to_restore.discard(key)
                    self._stop_group(key)
                    g.mark_all_stale(self.now_ms())
            self._groups = result
            self._restored = True
            if self._running:
                for key in result:
                    if key not in self._threads:
                        self._start_group(key)

    # -- scheduling --------------------------------------------------------------

    def start(self) -> None:
        """Start evaluating every group on its own thread."""
        with self._lock:
            self._running = True
            for key in self._groups:
                if key not in self._threads:
                    self._start_group(key)

    def stop(self) -> None:
        """Stop all group threads (waits for a running evaluation to finish)."""
        with self._lock:
            self._running = False
            keys = list(self._threads)
        for key in keys:
            self._stop_group(key)

    def _start_group(self, key: tuple[str, str]) -> None:
        stop = threading.Event()
        g = self._groups[key]
        t = threading.Thread(target=self._run, args=(g, stop), name=f"rules-{g.name}", daemon=True)
        self._threads[key] = (t, stop)
        t.start()

    def _stop_group(self, key: tuple[str, str]) -> None:
        entry = self._threads.pop(key, None)
        if entry is None:
            return
        t, stop = entry
        stop.set()
        if t is not threading.current_thread():
            t.join(timeout=30)

    def _run(self, g: Group, stop: threading.Event) -> None:
        next_t = g.eval_timestamp(self.now_ms()) + g.interval_ms
        evaluations = 0
        while True:
            delay = next_t / 1000.0 - self.now()
            if delay > 0 and stop.wait(delay):
                return
            if stop.is_set():
                return
            try:
                g.evaluate(next_t)
                evaluations += 1
                # As Prometheus, restore only after the second evaluation: after the
                # first, recording rules that alerts depend on may not be up to date.
                if evaluations >= 2 and g.key() in self._to_restore:
                    self._to_restore.discard(g.key())
                    if self.queryable is not None:
                        g.restore_for_state(
                            self.now_ms(),
                            self.queryable,
                            self.outage_tolerance_ms,
                            self.for_grace_period_ms,
                        )
                    else:
                        for r in g.rules:
                            if isinstance(r, AlertingRule):
                                r.restored = True
            except Exception:
                log.exception("evaluating group %r failed", g.name)
            missed = (self.now_ms() - next_t) // g.interval_ms - 1
            if missed > 0:
                g.missed_iterations += missed
            next_t += (max(missed, 0) + 1) * g.interval_ms

    # -- notifying -------------------------------------------------------------

    def _send(self, expr: str, alerts: list[Alert]) -> None:
        if self.notify is None or not alerts:
            return
        payload = [self.alert_payload(expr, a) for a in alerts]
        try:
            self.notify(payload)
        except Exception as exc:
            log.warning("sending %d alerts failed: %s", len(payload), exc)

    def alert_payload(self, expr: str, a: Alert) -> dict[str, Any]:
        """An alert as Prometheus's notifier sends it (Alertmanager API v2 JSON)."""
        ends = a.resolved_at if a.resolved_at is not None else a.valid_until
        out: dict[str, Any] = {
            "labels": a.labels.to_dict(),
            "annotations": dict(a.annotations),
            "startsAt": rfc3339(a.fired_at),
            "endsAt": rfc3339(ends),
            "generatorURL": self.external_url + table_link(expr),
        }
        return out

    # -- reading -----------------------------------------------------------------

    def groups(self) -> list[Group]:
        """Groups sorted by file then name, as Prometheus lists them."""
        with self._lock:
            gs = list(self._groups.values())
        return sorted(gs, key=lambda g: (g.file, g.name))

    def rules(self) -> list[Rule]:
        return [r for g in self.groups() for r in g.rules]

    def alerting_rules(self) -> list[AlertingRule]:
        return [r for r in self.rules() if isinstance(r, AlertingRule)]

    def active_alerts(self) -> list[tuple[AlertingRule, Alert]]:
        return [(r, a) for r in self.alerting_rules() for a in r.snapshot()]


__all__ = ["AlertingRule", "Group", "RecordingRule", "RuleManager", "rfc3339"]
