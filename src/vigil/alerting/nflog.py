"""The notification log: what was last sent for each (group, receiver integration).

The dedup stage consults it so the same state is never sent twice within
repeat_interval, including across restarts (entries are snapshotted by
`store.py`). Entries expire after their retention. Thread-safe.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    """One log entry: which alert fingerprints were firing/resolved when sent, and when."""

    group_key: str
    receiver: str  # "<receiver name>/<integration>/<index>"
    firing: frozenset[int]
    resolved: frozenset[int]
    timestamp: float
    expires_at: float


class NotificationLog:
    def __init__(self, now: Callable[[], float], retention: float = 120 * 3600.0) -> None:
        self._now = now
        self.retention = retention
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], Entry] = {}
        self.on_change: Callable[[], None] | None = None

    def log(
        self,
        group_key: str,
        receiver: str,
        firing: set[int],
        resolved: set[int],
        expiry: float = 0.0,
    ) -> None:
        """Record a successful notification (`expiry` seconds; default: the retention)."""
        now = self._now()
        e = Entry(
            group_key,
            receiver,
            frozenset(firing),
            frozenset(resolved),
            now,
            now + (expiry or self.retention),
        )
        with self._lock:
            self._entries[(group_key, receiver)] = e
        if self.on_change:
            self.on_change()

    def query(self, group_key: str, receiver: str) -> Entry | None:
        with self._lock:
            e = self._entries.get((group_key, receiver))
        if e is not None and e.expires_at <= self._now():
            return None
        return e

    def entries(self) -> list[Entry]:
        with self._lock:
            return list(self._entries.values())

    def load(self, entries: list[Entry]) -> None:
        with self._lock:
            self._entries = {(e.group_key, e.receiver): e for e in entries}

    def gc(self) -> int:
        now = self._now()
        with self._lock:
            old = [k for k, e in self._entries.items() if e.expires_at <= now]
            for k in old:
                del self._entries[k]
        return len(old)
