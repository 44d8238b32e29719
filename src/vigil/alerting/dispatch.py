"""Aggregation groups and their timers (Alertmanager's dispatcher).

Every alert is routed; for each matching route it joins the aggregation group
keyed by the route and the alert's values of the route's ``group_by`` labels.
A new group first flushes after ``group_wait`` (at once if the alert is already
older than that), then every ``group_interval``. Each flush hands the group's
alerts to the pipeline, whose dedup stage decides whether anything is sent
(new firing alerts, newly resolved ones, or ``repeat_interval`` elapsed).
After a successful flush, resolved alerts that did not change meanwhile leave
the group. Empty groups live on (their timer ticking, flushing nothing) until
the next cleanup, every `cleanup_interval` seconds (30 s, as Alertmanager): an
alert re-firing into such a group waits for its next group_interval tick, not
for group_wait.

Time is injected: `flush_due(now)` runs the groups that are due, so tests step
a fake clock; `run()` is the real-time loop around it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from vigil.alerting.alert import Alert
from vigil.alerting.receivers.base import NotifyContext
from vigil.alerting.route import Route, group_key
from vigil.alerting.stages import Stage
from vigil.model.labels import Labels

log = logging.getLogger("vigil.alerting")


def _labels_before(a: Labels, b: Labels) -> int:
    # Prometheus's LabelSet.Before: fewer labels first, then by the values of
    # the sorted union of names, a missing name sorting first.
    if len(a) != len(b):
        return -1 if len(a) < len(b) else 1
    for n in sorted({*a.names(), *b.names()}):
        if not a.has(n):
            return -1
        if not b.has(n):
            return 1
        va, vb = a.get(n), b.get(n)
        if va != vb:
            return -1 if va < vb else 1
    return 0


def _alert_cmp(x: Alert, y: Alert) -> int:
    for name in ("job", "instance"):
        hx, hy = x.labels.has(name), y.labels.has(name)
        if not hx and not hy:
            continue
        if not hx:
            return 1
        if not hy:
            return -1
        vx, vy = x.labels.get(name), y.labels.get(name)
        if vx != vy:
            return -1 if vx < vy else 1
    return _labels_before(x.labels, y.labels)


alert_sort_key = functools.cmp_to_key(_alert_cmp)
"""Alertmanager's order inside a group: by job, then instance, then label sets
(fewer labels first). Use as ``sorted(alerts, key=alert_sort_key)``."""


@dataclass(eq=False)
class AggrGroup:
    route: Route
    labels: Labels
    key: str
    next_flush: float
    alerts: dict[int, Alert] = field(default_factory=dict)
    has_flushed: bool = False
    flushing: bool = False


class Dispatcher:
    """Groups alerts and flushes them through `stage`. Thread-safe inserts."""

    def __init__(
        self,
        route: Route,
        stage: Stage,
        now: Callable[[], float],
        cleanup_interval: float = 30.0,
    ) -> None:
        self.route = route
        self.cleanup_interval = cleanup_interval
        self._next_cleanup = now() + cleanup_interval
        self.stage = stage
        self._now = now
        self._lock = threading.Lock()
        self._groups: dict[tuple[int, str], AggrGroup] = {}
        self._routes_by_id = {id(r): r for r in route.walk()}
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped = False
        self._tasks: set[asyncio.Task[int]] = set()

    # -- ingest ----------------------------------------------------------
    def insert(self, alerts: Iterable[Alert]) -> None:
        """Put (new versions of) alerts into their groups."""
        now = self._now()
        with self._lock:
            for a in alerts:
                for r in self.route.match(a.labels):
                    gl = r.group_labels(a.labels)
                    k = (id(r), str(gl))
                    g = self._groups.get(k)
                    if g is None:
                        g = AggrGroup(r, gl, group_key(r, gl), now + r.opts.group_wait)
                        self._groups[k] = g
                    g.alerts[a.fp] = a
                    # An alert older than group_wait need not wait for company.
                    if not g.has_flushed and a.starts_at + r.opts.group_wait < now:
                        g.next_flush = min(g.next_flush, now)
        self._poke()

    def _poke(self) -> None:
        if self._wake is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    # -- flushing --------------------------------------------------------
    def next_due(self) -> float | None:
        with self._lock:
            due = [g.next_flush for g in self._groups.values() if not g.flushing]
        return min(due) if due else None

    async def flush_due(self, now: float | None = None) -> int:
        """Flush every group whose timer has expired; returns how many were flushed."""
        t = self._now() if now is None else now
        with self._lock:
            due = [g for g in self._groups.values() if g.next_flush <= t and not g.flushing]
            for g in due:
                g.flushing = True
                g.has_flushed = True
                g.next_flush = t + g.route.opts.group_interval
        if due:
            await asyncio.gather(*(self._flush(g, t) for g in due))
        if t >= self._next_cleanup:
            self._next_cleanup = t + self.cleanup_interval
            with self._lock:
                self._groups = {k: g for k, g in self._groups.items() if g.alerts or g.flushing}
        return len(due)

    async def _flush(self, g: AggrGroup, now: float) -> None:
        try:
            with self._lock:
                alerts = sorted(g.alerts.values(), key=alert_sort_key)
            if not alerts:
                return
            o = g.route.opts
            ctx = NotifyContext(
                receiver=o.receiver,
                group_key=g.key,
                group_labels=g.labels,
                now=now,
                repeat_interval=o.repeat_interval,
                group_interval=o.group_interval,
                mute_time_intervals=o.mute_time_intervals,
                active_time_intervals=o.active_time_intervals,
            )
            try:
                await self.stage.exec(ctx, list(alerts))
            except Exception as exc:
                log.warning("notify for group %s failed: %s", g.key, exc)
                return
            with self._lock:
                for a in alerts:
                    if a.resolved(now) and g.alerts.get(a.fp) is a:
                        del g.alerts[a.fp]
        finally:
            with self._lock:
                g.flushing = False

    async def run(self, sleep_cap: float = 1.0) -> None:
        """Flush groups as their timers expire until `stop()`."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        while not self._stopped:
            nxt = self.next_due()
            delay = sleep_cap if nxt is None else max(0.0, min(sleep_cap, nxt - self._now()))
            if delay > 0:
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=delay)
                except TimeoutError:
                    pass
                self._wake.clear()
            if self._stopped:
                break
            # Flushes run as tasks so a receiver retrying doesn't delay other groups.
            task = asyncio.create_task(self.flush_due(self._now()))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            await asyncio.sleep(0)
        for t in list(self._tasks):
            t.cancel()

    def stop(self) -> None:
        self._stopped = True
        self._poke()

    # -- inspection ------------------------------------------------------
    def groups(self) -> list[AggrGroup]:
        with self._lock:
            return list(self._groups.values())

    def receivers_for(self, labels: Labels) -> list[str]:
        seen: list[str] = []
        for r in self.route.match(labels):
            if r.opts.receiver not in seen:
                seen.append(r.opts.receiver)
        return seen
