"""Alert history (a Vigil extension): what happened to alerts, silences and notifications.

Events are appended to ``history.jsonl`` under the data dir, one JSON object a
line, and kept in memory for queries. The log is bounded: when the file passes
`max_bytes` it becomes ``history.1.jsonl`` (replacing the previous one) and a
new file starts, so at most about twice `max_bytes` is on disk; memory holds at
most `max_events`. Lines are flushed, not fsynced: a crash may lose the last
events, never corrupt earlier ones (a torn last line is skipped on load).

Kinds: ``firing``, ``resolved``, ``silenced``, ``unsilenced``, ``inhibited``,
``uninhibited``, ``acknowledged``, ``unacknowledged`` (alert events, `labels`
are the alert's), ``notification`` (`labels` are the labels common to the
notified alerts), ``silence_created``, ``silence_expired`` (`labels` are the
silence's equality matchers). Times are Unix seconds. Thread-safe.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from vigil.alerting.alert import format_time
from vigil.model.labels import Labels
from vigil.model.matchers import Matcher, matches_all

log = logging.getLogger("vigil.alerting")

KINDS = (
    "firing",
    "resolved",
    "silenced",
    "unsilenced",
    "inhibited",
    "uninhibited",
    "acknowledged",
    "unacknowledged",
    "notification",
    "silence_created",
    "silence_expired",
)


@dataclass(frozen=True)
class Event:
    """One history event. `ref` is the alert fingerprint or silence id ("" for none)."""

    time: float
    kind: str
    labels: Labels = Labels.EMPTY
    ref: str = ""
    details: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "kind": self.kind,
            "labels": dict(self.labels),
            "ref": self.ref,
            "details": self.details,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Event:
        return cls(
            float(d["time"]),
            str(d["kind"]),
            Labels.from_dict(d.get("labels") or {}),
            str(d.get("ref", "")),
            dict(d.get("details") or {}),
        )

    def api_json(self) -> dict[str, Any]:
        """The event as ``GET /api/v2/history`` shows it (RFC3339 time)."""
        return {
            "time": format_time(self.time),
            "kind": self.kind,
            "labels": dict(self.labels),
            "ref": self.ref,
            **self.details,
        }


class History:
    """The bounded append-only event log (memory only when `data_dir` is None)."""

    FILE = "history.jsonl"
    OLD = "history.1.jsonl"

    def __init__(
        self,
        data_dir: str | Path | None,
        now: Callable[[], float],
        max_bytes: int = 8 << 20,
        max_events: int = 100_000,
    ) -> None:
        self._now = now
        self.dir = Path(data_dir) if data_dir else None
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._events: deque[Event] = deque(maxlen=max_events)
        self._size = 0
        if self.dir:
            self.dir.mkdir(parents=True, exist_ok=True)
            for name in (self.OLD, self.FILE):
                self._events.extend(self._load(self.dir / name))
            path = self.dir / self.FILE
            self._size = path.stat().st_size if path.exists() else 0

    @staticmethod
    def _load(path: Path) -> list[Event]:
        if not path.exists():
            return []
        out = []
        with open(path, "rb") as f:
            for n, line in enumerate(f, 1):
                try:
                    out.append(Event.from_json(orjson.loads(line)))
                except (ValueError, KeyError, TypeError) as exc:
                    log.warning("%s:%d: skipping unreadable history line: %s", path, n, exc)
        return out

    def record(
        self,
        kind: str,
        labels: Labels = Labels.EMPTY,
        ref: str = "",
        at: float | None = None,
        **details: Any,
    ) -> Event:
        """Append an event (at `at`, default now)."""
        e = Event(self._now() if at is None else at, kind, labels, ref, details)
        line = orjson.dumps(e.to_json()) + b"\n"
        with self._lock:
            self._events.append(e)
            if self.dir:
                self._append(line)
        return e

    def _append(self, line: bytes) -> None:
        assert self.dir is not None
        path = self.dir / self.FILE
        try:
            if self._size and self._size + len(line) > self.max_bytes:
                os.replace(path, self.dir / self.OLD)
                self._size = 0
            with open(path, "ab") as f:
                f.write(line)
            self._size += len(line)
        except OSError as exc:
            log.error("cannot write alert history %s: %s", path, exc)

    def events(self) -> list[Event]:
        with self._lock:
            return list(self._events)

    def query(
        self,
        start: float | None = None,
        end: float | None = None,
        matchers: Sequence[Matcher] = (),
        kinds: Iterable[str] = (),
        ref: str = "",
        limit: int = 0,
    ) -> list[Event]:
        """Events with `start <= time <= end` (bounds inclusive, None: open) whose
        labels match all `matchers`, oldest first; `limit` keeps the newest."""
        want = set(kinds)
        ms = tuple(matchers)
        out = [
            e
            for e in self.events()
            if (start is None or e.time >= start)
            and (end is None or e.time <= end)
            and (not want or e.kind in want)
            and (not ref or e.ref == ref)
            and matches_all(ms, e.labels)
        ]
        out.sort(key=lambda e: e.time)
        return out[-limit:] if limit else out
