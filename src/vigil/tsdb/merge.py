"""Merging reads over several queriers (blocks, head, out-of-order data, imports).

`MergeQuerier` presents several queriers as one: series with equal labels are
merged into one series, samples sorted by time; where two sources hold a sample at
the same timestamp, the querier later in the list wins (callers list sources from
oldest to newest, so the newest write wins, as in a vertical compaction). When a
series comes from a single querier it is passed through untouched.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from vigil.model.labels import Labels
from vigil.model.matchers import Matcher
from vigil.storage.interface import Querier, SelectHints, SeriesData


def merge_samples(parts: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Merge ascending (timestamps, values) runs; on equal timestamps the later run wins.

    Returns new arrays unless a single run is given (then it is returned as is).
    """
    parts = [p for p in parts if p[0].size]
    if not parts:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
    if len(parts) == 1:
        return parts[0]
    ts = np.concatenate([p[0] for p in parts])
    vs = np.concatenate([p[1] for p in parts])
    # Common case: runs are disjoint and already in time order (adjacent blocks).
    if all(int(a[0][-1]) < int(b[0][0]) for a, b in itertools.pairwise(parts)):
        return ts, vs
    # A stable sort keeps runs in list order among equal timestamps; keep the last.
    order = np.argsort(ts, kind="stable")
    ts, vs = ts[order], vs[order]
    last = np.ones(ts.size, dtype=bool)
    last[:-1] = ts[1:] != ts[:-1]
    return ts[last], vs[last]


def merge_series_streams(streams: Sequence[Iterable[SeriesData]]) -> Iterator[SeriesData]:
    """Merge label-sorted series streams into one; equal labels merged by `merge_samples`.

    Streams are consumed lazily (bounded memory); a later stream wins on equal timestamps.
    """
    tagged = [((s.labels, i, s) for s in stream) for i, stream in enumerate(streams)]
    merged = heapq.merge(*tagged, key=lambda x: (x[0], x[1]))
    group: list[SeriesData] = []
    for labels, _, s in merged:
        if group and group[0].labels != labels:
            yield _merge_group(group)
            group = []
        group.append(s)
    if group:
        yield _merge_group(group)


def _merge_group(group: list[SeriesData]) -> SeriesData:
    if len(group) == 1:
        return group[0]
    ts, vs = merge_samples([(s.timestamps, s.values) for s in group])
    return SeriesData(group[0].labels, ts, vs)


class MergeQuerier:
    """A Querier over `queriers` (oldest first); see the module docstring for semantics.

    Owns the queriers: `close()` closes all of them. Not thread-safe.
    """

    def __init__(self, queriers: Sequence[Querier]) -> None:
        self._queriers = list(queriers)

    def select(
        self,
        matchers: Sequence[Matcher],
        mint: int,
        maxt: int,
        hints: SelectHints | None = None,
    ) -> list[SeriesData]:
        results = [q.select(matchers, mint, maxt, hints) for q in self._queriers]
        nonempty = [r for r in results if r]
        if not nonempty:
            return []
        if len(nonempty) == 1:
            return nonempty[0]
        # Common case: consecutive blocks holding the same series, row for row.
        labels = [s.labels for s in nonempty[0]]
        if all(len(r) == len(labels) and [s.labels for s in r] == labels for r in nonempty[1:]):
            return [_merge_group(list(group)) for group in zip(*nonempty, strict=True)]
        return list(merge_series_streams(nonempty))

    def series(self, matchers: Sequence[Matcher], mint: int, maxt: int) -> list[Labels]:
        out: list[Labels] = []
        for ls in heapq.merge(*(q.series(matchers, mint, maxt) for q in self._queriers)):
            if not out or out[-1] != ls:
                out.append(ls)
        return out

    def label_names(
        self, matchers: Sequence[Matcher] = (), mint: int = 0, maxt: int = 0
    ) -> list[str]:
        names: set[str] = set()
        for q in self._queriers:
            names.update(q.label_names(matchers, mint, maxt))
        return sorted(names)

    def label_values(
        self, name: str, matchers: Sequence[Matcher] = (), mint: int = 0, maxt: int = 0
    ) -> list[str]:
        values: set[str] = set()
        for q in self._queriers:
            values.update(q.label_values(name, matchers, mint, maxt))
        return sorted(values)

    def close(self) -> None:
        """Close every querier, then re-raise the first error any of them raised."""
        first: BaseException | None = None
        for q in self._queriers:
            try:
                q.close()
            except Exception as exc:
                first = first or exc
        self._queriers = []
        if first is not None:
            raise first
