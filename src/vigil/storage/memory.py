"""A small in-memory store implementing Appendable and Queryable.

Meant for tests of subsystems that need a real (not mocked) store without disk, and
for the PromQL test runner. Not tuned for volume: the TSDB is the production store.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from vigil.model.labels import Labels
from vigil.model.matchers import Matcher, matches_all
from vigil.storage.interface import CommitStats, SelectHints, SeriesData, SeriesRef


class _Series:
    __slots__ = ("labels", "samples")

    def __init__(self, labels: Labels) -> None:
        self.labels = labels
        self.samples: dict[int, float] = {}


class MemoryStorage:
    """Thread-safe dict-backed store; later appends at the same timestamp win."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_labels: dict[Labels, SeriesRef] = {}
        self._series: list[_Series] = []

    def _ref(self, labels: Labels) -> SeriesRef:
        with self._lock:
            ref = self._by_labels.get(labels)
            if ref is None:
                ref = len(self._series)
                self._series.append(_Series(labels))
                self._by_labels[labels] = ref
            return ref

    def appender(self) -> MemoryAppender:
        return MemoryAppender(self)

    def querier(self, mint: int, maxt: int) -> MemoryQuerier:
        return MemoryQuerier(self, mint, maxt)

    def clear(self) -> None:
        with self._lock:
            self._by_labels.clear()
            self._series.clear()


class MemoryAppender:
    def __init__(self, store: MemoryStorage) -> None:
        self._store = store
        self._pending: list[tuple[SeriesRef, int, float]] = []
        self._new = 0

    def series_ref(self, labels: Labels) -> SeriesRef:
        return self._store._ref(labels)

    def append(self, labels: Labels, t: int, v: float) -> SeriesRef:
        ref = self.series_ref(labels)
        self._pending.append((ref, int(t), float(v)))
        return ref

    def append_refs(self, refs: np.ndarray, ts: np.ndarray, vs: np.ndarray) -> None:
        self._pending.extend(zip(refs.tolist(), ts.tolist(), vs.tolist(), strict=True))

    def commit(self) -> CommitStats:
        with self._store._lock:
            for ref, t, v in self._pending:
                self._store._series[ref].samples[t] = v
        n = len(self._pending)
        self._pending = []
        return CommitStats(appended=n)

    def rollback(self) -> None:
        self._pending = []


class MemoryQuerier:
    def __init__(self, store: MemoryStorage, mint: int, maxt: int) -> None:
        self._store = store
        self._mint = mint
        self._maxt = maxt

    def _matching(self, matchers: Sequence[Matcher]) -> list[_Series]:
        with self._store._lock:
            series = list(self._store._series)
        return [s for s in series if matches_all(list(matchers), s.labels)]

    def select(
        self,
        matchers: Sequence[Matcher],
        mint: int,
        maxt: int,
        hints: SelectHints | None = None,
    ) -> list[SeriesData]:
        out = []
        for s in self._matching(matchers):
            pts = sorted((t, v) for t, v in s.samples.items() if mint <= t <= maxt)
            if not pts:
                continue
            ts = np.fromiter((p[0] for p in pts), dtype=np.int64, count=len(pts))
            vs = np.fromiter((p[1] for p in pts), dtype=np.float64, count=len(pts))
            out.append(SeriesData(s.labels, ts, vs))
        out.sort(key=lambda d: d.labels)
        return out

    def series(self, matchers: Sequence[Matcher], mint: int, maxt: int) -> list[Labels]:
        return [d.labels for d in self.select(matchers, mint, maxt)]

    def label_names(
        self, matchers: Sequence[Matcher] = (), mint: int = 0, maxt: int = 0
    ) -> list[str]:
        names: set[str] = set()
        for s in self._matching(matchers):
            names.update(s.labels.names())
        return sorted(names)

    def label_values(
        self, name: str, matchers: Sequence[Matcher] = (), mint: int = 0, maxt: int = 0
    ) -> list[str]:
        vals = {s.labels.get(name) for s in self._matching(matchers)}
        vals.discard("")
        return sorted(vals)

    def close(self) -> None:
        pass
