"""A rule group: its rules evaluated in order at interval-aligned times.

`evaluate(t_ms)` is the whole of one evaluation and is what tests call directly;
the manager's scheduler only decides when. Each rule's samples are committed
before the next rule runs, so later rules see earlier results in the same cycle
(the compliance spec's constraint 1, and Prometheus's behaviour). Series a rule
returned last time but not this time get a staleness marker.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from vigil.model.labels import Labels
from vigil.model.matchers import Matcher
from vigil.model.samples import STALE_NAN, is_stale
from vigil.promql.xxhash64 import labels_hash
from vigil.rules.alerting import Alert, AlertingRule
from vigil.rules.base import HEALTH_BAD, HEALTH_GOOD, QueryFunc, Vector
from vigil.rules.recording import RecordingRule
from vigil.storage.interface import Appendable, Queryable

log = logging.getLogger("vigil.rules")

Rule = RecordingRule | AlertingRule
SendFunc = Callable[[str, list[Alert]], None]
"""``send(expr, alerts)``: hand alerts due for sending to the notifier."""


class Group:
    """One group of one file. Not thread-safe: one thread evaluates it at a time."""

    def __init__(
        self,
        name: str,
        file: str,
        rules: Sequence[Rule],
        *,
        interval_ms: int,
        query: QueryFunc,
        appendable: Appendable,
        send: SendFunc | None = None,
        limit: int = 0,
        query_offset_ms: int = 0,
        resend_delay_ms: int = 60_000,
        source: object = None,
    ) -> None:
        if interval_ms <= 0:
            raise ValueError(f"group {name!r}: interval must be positive")
        self.name = name
        self.file = file
        self.rules = list(rules)
        self.interval_ms = int(interval_ms)
        self.limit = int(limit)
        self.query_offset_ms = int(query_offset_ms)
        self.resend_delay_ms = int(resend_delay_ms)
        self.query = query
        self.appendable = appendable
        self.send = send
        self.source = source  # the spec it was built from, to detect changes on reload
        self.last_evaluation_ms: int | None = None
        self.evaluation_time_s = 0.0
        self.series_in_previous_eval: list[set[Labels]] = [set() for _ in self.rules]
        self.stale_series: list[Labels] = []
        self.missed_iterations = 0

    def key(self) -> tuple[str, str]:
        return (self.file, self.name)

    def hash(self) -> int:
        return labels_hash(Labels.from_pairs([("name", self.name), ("file", self.file)]))

    def eval_timestamp(self, now_ms: int) -> int:
        """The slot at or before `now_ms` for this group (int ms): aligned to the
        interval, shifted by a hash of the group so groups spread out, as Prometheus."""
        interval_ns = self.interval_ms * 1_000_000
        offset = self.hash() % interval_ns
        adj = now_ms * 1_000_000 - offset
        base = adj - (adj % interval_ns)
        return (base + offset) // 1_000_000

    # -- evaluation ----------------------------------------------------------

    def evaluate(self, t_ms: int) -> None:
        """Evaluate every rule at `t_ms` (int ms), write results, send due alerts."""
        started = time.perf_counter()
        for i, rule in enumerate(self.rules):
            r_started = time.perf_counter()
            try:
                vector = rule.eval(t_ms, self.query_offset_ms, self.query, self.limit)
            except Exception as exc:
                rule.health = HEALTH_BAD
                rule.last_error = str(exc) or type(exc).__name__
                rule.last_evaluation_ms = t_ms
                rule.evaluation_time_s = time.perf_counter() - r_started
                log.warning("rule %r in group %r failed: %s", rule.name, self.name, exc)
                continue
            rule.health = HEALTH_GOOD
            rule.last_error = ""
            if isinstance(rule, AlertingRule) and self.send is not None:
                due = rule.alerts_to_send(t_ms, self.resend_delay_ms, self.interval_ms)
                if due:
                    self.send(rule.query_text, due)
            self._write(i, vector, t_ms - self.query_offset_ms)
            rule.last_evaluation_ms = t_ms
            rule.evaluation_time_s = time.perf_counter() - r_started
        if self.stale_series:
            self._append_stale(self.stale_series, t_ms - self.query_offset_ms)
            self.stale_series = []
        self.last_evaluation_ms = t_ms
        self.evaluation_time_s = time.perf_counter() - started

    def _write(self, i: int, vector: Vector, stale_ts: int) -> None:
        app = self.appendable.appender()
        returned: set[Labels] = set()
        try:
            for lbls, t, v in vector:
                app.append(lbls, t, float(v))
                returned.add(lbls)
            for lbls in self.series_in_previous_eval[i] - returned:
                app.append(lbls, stale_ts, STALE_NAN)
            app.commit()
        except Exception as exc:
            log.warning("writing results of rule %r failed: %s", self.rules[i].name, exc)
            try:
                app.rollback()
            except Exception:
                pass
        self.series_in_previous_eval[i] = returned

    def _append_stale(self, series: Sequence[Labels], t_ms: int) -> None:
        app = self.appendable.appender()
        try:
            for lbls in series:
                app.append(lbls, t_ms, STALE_NAN)
            app.commit()
        except Exception as exc:
            log.warning("writing staleness markers for group %r failed: %s", self.name, exc)

    def mark_all_stale(self, t_ms: int) -> None:
        """Write staleness markers for everything this group wrote last (on removal)."""
        series = [s for prev in self.series_in_previous_eval for s in prev]
        if series:
            self._append_stale(series, t_ms)
        self.series_in_previous_eval = [set() for _ in self.rules]

    # -- reload and restart ----------------------------------------------------

    def copy_state_from(self, old: Group) -> None:
        """Carry evaluation state over from the group this one replaces."""
        self.last_evaluation_ms = old.last_evaluation_ms
        self.evaluation_time_s = old.evaluation_time_s
        by_key: dict[object, list[int]] = {}
        for j, r in enumerate(old.rules):
            by_key.setdefault(r.key(), []).append(j)
        used: set[int] = set()
        for i, rule in enumerate(self.rules):
            cands = by_key.get(rule.key())
            if not cands:
                continue
            j = cands.pop(0)
            used.add(j)
            orule = old.rules[j]
            self.series_in_previous_eval[i] = old.series_in_previous_eval[j]
            rule.health, rule.last_error = orule.health, orule.last_error
            rule.last_evaluation_ms = orule.last_evaluation_ms
            rule.evaluation_time_s = orule.evaluation_time_s
            if isinstance(rule, AlertingRule) and isinstance(orule, AlertingRule):
                rule.copy_state_from(orule)
        for j, prev in enumerate(old.series_in_previous_eval):
            if j not in used:
                self.stale_series.extend(prev)

    def restore_for_state(
        self,
        t_ms: int,
        queryable: Queryable,
        outage_tolerance_ms: int = 3_600_000,
        grace_period_ms: int = 600_000,
    ) -> None:
        """Restore each active alert's `ActiveAt` from ALERTS_FOR_STATE after a
        restart, as Prometheus's RestoreForState (outage tolerance, grace period)."""
        try:
            q = queryable.querier(t_ms - outage_tolerance_ms, t_ms)
        except Exception as exc:
            log.warning("restoring alert state for group %r failed: %s", self.name, exc)
            return
        try:
            for rule in self.rules:
                if not isinstance(rule, AlertingRule):
                    continue
                hold = rule.for_ms
                if hold < grace_period_ms:
                    rule.restored = True
                    continue
                with rule.lock:
                    alerts = list(rule.active.values())
                for a in alerts:
                    lbls = rule.for_state_labels(a)
                    matchers = [Matcher.equal(k, v) for k, v in lbls]
                    found = [
                        s
                        for s in q.select(matchers, t_ms - outage_tolerance_ms, t_ms)
                        if len(s.labels) == len(lbls)
                    ]
                    if not found or len(found[0].timestamps) == 0:
                        continue
                    s = found[0]
                    t_last, v_last = int(s.timestamps[-1]), float(s.values[-1])
                    if is_stale(v_last):
                        continue
                    down_at = (t_last // 1000) * 1000
                    restored_active = int(v_last) * 1000
                    remaining = hold - (down_at - restored_active)
                    if remaining <= 0:
                        pass
                    elif remaining < grace_period_ms:
                        restored_active = t_ms + grace_period_ms - hold
                    else:
                        restored_active += t_ms - down_at
                    with rule.lock:
                        a.active_at = restored_active
                rule.restored = True
        finally:
            q.close()
