"""The notification pipeline as composable stages (Alertmanager's notify package).

A `Stage` takes the alerts of one aggregation group and returns those that go
on. Per receiver the pipeline is: inhibition -> active/mute time intervals ->
silences -> fan-out over integrations, each doing dedup (nflog) -> retry ->
log. `RoutingStage` picks the receiver's chain by name.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from vigil.alerting.alert import Alert
from vigil.alerting.nflog import Entry, NotificationLog
from vigil.alerting.receivers.base import Notifier, NotifyContext, NotifyError
from vigil.alerting.timeintervals import TimeInterval, any_contains
from vigil.model.labels import Labels

log = logging.getLogger("vigil.alerting")


class Stage(Protocol):
    async def exec(self, ctx: NotifyContext, alerts: list[Alert]) -> list[Alert]:
        """Process and return the alerts that continue; raise to signal failure."""
        ...


class MultiStage:
    """Runs stages in order; stops early when no alerts remain."""

    def __init__(self, *stages: Stage) -> None:
        self.stages = stages

    async def exec(self, ctx: NotifyContext, alerts: list[Alert]) -> list[Alert]:
        for s in self.stages:
            if not alerts:
                return alerts
            alerts = await s.exec(ctx, alerts)
        return alerts


class FanoutStage:
    """Runs stages concurrently; fails (after all finish) if any failed."""

    def __init__(self, *stages: Stage) -> None:
        self.stages = stages

    async def exec(self, ctx: NotifyContext, alerts: list[Alert]) -> list[Alert]:
        results = await asyncio.gather(
            *(s.exec(ctx, list(alerts)) for s in self.stages), return_exceptions=True
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise NotifyError("; ".join(str(e) for e in errors))
        return alerts


class RoutingStage:
    """Dispatches to the stage of `ctx.receiver`."""

    def __init__(self, by_receiver: Mapping[str, Stage]) -> None:
        self.by_receiver = dict(by_receiver)

    async def exec(self, ctx: NotifyContext, alerts: list[Alert]) -> list[Alert]:
        stage = self.by_receiver.get(ctx.receiver)
        if stage is None:
            log.warning(
                "no pipeline for receiver %r; dropping %d alerts", ctx.receiver, len(alerts)
            )
            return []
        return await stage.exec(ctx, alerts)


class MuteStage:
    """Drops alerts that `muted(labels)` says are muted (silences or inhibition)."""

    def __init__(self, muted: Callable[[Labels], bool]) -> None:
        self.muted = muted

    async def exec(self, ctx: NotifyContext, alerts: list[Alert]) -> list[Alert]:
        return [a for a in alerts if not self.muted(a.labels)]


class TimeMuteStage:
    """Drops everything while one of the route's mute time intervals is active."""

    def __init__(self, intervals: Mapping[str, Sequence[TimeInterval]]) -> None:
        self.intervals = intervals

    async def exec(self, ctx: NotifyContext, alerts: list[Alert]) -> list[Alert]:
        for name in ctx.mute_time_intervals:
            if any_contains(list(self.intervals.get(name, ())), ctx.now):
                return []
        return alerts


class TimeActiveStage:
    """Drops everything unless one of the route's active time intervals is active."""

    def __init__(self, intervals: Mapping[str, Sequence[TimeInterval]]) -> None:
        self.intervals = intervals

    async def exec(self, ctx: NotifyContext, alerts: list[Alert]) -> list[Alert]:
        if not ctx.active_time_intervals:
            return alerts
        for name in ctx.active_time_intervals:
            if any_contains(list(self.intervals.get(name, ())), ctx.now):
                return alerts
        return []


def needs_update(
    entry: Entry | None,
    firing: set[int],
    resolved: set[int],
    send_resolved: bool,
    repeat: float,
    now: float,
) -> bool:
    """Alertmanager's dedup decision for one integration."""
    if entry is None:
        return bool(firing)
    if not firing <= entry.firing:
        return True
    if not firing:
        # Everything resolved: tell the receiver once, whatever send_resolved says,
        # so the log forgets the firing alerts; unless it never knew about them.
        return bool(entry.firing)
    if send_resolved and not resolved <= entry.resolved:
        return True
    return entry.timestamp <= now - repeat


