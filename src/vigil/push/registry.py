"""Pushed groups, kept alive in the TSDB while they live.

A Pushgateway keeps pushed values in memory and Prometheus scrapes them. Vigil has
no scrape in between, so the registry writes into the store itself:

- at push time, every series of the group is appended at the push time;
- every `refresh_interval_s` (15 s) the group's latest values are appended again,
  so they stay within the query lookback (5 m) for as long as the group lives;
- series that leave a group (a PUT without them, a POST replacing their family),
  and every series of a deleted or expired group, get a staleness marker, so
  instant queries stop returning them at once instead of 5 minutes later.

Each group also carries ``push_time_seconds`` and ``push_failure_time_seconds``
with its grouping labels, as in Pushgateway. A group pushed with a TTL (the
``X-Vigil-TTL`` header, else `default_ttl_s`; none means it never expires) is
removed when the TTL passes without a successful push.

Thread-safe: one lock serializes pushes, deletes and ticks, which is also what
keeps each series' timestamps ascending. Times from `now` are float seconds;
stored timestamps are int milliseconds.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vigil.model.labels import METRIC_NAME, Labels
from vigil.model.samples import STALE_NAN
from vigil.scrape.exposition import MetricMetadata
from vigil.storage.interface import Appendable

from . import state
from .body import (
    INCONSISTENT,
    PUSH_FAILURE_TIME,
    PUSH_TIME,
    UNTYPED,
    PushedFamilies,
    PushRejected,
    decode_push,
)

log = logging.getLogger("vigil.push")

MetricTuple = tuple[str, dict[str, str], float, str, str]


@dataclass
class Group:
    """One pushed group. `families` maps family name -> {series labels -> value}
    (grouping labels already applied); times are float seconds (0 = never)."""

    grouping: Labels
    families: dict[str, dict[Labels, float]] = field(default_factory=dict)
    metadata: dict[str, MetricMetadata] = field(default_factory=dict)
    push_time: float = 0.0
    failure_time: float = 0.0
    ttl_s: float | None = None
    written_ms: int = -1
    """Timestamp of the group's last write to the store (-1: never)."""

    @property
    def expires_at(self) -> float | None:
        return None if self.ttl_s is None else self.push_time + self.ttl_s

    def series(self) -> dict[Labels, float]:
        """Every series the group writes, its own push-time gauges included."""
        out: dict[Labels, float] = {}
        for fam in self.families.values():
            out.update(fam)
        out[self.own_series(PUSH_TIME)] = self.push_time
        out[self.own_series(PUSH_FAILURE_TIME)] = self.failure_time
        return out

    def own_series(self, name: str) -> Labels:
        """Labels of the group's own gauge `name` (push time, failure time)."""
        return Labels.from_dict({**self.grouping.to_dict(), METRIC_NAME: name})

    def summary(self) -> dict[str, Any]:
        """The group as ``GET /api/v1/push/groups`` lists it."""
        return {
            "labels": self.grouping.to_dict(),
            "lastPushTime": self.push_time,
            "lastFailureTime": self.failure_time,
            "ttlSeconds": self.ttl_s,
            "expiresAt": self.expires_at,
            "series": sum(len(f) for f in self.families.values()),
            "families": sorted(self.families),
        }


