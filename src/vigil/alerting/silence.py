"""Silences: time-bounded label matchers that mute alerts.

Semantics follow Alertmanager: a silence is *pending* before `starts_at`,
*active* until `ends_at`, then *expired*. `set()` updates a silence in place
only when its matchers are unchanged and the time change is allowed for its
state; otherwise the old one is expired and a new id is created. Thread-safe.
"""

from __future__ import annotations

import builtins
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace

from vigil.model.labels import Labels
from vigil.model.matchers import Matcher, matches_all


class SilenceError(ValueError):
    """A silence is invalid or the requested change is not allowed."""


class SilenceNotFound(KeyError):
    """No silence has the given id."""


@dataclass(frozen=True)
class Silence:
    """A silence; times in Unix seconds."""

    id: str
    matchers: tuple[Matcher, ...]
    starts_at: float
    ends_at: float
    created_by: str
    comment: str
    updated_at: float = 0.0

    def state(self, now: float) -> str:
        if now < self.starts_at:
            return "pending"
        if self.ends_at <= now:
            return "expired"
        return "active"

    def mutes(self, labels: Labels) -> bool:
        return matches_all(self.matchers, labels)


def validate(s: Silence) -> None:
    """Raise `SilenceError` saying what is wrong with `s`."""
    if not s.matchers:
        raise SilenceError("at least one matcher required")
    if all(m.matches("") for m in s.matchers):
        raise SilenceError("at least one matcher must not match the empty string")
    for m in s.matchers:
        if not m.name:
            raise SilenceError("matcher has an empty label name")
    if s.ends_at <= s.starts_at:
        raise SilenceError("end time must not be before start time")
    if not s.starts_at or not s.ends_at:
        raise SilenceError("startsAt and endsAt are required")


class Silences:
    """The silence store. `on_change` is called (outside the lock) after changes."""

    def __init__(self, now: Callable[[], float], retention: float = 120 * 3600.0) -> None:
        self._now = now
        self._lock = threading.Lock()
        self._by_id: dict[str, Silence] = {}
        self.retention = retention
        self.on_change: Callable[[], None] | None = None
        self.version = 0

    def _changed(self) -> None:
        self.version += 1
        if self.on_change:
            self.on_change()

    def set(self, s: Silence) -> str:
        """Create or update; returns the id in effect (new when not updatable in place)."""
        validate(s)
        now = self._now()
        with self._lock:
            prev = self._by_id.get(s.id) if s.id else None
            if s.id and prev is None:
                raise SilenceNotFound(s.id)
            if prev is not None:
                if _can_update(prev, s, now):
                    self._by_id[s.id] = replace(
                        s,
                        starts_at=prev.starts_at if prev.state(now) == "active" else s.starts_at,
                        updated_at=now,
                    )
                    new_id = s.id
                else:
                    if prev.state(now) != "expired":
                        self._by_id[prev.id] = _expired(prev, now)
                    new_id = ""
            else:
                new_id = ""
            if not new_id:
                if s.ends_at <= now:
                    raise SilenceError("end time can't be in the past")
                new_id = str(uuid.uuid4())
                self._by_id[new_id] = replace(
                    s, id=new_id, starts_at=max(s.starts_at, now), updated_at=now
                )
        self._changed()
        return new_id

    def expire(self, sid: str) -> None:
        """Expire a silence now; raise `SilenceNotFound` / `SilenceError` if already expired."""
        now = self._now()
        with self._lock:
            s = self._by_id.get(sid)
            if s is None:
                raise SilenceNotFound(sid)
            if s.state(now) == "expired":
                raise SilenceError(f"silence {sid} already expired")
            self._by_id[sid] = _expired(s, now)
        self._changed()

    def get(self, sid: str) -> Silence:
        with self._lock:
            s = self._by_id.get(sid)
        if s is None:
            raise SilenceNotFound(sid)
        return s

    def list(self) -> list[Silence]:
        with self._lock:
            return list(self._by_id.values())

    def mutes(self, labels: Labels) -> builtins.list[str]:
        """Ids of active silences muting `labels` (empty list: not silenced)."""
        now = self._now()
        with self._lock:
            return sorted(
                s.id for s in self._by_id.values() if s.state(now) == "active" and s.mutes(labels)
            )

    def gc(self) -> int:
        """Drop silences expired for longer than `retention`; returns how many."""
        now = self._now()
        with self._lock:
            old = [k for k, s in self._by_id.items() if s.ends_at + self.retention < now]
            for k in old:
                del self._by_id[k]
        if old:
            self._changed()
        return len(old)

    def load(self, silences: builtins.list[Silence]) -> None:
        """Replace the contents (used when restoring a snapshot)."""
        with self._lock:
            self._by_id = {s.id: s for s in silences}


def _expired(s: Silence, now: float) -> Silence:
    if s.state(now) == "pending":
        return replace(s, starts_at=now, ends_at=now, updated_at=now)
    return replace(s, ends_at=now, updated_at=now)


def _can_update(a: Silence, b: Silence, now: float) -> bool:
    if a.matchers != b.matchers:
        return False
    st = a.state(now)
    if st == "active":
        # Times travel through RFC3339 text (microseconds): compare with that precision.
        return abs(b.starts_at - a.starts_at) < 1e-5 and b.ends_at >= now
    if st == "pending":
        return b.starts_at >= now
    return False
