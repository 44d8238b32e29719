"""Acknowledgements (a Vigil extension): someone is on it, stop repeating.

An acknowledgement belongs to one *version* of a firing alert: its fingerprint,
its start time and its annotations. While it holds, the dedup stage does not
repeat notifications whose firing alerts are all acknowledged (new alerts and
resolutions are still sent). It ends when it expires, when the alert resolves,
fires again (new start) or its annotations change, or when it is withdrawn.
Snapshotted to ``acks.json`` in the data dir. Thread-safe; times Unix seconds.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from vigil.alerting.alert import Alert, format_time
from vigil.alerting.store import atomic_write

log = logging.getLogger("vigil.alerting")


def annotations_hash(a: Alert) -> str:
    return hashlib.sha256(orjson.dumps(list(a.annotations))).hexdigest()[:16]


@dataclass(frozen=True)
class Ack:
    fingerprint: str
    by: str
    comment: str
    at: float
    expires_at: float  # 0: until the alert changes
    starts_at: float
    annotations: str  # `annotations_hash` of the acknowledged version

    def api_json(self) -> dict[str, Any]:
        return {
            "by": self.by,
            "comment": self.comment,
            "at": format_time(self.at),
            "expiresAt": format_time(self.expires_at) if self.expires_at else None,
        }

    def why_ended(self, a: Alert | None, now: float) -> str:
        """Why this no longer holds for alert `a` ("" while it holds).

        An unknown alert (None, e.g. just after a restart) keeps its ack."""
        if self.expires_at and self.expires_at <= now:
            return "expired"
        if a is None:
            return ""
        if a.resolved(now):
            return "resolved"
        if a.starts_at != self.starts_at:
            return "fired again"
        if annotations_hash(a) != self.annotations:
            return "annotations changed"
        return ""


class AckError(ValueError):
    """The acknowledgement cannot be made (e.g. the alert is not firing)."""


class Acks:
    """Acknowledgements by fingerprint, persisted under `data_dir` (None: memory)."""

    FILE = "acks.json"

    def __init__(self, data_dir: str | Path | None, now: Callable[[], float]) -> None:
        self._now = now
        self._lock = threading.Lock()
        self._by_fp: dict[str, Ack] = {}
        self.dir = Path(data_dir) if data_dir else None
        if self.dir and (self.dir / self.FILE).exists():
            try:
                doc = orjson.loads((self.dir / self.FILE).read_bytes())
                self._by_fp = {d["fingerprint"]: Ack(**d) for d in doc["acks"]}
            except (ValueError, KeyError, TypeError) as exc:
                log.error("cannot load %s: %s; starting without acknowledgements", self.FILE, exc)

    def _save(self) -> None:
        if not self.dir:
            return
        with self._lock:
            doc = {"version": 1, "acks": [asdict(a) for a in self._by_fp.values()]}
        atomic_write(self.dir / self.FILE, orjson.dumps(doc))

    def ack(self, a: Alert, by: str, comment: str = "", expires_at: float = 0.0) -> Ack:
        now = self._now()
        if a.resolved(now):
            raise AckError(f"alert {a.fingerprint} is resolved")
        if not by:
            raise AckError("by is required")
        if expires_at and expires_at <= now:
            raise AckError("expiresAt must be in the future")
        ack = Ack(a.fingerprint, by, comment, now, expires_at, a.starts_at, annotations_hash(a))
        with self._lock:
            self._by_fp[a.fingerprint] = ack
        self._save()
        return ack

    def remove(self, fp: str) -> Ack | None:
        with self._lock:
            ack = self._by_fp.pop(fp, None)
        if ack is not None:
            self._save()
        return ack

    def get(self, a: Alert) -> Ack | None:
        """The ack holding for `a` now, if any."""
        with self._lock:
            ack = self._by_fp.get(a.fingerprint)
        if ack is None or ack.why_ended(a, self._now()):
            return None
        return ack

    def is_acked(self, a: Alert) -> bool:
        return self.get(a) is not None

    def list(self) -> list[Ack]:
        with self._lock:
            return list(self._by_fp.values())
