"""The Alertmanager object: builds and runs the notification pipeline.

    am = Alertmanager(load_config_file("alertmanager.yml"), data_dir="data/am")
    await am.start()
    am.put_alerts([...])           # from the API or the rule engine
    am.apply_config(new_config)    # validates everything, then swaps
    await am.stop()

Time is injected (`now`, Unix seconds) so tests drive the timers with
`await am.tick()` instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vigil.alerting.ack import Ack, Acks
from vigil.alerting.alert import Alert, format_time, parse_time
from vigil.alerting.config import AlertmanagerConfig, ConfigError
from vigil.alerting.dispatch import Dispatcher
from vigil.alerting.history import History
from vigil.alerting.inhibit import Inhibitor
from vigil.alerting.nflog import NotificationLog
from vigil.alerting.observer import Observer
from vigil.alerting.receivers import build_notifier
from vigil.alerting.receivers.http import aclose_client, shared_client
from vigil.alerting.route import Route
from vigil.alerting.silence import Silences
from vigil.alerting.stages import (
    FanoutStage,
    IntegrationStage,
    MultiStage,
    MuteStage,
    NotifyResult,
    ReceiverPipeline,
    RoutingStage,
    Stage,
    TimeActiveStage,
    TimeMuteStage,
)
from vigil.alerting.store import StateStore
from vigil.alerting.templates import build_templates, common_labels
from vigil.config.loader import ConfigProblem
from vigil.gotemplate import TemplateError
from vigil.model.labels import LABEL_NAME_RE, Labels

VERSION = "0.27.0-vigil"
log = logging.getLogger("vigil.alerting")


class AlertValidationError(ValueError):
    """A posted alert is invalid; the message names the alert index and field."""


class AlertStore:
    """Current alerts by fingerprint, merged as Alertmanager merges updates."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._alerts: dict[int, Alert] = {}

    def put(self, alerts: Iterable[Alert], now: float) -> list[Alert]:
        out = []
        with self._lock:
            for a in alerts:
                old = self._alerts.get(a.fp)
                # Merge only overlapping lifetimes; a re-fire after resolution starts fresh.
                if old is not None and not (old.resolved(now) and a.starts_at > old.ends_at):
                    a = a.merge(old, now)
                self._alerts[a.fp] = a
                out.append(a)
        return out

    def list(self) -> list[Alert]:
        with self._lock:
            return list(self._alerts.values())

    def gc(self, now: float, keep: float) -> None:
        """Forget alerts resolved for longer than `keep` seconds."""
        with self._lock:
            self._alerts = {
                k: a
                for k, a in self._alerts.items()
                if not (a.resolved(now) and a.ends_at + keep < now)
            }


def parse_postable_alerts(doc: Any, now: float, resolve_timeout: float) -> list[Alert]:
    """Validate API v2 ``postableAlerts`` JSON into `Alert`s (Alertmanager's rules).

    Missing ``startsAt`` means now; missing ``endsAt`` means now + resolve_timeout
    (marked `timeout`). Raises `AlertValidationError` naming the bad alert.
    """
    if not isinstance(doc, list):
        raise AlertValidationError("body must be a JSON array of alerts")
    out: list[Alert] = []
    for i, d in enumerate(doc):
        where = f"alert {i}"
        if not isinstance(d, dict):
            raise AlertValidationError(f"{where}: must be an object")
        labels = d.get("labels")
        if not isinstance(labels, dict) or not labels:
            raise AlertValidationError(f"{where}: labels: at least one label pair required")
        ann = d.get("annotations") or {}
        if not isinstance(ann, dict):
            raise AlertValidationError(f"{where}: annotations must be an object")
        for k, v in [*labels.items(), *ann.items()]:
            if not isinstance(k, str) or not LABEL_NAME_RE.match(k):
                raise AlertValidationError(f"{where}: invalid label name {k!r}")
            if not isinstance(v, str):
                raise AlertValidationError(f"{where}: value of {k!r} must be a string")
        try:
            starts = parse_time(d["startsAt"]) if d.get("startsAt") else 0.0
            ends = parse_time(d["endsAt"]) if d.get("endsAt") else 0.0
        except (ValueError, TypeError) as exc:
            raise AlertValidationError(f"{where}: bad time: {exc}") from None
        timeout = False
        if not starts:
            # As Alertmanager: a given end time doubles as the start time.
            starts = ends or now
        if not ends:
            ends, timeout = now + resolve_timeout, True
        if ends < starts:
            raise AlertValidationError(f"{where}: start time must be before end time")
        gen = d.get("generatorURL") or ""
        if not isinstance(gen, str):
            raise AlertValidationError(f"{where}: generatorURL must be a string")
        out.append(
            Alert(Labels.from_dict(labels), Labels.from_dict(ann), starts, ends, gen, now, timeout)
        )
    return out


