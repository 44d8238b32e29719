"""Alerting rules: pending -> firing after `for`, `keep_firing_for`, resolution.

State machine and timings follow the alert-generator compliance spec and
Prometheus's rules/alerting.go. All times are int ms. A rule's state is changed
only by `eval` (one group thread); readers take `snapshot()` under the lock.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import Any

from vigil.model.labels import METRIC_NAME, Labels
from vigil.rules.base import QueryFunc, RuleBase, RuleEvalError, Vector, query_vector
from vigil.rules.templates import Expander

STATE_INACTIVE = "inactive"
STATE_PENDING = "pending"
STATE_FIRING = "firing"

ALERT_METRIC = "ALERTS"
ALERT_FOR_STATE_METRIC = "ALERTS_FOR_STATE"
ALERT_NAME = "alertname"
ALERT_STATE = "alertstate"

RESOLVED_RETENTION_MS = 15 * 60_000
"""How long a resolved alert is kept (and re-sent) after it resolved."""


@dataclass(slots=True)
class Alert:
    """One alert of a rule. Times are int ms; None means "never" (Go's zero time)."""

    labels: Labels
    annotations: dict[str, str]
    state: str
    active_at: int
    value: float
    fired_at: int | None = None
    resolved_at: int | None = None
    last_sent_at: int | None = None
    valid_until: int | None = None
    keep_firing_since: int | None = None

    def needs_sending(self, t_ms: int, resend_delay_ms: int) -> bool:
        if self.state == STATE_PENDING:
            return False
        if self.resolved_at is not None and (
            self.last_sent_at is None or self.resolved_at > self.last_sent_at
        ):
            return True
        if self.last_sent_at is None:
            return True
        return self.last_sent_at + resend_delay_ms < t_ms


class AlertingRule(RuleBase):
    """`alert: name`; label and annotation values are templates expanded per alert."""

    kind = "alerting"

    def __init__(
        self,
        name: str,
        expr: str,
        *,
        for_ms: int = 0,
        keep_firing_for_ms: int = 0,
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
        external_labels: dict[str, str] | None = None,
        external_url: str = "",
        restored: bool = True,
    ) -> None:
        super().__init__(name, expr, labels or {})
        self.for_ms = int(for_ms)
        self.keep_firing_for_ms = int(keep_firing_for_ms)
        self.annotations = dict(sorted((annotations or {}).items()))
        self.external_labels = dict(external_labels or {})
        self.external_url = external_url
        self.restored = restored
        self.active: dict[Labels, Alert] = {}
        self.lock = threading.Lock()
        self._expander = Expander("__alert_" + name)

    # -- evaluation ----------------------------------------------------------

    def eval(self, t_ms: int, query_offset_ms: int, query: QueryFunc, limit: int = 0) -> Vector:
        """Update alert states for evaluation time `t_ms`; return the ALERTS and
        ALERTS_FOR_STATE samples to write. Raises RuleEvalError (state unchanged
        except on a limit overrun, which clears all alerts, as Prometheus)."""
        q_ts = t_ms - query_offset_ms
        rows = query_vector(query, self.expr, q_ts)
        fresh: dict[Labels, Alert] = {}
        for s in rows:
            base = s.labels.to_dict()

            def expand(text: str, base: dict[str, str] = base, v: float = s.v) -> str:
                return self._expander.expand(
                    text,
                    base,
                    v,
                    external_labels=self.external_labels,
                    external_url=self.external_url,
                    query=query,
                    t_ms=q_ts,
                )

            # Prometheus drops the metric name from alert labels (templates still see it).
            lb = {k: v for k, v in base.items() if k != METRIC_NAME}
            for k, v in self.labels.items():
                lb[k] = expand(v)
            lb[ALERT_NAME] = self.name
            lbls = Labels.from_dict({k: v for k, v in lb.items() if v != ""})
            if lbls in fresh:
                raise RuleEvalError(
                    "vector contains metrics with the same labelset after applying alert labels"
                )
            ann = {k: expand(v) for k, v in self.annotations.items()}
            fresh[lbls] = Alert(lbls, ann, STATE_PENDING, t_ms, s.v)

        out: Vector = []
        with self.lock:
            for h, a in fresh.items():
                cur = self.active.get(h)
                if cur is not None and cur.state != STATE_INACTIVE:
                    cur.value = a.value
                    cur.annotations = a.annotations
                    continue
                self.active[h] = a
            n_active = 0
            for h, a in list(self.active.items()):
                if h not in fresh:
                    keep = False
                    if a.state == STATE_FIRING and self.keep_firing_for_ms > 0:
                        if a.keep_firing_since is None:
                            a.keep_firing_since = t_ms
                        if t_ms - a.keep_firing_since < self.keep_firing_for_ms:
                            keep = True
                    if a.state == STATE_PENDING or (
                        a.resolved_at is not None and t_ms - a.resolved_at > RESOLVED_RETENTION_MS
                    ):
                        del self.active[h]
                    if a.state != STATE_INACTIVE and not keep:
                        a.state = STATE_INACTIVE
                        a.resolved_at = t_ms
                    if not keep:
                        continue
                else:
                    a.keep_firing_since = None
                n_active += 1
                if a.state == STATE_PENDING and t_ms - a.active_at >= self.for_ms:
                    a.state = STATE_FIRING
                    a.fired_at = t_ms
                if self.restored:
                    out.append((self._series(a, ALERT_METRIC, True), q_ts, 1.0))
                    out.append(
                        (
                            self._series(a, ALERT_FOR_STATE_METRIC, False),
                            q_ts,
                            float(a.active_at // 1000),
                        )
                    )
            if limit > 0 and n_active > limit:
                self.active = {}
                raise RuleEvalError(f"exceeded limit of {limit} with {n_active} alerts")
        return out

    def _series(self, a: Alert, metric: str, with_state: bool) -> Labels:
        d = a.labels.to_dict()
        d[METRIC_NAME] = metric
        d[ALERT_NAME] = self.name
        if with_state:
            d[ALERT_STATE] = a.state
        return Labels.from_dict(d)

    def alerts_to_send(self, t_ms: int, resend_delay_ms: int, interval_ms: int) -> list[Alert]:
        """Prometheus's sendAlerts: copies of the alerts due at `t_ms`, marked sent."""
        out: list[Alert] = []
        delta = max(resend_delay_ms, interval_ms)
        with self.lock:
            for a in self.active.values():
                if a.needs_sending(t_ms, resend_delay_ms):
                    a.last_sent_at = t_ms
                    a.valid_until = t_ms + 4 * delta
                    out.append(replace(a, annotations=dict(a.annotations)))
        return out

    # -- restoring `for` state ----------------------------------------------

    def for_state_labels(self, a: Alert) -> Labels:
        return self._series(a, ALERT_FOR_STATE_METRIC, False)

    # -- reading ---------------------------------------------------------------

    def snapshot(self) -> list[Alert]:
        """Copies of the pending and firing alerts, sorted by labels."""
        with self.lock:
            alerts = [replace(a) for a in self.active.values() if a.state != STATE_INACTIVE]
        return sorted(alerts, key=lambda a: a.labels)

    def state(self) -> str:
        states = {a.state for a in self.snapshot()}
        if STATE_FIRING in states:
            return STATE_FIRING
        if STATE_PENDING in states:
            return STATE_PENDING
        return STATE_INACTIVE

    def copy_state_from(self, other: Any) -> None:
        """Take over `other`'s alerts after a reload (same name and labels)."""
        with other.lock:
            self.active = other.active
        self.restored = other.restored or self.restored