class PushRegistry:
    """The pushed groups of one Vigil. `start()` runs the refresh/expiry thread;
    tests call `tick()` with an injected clock instead."""

    def __init__(
        self,
        storage: Appendable,
        *,
        now: Callable[[], float] = time.time,
        default_ttl_s: float | None = None,
        refresh_interval_s: float = 15.0,
        tick_interval_s: float = 1.0,
        state_file: Path | None = None,
    ) -> None:
        if default_ttl_s is not None and default_ttl_s <= 0:
            raise ValueError(f"default TTL must be positive seconds, got {default_ttl_s}")
        self.storage = storage
        self.now = now
        self.default_ttl_s = default_ttl_s
        self.refresh_ms = int(refresh_interval_s * 1000)
        self.tick_interval_s = tick_interval_s
        self.state_file = state_file
        self._lock = threading.RLock()
        self._groups: dict[Labels, Group] = {}
        self._owner: dict[Labels, Labels] = {}  # series labels -> grouping of its group
        self._dirty = False
        self._saved_at = 0.0
        self.save_interval_s = refresh_interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.pushes_total = 0
        self.deletes_total = 0
        self.failures_total = 0
        self.expired_total = 0
        self.rejected_samples_total = 0

    # -- changes -------------------------------------------------------------

    def push(
        self,
        grouping: Labels,
        body: bytes,
        content_type: str | None,
        *,
        replace: bool,
        ttl_s: float | None = None,
    ) -> Group:
        """Apply a PUT (`replace`) or POST of `body` to the group `grouping` (which
        holds ``job``); returns the group. Raises `PushRejected` leaving the group
        as it was, except ``push_failure_time_seconds`` of an existing group when
        the body parsed but was refused (as Pushgateway does)."""
        if ttl_s is not None and not (ttl_s > 0 and math.isfinite(ttl_s)):
            raise PushRejected(400, f"TTL must be a positive number of seconds, got {ttl_s}")
        try:
            pushed = decode_push(body, content_type, grouping)
        except PushRejected as exc:
            self._failed(grouping, exc)
            raise
        with self._lock:
            try:
                self._check_consistent(grouping, pushed)
            except PushRejected as exc:
                self._failed(grouping, exc)
                raise
            now = self.now()
            group = self._groups.get(grouping)
            if group is None:
                group = self._groups[grouping] = Group(grouping)
            before = group.series()
            if replace:
                group.families, group.metadata = pushed.families, pushed.metadata
            else:
                group.families = {**group.families, **pushed.families}
                group.metadata = {**group.metadata, **pushed.metadata}
            group.push_time = now
            group.ttl_s = ttl_s if ttl_s is not None else self.default_ttl_s
            after = group.series()
            gone = before.keys() - after.keys()
            for labels in gone:
                self._owner.pop(labels, None)
            for labels in after:
                self._owner[labels] = grouping
            self._write([(group, after, gone)], now)
            self.pushes_total += 1
            self._dirty = True
            return group

    def delete(self, grouping: Labels) -> bool:
        """Remove the group and mark its series stale; False when there was none."""
        with self._lock:
            group = self._groups.get(grouping)
            if group is None:
                return False
            self._remove([group], self.now())
            self.deletes_total += 1
            return True

    def tick(self, *, refresh_all: bool = False) -> None:
        """Expire groups whose TTL passed; re-append the others' values when their
        last write is `refresh_interval_s` old (or at once with `refresh_all`); save
        the state when it changed."""
        with self._lock:
            now = self.now()
            expired = [
                g for g in self._groups.values() if g.expires_at is not None and g.expires_at <= now
            ]
            if expired:
                self._remove(expired, now)
                self.expired_total += len(expired)
                for g in expired:
                    log.info("push group %s expired (TTL %gs)", g.grouping, g.ttl_s)
            now_ms = int(now * 1000)
            due = [
                g
                for g in self._groups.values()
                if refresh_all or now_ms - g.written_ms >= self.refresh_ms
            ]
            if due:
                self._write([(g, g.series(), ()) for g in due], now)
            if (
                self._dirty
                and self.state_file is not None
                and now - self._saved_at >= self.save_interval_s
            ):
                self.save()

    def _failed(self, grouping: Labels, exc: PushRejected) -> None:
        with self._lock:
            self.failures_total += 1
            group = self._groups.get(grouping)
            if exc.consistency and group is not None:
                now = self.now()
                group.failure_time = now
                failure = {group.own_series(PUSH_FAILURE_TIME): now}
                self._write([(group, failure, ())], now)
                self._dirty = True

    def _check_consistent(self, grouping: Labels, pushed: PushedFamilies) -> None:
        """Refuse series another group owns and families whose type differs from
        the same family in another group (Pushgateway: "cannot merge metric")."""
        for family, series in pushed.families.items():
            mtype = pushed.metadata.get(family, UNTYPED).type
            for other in self._groups.values():
                if other.grouping == grouping or family not in other.families:
                    continue
                theirs = other.metadata.get(family, UNTYPED).type
                if theirs != mtype:
                    raise PushRejected(
                        400,
                        INCONSISTENT + f"cannot merge metric {family!r}: type {mtype} in this "
                        f"push, {theirs} in group {other.grouping}",
                        consistency=True,
                    )
            for labels in series:
                owner = self._owner.get(labels)
                if owner is not None and owner != grouping:
                    raise PushRejected(
                        400,
                        INCONSISTENT + f"series {labels} is already pushed by group {owner}",
                        consistency=True,
                    )

    def _remove(self, groups: Iterable[Group], now: float) -> None:
        entries: list[tuple[Group, dict[Labels, float], Iterable[Labels]]] = []
        for g in groups:
            del self._groups[g.grouping]
            series = g.series()
            for labels in series:
                self._owner.pop(labels, None)
            entries.append((g, {}, series.keys()))
        self._write(entries, now)
        self._dirty = True

    def _write(
        self,
        entries: list[tuple[Group, dict[Labels, float], Iterable[Labels]]],
        now: float,
    ) -> None:
        """Append each group's `values` and a staleness marker for each `stale`
        series, at one timestamp per group that is later than its previous write."""
        app = self.storage.appender()
        for group, values, stale in entries:
            t = max(int(now * 1000), group.written_ms + 1)
            for labels, v in values.items():
                app.append(labels, t, v)
            for labels in stale:
                app.append(labels, t, STALE_NAN)
            group.written_ms = t
        stats = app.commit()
        if stats.rejected:
            self.rejected_samples_total += stats.rejected
            log.warning("push: the store refused %d samples (out of order?)", stats.rejected)

    # -- reading -------------------------------------------------------------

    def groups(self) -> list[dict[str, Any]]:
        """Every group's summary, sorted by grouping labels."""
        with self._lock:
            return [self._groups[k].summary() for k in sorted(self._groups)]

    def metrics(self) -> list[MetricTuple]:
        """Self-metrics for Vigil's /metrics."""
        with self._lock:
            series = sum(len(f) for g in self._groups.values() for f in g.families.values())
            return [
                ("vigil_push_groups", {}, float(len(self._groups)), "gauge", "Pushed groups."),
                ("vigil_push_series", {}, float(series), "gauge", "Series in pushed groups."),
                (
                    "vigil_push_requests_total",
                    {},
                    float(self.pushes_total),
                    "counter",
                    "Successful PUT and POST pushes.",
                ),
                (
                    "vigil_push_failures_total",
                    {},
                    float(self.failures_total),
                    "counter",
                    "Pushes refused (bad body, inconsistent with other groups).",
                ),
                (
                    "vigil_push_deletes_total",
                    {},
                    float(self.deletes_total),
                    "counter",
                    "Groups removed by DELETE.",
                ),
                (
                    "vigil_push_expired_groups_total",
                    {},
                    float(self.expired_total),
                    "counter",
                    "Groups removed because their TTL passed without a push.",
                ),
                (
                    "vigil_push_rejected_samples_total",
                    {},
                    float(self.rejected_samples_total),
                    "counter",
                    "Pushed samples the store refused.",
                ),
            ]

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        """Load the saved groups (if any), write them at once, start the thread."""
        if self.state_file is not None:
            with self._lock:
                for group in state.load(self.state_file):
                    self._groups[group.grouping] = group
                    for labels in group.series():
                        self._owner[labels] = group.grouping
        self.tick(refresh_all=True)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="vigil-push", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and save the groups. Series are not marked stale: a
        restart within the lookback continues them."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self.state_file is not None:
            with self._lock:
                self.save()

    def save(self) -> None:
        with self._lock:
            if self.state_file is not None:
                state.save(self.state_file, list(self._groups.values()))
            self._dirty = False
            self._saved_at = self.now()

    def _run(self) -> None:
        while not self._stop.wait(self.tick_interval_s):
            try:
                self.tick()
            except Exception:
                log.exception("push registry tick failed")
