"""Turns changes of alert and silence state into history events.

`scan()` compares what it sees now (alerts, their silenced/inhibited state,
silences, acknowledgements) with what it saw last and records the difference
in the `History`. It is called after every change the pipeline knows of
(alerts posted, silences changed) and once a second for what only time
changes (resolve by timeout, silence expiry). Its memory is rebuilt from the
history on start, so a restart does not record the same transitions twice.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from vigil.alerting.ack import Acks
from vigil.alerting.alert import Alert, format_time
from vigil.alerting.history import History
from vigil.alerting.silence import Silence
from vigil.model.labels import Labels
from vigil.model.matchers import MatchType

_MAX_TRACKED = 200_000


def silence_labels(s: Silence) -> Labels:
    """A silence's equality matchers as labels, so history filters find it."""
    return Labels.from_dict({m.name: m.value for m in s.matchers if m.type is MatchType.EQUAL})


class Observer:
    def __init__(
        self,
        history: History,
        acks: Acks,
        alerts: Callable[[], Iterable[Alert]],
        silences: Callable[[], Iterable[Silence]],
        silenced_by: Callable[[Labels], list[str]],
        inhibited_by: Callable[[Labels], list[str]],
        now: Callable[[], float],
    ) -> None:
        self.history = history
        self.acks = acks
        self._alerts = alerts
        self._silences = silences
        self._silenced_by = silenced_by
        self._inhibited_by = inhibited_by
        self._now = now
        self._lock = threading.Lock()
        self._state: dict[str, tuple[str, float]] = {}  # fp -> (status, startsAt)
        self._silenced: dict[str, tuple[str, ...]] = {}
        self._inhibited: dict[str, tuple[str, ...]] = {}
        self._silence_state: dict[str, str] = {}
        self._replay()

    def _replay(self) -> None:
        for e in self.history.events():
            d = e.details
            if e.kind == "firing":
                self._state[e.ref] = ("firing", float(d.get("startsAtUnix", 0.0)))
            elif e.kind == "resolved":
                old = self._state.get(e.ref, ("", 0.0))
                self._state[e.ref] = ("resolved", old[1])
                self._silenced.pop(e.ref, None)
                self._inhibited.pop(e.ref, None)
            elif e.kind == "silenced":
                self._silenced[e.ref] = tuple(d.get("silencedBy", ()))
            elif e.kind == "unsilenced":
                self._silenced.pop(e.ref, None)
            elif e.kind == "inhibited":
                self._inhibited[e.ref] = tuple(d.get("inhibitedBy", ()))
            elif e.kind == "uninhibited":
                self._inhibited.pop(e.ref, None)
            elif e.kind == "silence_created":
                self._silence_state[e.ref] = "active"
            elif e.kind == "silence_expired":
                self._silence_state[e.ref] = "expired"

    def scan(self) -> None:
        with self._lock:
            now = self._now()
            # Silences first, so "silence_created" precedes the "silenced" it causes.
            for s in self._silences():
                self._silence(s, now)
            alerts = {a.fingerprint: a for a in self._alerts()}
            for fp, a in alerts.items():
                self._alert(fp, a, now)
            for ack in self.acks.list():
                cur = alerts.get(ack.fingerprint)
                why = ack.why_ended(cur, now)
                if why and self.acks.remove(ack.fingerprint) is not None:
                    self.history.record(
                        "unacknowledged",
                        cur.labels if cur else Labels.EMPTY,
                        ack.fingerprint,
                        reason=why,
                        by=ack.by,
                    )
            self._prune(alerts)

    def _alert(self, fp: str, a: Alert, now: float) -> None:
        h = self.history
        status, starts = self._state.get(fp, ("", 0.0))
        resolved = a.resolved(now)
        new_start = status != "firing" or starts != a.starts_at
        if (not resolved or status == "") and new_start:
            h.record(
                "firing",
                a.labels,
                fp,
                at=a.starts_at,
                startsAt=format_time(a.starts_at),
                startsAtUnix=a.starts_at,
                annotations=dict(a.annotations),
            )
            self._state[fp] = ("firing", a.starts_at)
        if resolved:
            if self._state[fp][0] == "firing":
                h.record("resolved", a.labels, fp, at=a.ends_at, endsAt=format_time(a.ends_at))
                self._state[fp] = ("resolved", a.starts_at)
            self._silenced.pop(fp, None)
            self._inhibited.pop(fp, None)
            return
        self._muting(fp, a, self._silenced, self._silenced_by, "silenced", "silencedBy")
        self._muting(fp, a, self._inhibited, self._inhibited_by, "inhibited", "inhibitedBy")

    def _muting(
        self,
        fp: str,
        a: Alert,
        known: dict[str, tuple[str, ...]],
        by: Callable[[Labels], list[str]],
        kind: str,
        field: str,
    ) -> None:
        now_by = tuple(by(a.labels))
        was = known.get(fp, ())
        if now_by == was:
            return
        if now_by:
            known[fp] = now_by
            if not was:
                details: dict[str, Any] = {field: list(now_by)}
                self.history.record(kind, a.labels, fp, **details)
        else:
            del known[fp]
            self.history.record("un" + kind, a.labels, fp)

    def _silence(self, s: Silence, now: float) -> None:
        st = s.state(now)
        prev = self._silence_state.get(s.id)
        if prev is None:
            self.history.record(
                "silence_created",
                silence_labels(s),
                s.id,
                at=s.updated_at or now,
                createdBy=s.created_by,
                comment=s.comment,
                matchers=[str(m) for m in s.matchers],
                startsAt=format_time(s.starts_at),
                endsAt=format_time(s.ends_at),
            )
        if st == "expired" and prev != "expired":
            self.history.record("silence_expired", silence_labels(s), s.id, at=min(s.ends_at, now))
        self._silence_state[s.id] = "expired" if st == "expired" else "active"

    def _prune(self, alerts: dict[str, Alert]) -> None:
        # Forget resolved alerts the store dropped; firing ones are kept so an
        # alert re-sent after a restart is not recorded as firing twice.
        for fp in [fp for fp, (st, _) in self._state.items() if st == "resolved"]:
            if fp not in alerts:
                del self._state[fp]
        if len(self._state) > _MAX_TRACKED:
            for fp in list(self._state)[: len(self._state) - _MAX_TRACKED]:
                del self._state[fp]