@dataclass
class IntegrationStats:
    """Counters per integration, for the API/UI ("notification statistics")."""

    sent: int = 0
    failed: int = 0
    last_error: str = ""
    last_attempt: float = 0.0


class IntegrationStage:
    """Dedup -> retry with exponential backoff -> record in the nflog."""

    def __init__(
        self,
        key: str,
        notifier: Notifier,
        nflog: NotificationLog,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        initial_backoff: float = 0.5,
        max_backoff: float = 60.0,
        max_attempts: int = 0,
        acked: Callable[[Alert], bool] | None = None,
        on_result: Callable[[NotifyResult], None] | None = None,
    ) -> None:
        self.key = key  # "<receiver>/<integration kind>/<index>"
        self.notifier = notifier
        self.nflog = nflog
        self.sleep = sleep
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.max_attempts = max_attempts
        self.stats = IntegrationStats()
        self.acked = acked
        self.on_result = on_result

    async def exec(self, ctx: NotifyContext, alerts: list[Alert]) -> list[Alert]:
        firing = {a.fp for a in alerts if not a.resolved(ctx.now)}
        resolved = {a.fp for a in alerts if a.resolved(ctx.now)}
        entry = self.nflog.query(ctx.group_key, self.key)
        send_resolved = self.notifier.send_resolved
        repeat = ctx.repeat_interval
        # Acknowledged alerts (a Vigil extension) do not repeat; changes still go out.
        acked = self.acked
        if acked is not None and firing and all(acked(a) for a in alerts if a.fp in firing):
            repeat = math.inf
        if not needs_update(entry, firing, resolved, send_resolved, repeat, ctx.now):
            return []
        to_send = alerts if send_resolved else [a for a in alerts if not a.resolved(ctx.now)]
        if to_send:
            await self._send_with_retry(ctx, to_send)
        # Alertmanager keeps entries for twice the repeat interval at least.
        self.nflog.log(ctx.group_key, self.key, firing, resolved)
        return alerts

    async def _send_with_retry(self, ctx: NotifyContext, alerts: list[Alert]) -> None:
        delay = self.initial_backoff
        budget = ctx.group_interval  # give up when the next flush is due
        spent = 0.0
        attempt = 0
        while True:
            attempt += 1
            try:
                await self.notifier.notify(ctx, alerts)
                self.stats.sent += 1
                self._report(ctx, alerts, attempt, "")
                return
            except NotifyError as exc:
                err: NotifyError = exc
            except Exception as exc:  # a notifier bug must not kill the dispatcher
                err = NotifyError(f"{type(exc).__name__}: {exc}", retry=True)
            self.stats.failed += 1
            self.stats.last_error = str(err)
            self.stats.last_attempt = ctx.now
            log.warning("notify %s (attempt %d) failed: %s", self.key, attempt, err)
            if (
                not err.retry
                or (self.max_attempts and attempt >= self.max_attempts)
                or spent + delay > budget
            ):
                self._report(ctx, alerts, attempt, str(err))
                raise NotifyError(f"{self.key}: {err} (after {attempt} attempts)", retry=False)
            wait = delay * random.uniform(0.5, 1.5)
            await self.sleep(wait)
            spent += wait
            delay = min(delay * 2, self.max_backoff)

    def _report(self, ctx: NotifyContext, alerts: list[Alert], attempts: int, error: str) -> None:
        if self.on_result is None:
            return
        try:
            self.on_result(NotifyResult(self.key, ctx, tuple(alerts), attempts, error))
        except Exception:
            log.exception("notification result hook failed")


@dataclass(frozen=True)
class NotifyResult:
    """The outcome of one notification (all its attempts). `error` is "" on success."""

    key: str  # "<receiver>/<integration kind>/<index>"
    ctx: NotifyContext
    alerts: tuple[Alert, ...]
    attempts: int
    error: str

    @property
    def success(self) -> bool:
        return not self.error


@dataclass
class ReceiverPipeline:
    """A receiver's integration stages, kept for stats lookups."""

    name: str
    integrations: list[IntegrationStage] = field(default_factory=list)