@dataclass
class _Live:
    """Everything derived from one config; swapped atomically on reload."""

    config: AlertmanagerConfig
    route: Route
    inhibitor: Inhibitor
    dispatcher: Dispatcher
    receivers: dict[str, ReceiverPipeline]


class Alertmanager:
    """The notification pipeline: alerts in, grouped/silenced/inhibited notifications out."""

    def __init__(
        self,
        config: AlertmanagerConfig,
        data_dir: str | Path | None = None,
        now: Callable[[], float] = time.time,
        external_url: str = "http://localhost:9093",
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        retry_initial: float = 0.5,
    ) -> None:
        self.now = now
        self.external_url = external_url.rstrip("/")
        self._sleep = sleep
        self._retry_initial = retry_initial
        self.started_at = now()
        self.alerts = AlertStore()
        self.silences = Silences(now)
        self.nflog = NotificationLog(now)
        self.store = StateStore(data_dir)
        self.store.load_silences(self.silences)
        self.store.load_nflog(self.nflog)
        self.nflog.on_change = lambda: self.store.save_nflog(self.nflog)
        # Vigil extensions: alert history and acknowledgements.
        self.history = History(data_dir, now)
        self.acks = Acks(data_dir, now)
        self._live = self._build(config)
        self.observer = Observer(
            self.history,
            self.acks,
            self.alerts.list,
            self.silences.list,
            self.silences.mutes,
            lambda ls: self.inhibitor.inhibited_by(ls),
            now,
        )
        self.silences.on_change = self._silences_changed
        self._tasks: list[asyncio.Task[None]] = []

    # -- building ----------------------------------------------------------
    def _build(self, config: AlertmanagerConfig) -> _Live:
        try:
            templates = build_templates(config.template_files)
        except (TemplateError, OSError) as exc:
            raise ConfigError(
                [ConfigProblem("templates", 0, 0, f"cannot load templates: {exc}")]
            ) from None
        route = Route.build(config.route)
        inhibitor = Inhibitor(config.inhibit_rules, self.alerts.list, self.now)
        receivers: dict[str, ReceiverPipeline] = {}
        chains: dict[str, Stage] = {}
        for rcv in config.receivers:
            pipe = ReceiverPipeline(rcv.name)
            counts: dict[str, int] = {}
            for kind, cfg in rcv.integrations:
                idx = counts.get(kind, 0)
                counts[kind] = idx + 1
                notifier = build_notifier(kind, cfg, templates, self.external_url)
                key = f"{rcv.name}/{kind.removesuffix('_configs')}/{idx}"
                pipe.integrations.append(
                    IntegrationStage(
                        key,
                        notifier,
                        self.nflog,
                        sleep=self._sleep,
                        initial_backoff=self._retry_initial,
                        acked=self.acks.is_acked,
                        on_result=self._notified,
                    )
                )
            receivers[rcv.name] = pipe
            chains[rcv.name] = MultiStage(
                MuteStage(inhibitor.mutes),
                TimeActiveStage(config.time_intervals),
                TimeMuteStage(config.time_intervals),
                MuteStage(lambda ls: bool(self.silences.mutes(ls))),
                FanoutStage(*pipe.integrations),
            )
        dispatcher = Dispatcher(route, RoutingStage(chains), self.now)
        return _Live(config, route, inhibitor, dispatcher, receivers)

    def _silences_changed(self) -> None:
        self.store.save_silences(self.silences)
        self.observer.scan()

    def _notified(self, r: NotifyResult) -> None:
        _, kind, idx = r.key.rsplit("/", 2)
        firing = [a for a in r.alerts if not a.resolved(r.ctx.now)]
        self.history.record(
            "notification",
            common_labels(r.alerts),
            r.ctx.group_key,
            receiver=r.ctx.receiver,
            integration=f"{kind}/{idx}",
            success=r.success,
            error=r.error,
            attempts=r.attempts,
            firing=len(firing),
            resolved=len(r.alerts) - len(firing),
            alerts=[a.fingerprint for a in r.alerts],
        )

    def acknowledge(
        self, fingerprint: str, by: str, comment: str = "", expires_at: float = 0.0
    ) -> Ack:
        """Acknowledge the firing alert `fingerprint`; raises `KeyError` or `AckError`."""
        a = next((a for a in self.alerts.list() if a.fingerprint == fingerprint), None)
        if a is None:
            raise KeyError(fingerprint)
        ack = self.acks.ack(a, by, comment, expires_at)
        self.history.record(
            "acknowledged",
            a.labels,
            fingerprint,
            by=by,
            comment=comment,
            expiresAt=format_time(expires_at) if expires_at else None,
        )
        return ack

    def unacknowledge(self, fingerprint: str, by: str = "") -> bool:
        """Withdraw an acknowledgement; False when there was none."""
        ack = self.acks.remove(fingerprint)
        if ack is None:
            return False
        a = next((a for a in self.alerts.list() if a.fingerprint == fingerprint), None)
        self.history.record(
            "unacknowledged",
            a.labels if a else Labels.EMPTY,
            fingerprint,
            reason="withdrawn",
            by=by or ack.by,
        )
        return True

    @property
    def config(self) -> AlertmanagerConfig:
        return self._live.config

    @property
    def dispatcher(self) -> Dispatcher:
        return self._live.dispatcher

    @property
    def inhibitor(self) -> Inhibitor:
        return self._live.inhibitor

    @property
    def receivers(self) -> Mapping[str, ReceiverPipeline]:
        return self._live.receivers

    def apply_config(self, config: AlertmanagerConfig) -> None:
        """Swap in a new config. Everything is built first; on error nothing changes.

        As in Alertmanager, groups are rebuilt from the current alerts; the nflog
        keeps already-sent notifications from repeating.
        """
        new = self._build(config)
        old = self._live
        new.dispatcher.insert(self.alerts.list())
        self._live = new
        if self._tasks:
            old.dispatcher.stop()
            self._tasks.append(asyncio.get_running_loop().create_task(new.dispatcher.run()))

    # -- alerts ------------------------------------------------------------
    def put_alerts(self, alerts: Iterable[Alert]) -> list[Alert]:
        """Store alerts (merging with known ones) and route them. Thread-safe."""
        stored = self.alerts.put(alerts, self.now())
        self._live.dispatcher.insert(stored)
        self.observer.scan()
        return stored

    def put_postable(self, doc: Any) -> list[Alert]:
        """Validate API v2 JSON and store the alerts; raises `AlertValidationError`."""
        alerts = parse_postable_alerts(doc, self.now(), self.config.global_.resolve_timeout)
        return self.put_alerts(alerts)

    def status_of(self, a: Alert) -> dict[str, Any]:
        """API v2 alert status: state, silencedBy, inhibitedBy."""
        silenced = self.silences.mutes(a.labels)
        inhibited = self.inhibitor.inhibited_by(a.labels)
        state = "suppressed" if silenced or inhibited else "active"
        return {"state": state, "silencedBy": silenced, "inhibitedBy": inhibited}

    # -- running -----------------------------------------------------------
    async def tick(self) -> int:
        """Flush due groups at the injected `now` (for tests and manual driving)."""
        self.observer.scan()
        return await self._live.dispatcher.flush_due(self.now())

    async def start(self) -> None:
        """Run the dispatcher and housekeeping on the current event loop."""
        loop = asyncio.get_running_loop()
        shared_client()  # built now: loading CA certificates would delay the first notification
        self._tasks.append(loop.create_task(self._live.dispatcher.run()))
        self._tasks.append(loop.create_task(self._maintenance()))
        self._tasks.append(loop.create_task(self._observe()))

    async def _observe(self, every: float = 1.0) -> None:
        # Time alone resolves alerts and expires silences; record those too.
        while True:
            await asyncio.sleep(every)
            try:
                self.observer.scan()
            except Exception:
                log.exception("recording alert history failed")

    async def _maintenance(self, every: float = 60.0) -> None:
        while True:
            await asyncio.sleep(every)
            self.silences.gc()
            if self.nflog.gc():
                self.store.save_nflog(self.nflog)
            self.alerts.gc(self.now(), keep=self.config.global_.resolve_timeout)

    async def stop(self) -> None:
        self._live.dispatcher.stop()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks = []
        await aclose_client()
        self.store.save_silences(self.silences)
        self.store.save_nflog(self.nflog)
