"""Merging reads over several queriers (blocks, head, out-of-order data, imports).

`MergeQuerier` presents several queriers as one: series with equal labels are
merged into one series, samples sorted by time; where two sources hold a sample at
the same timestamp, the querier later in the list wins (callers list sources from
oldest to newest, so the newest write wins, as in a vertical compaction). When a
series comes from a single querier it is passed through untouched.

The common case, consecutive blocks (and the head) whose samples of each series
follow one another in time, is merged with whole-array operations
(:func:`merge_flat`): every source's samples are copied once into two flat arrays,
with no Python work per series beyond making its `SeriesData`. Anything else
(overlapping sources, out-of-order data) takes the per-series path.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from vigil.model.labels import Labels
from vigil.model.matchers import Matcher
from vigil.storage.interface import (
    FlatSeries,
    Querier,
    SelectHints,
    SeriesData,
    SeriesList,
    flat_samples,
)

# Rows per batch when copying a source into the merged arrays: bounds the index
# temporaries (two int64 per sample of the batch).
_COPY_BATCH_ROWS = 2048
_INT64_MIN = np.iinfo(np.int64).min


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


Answer = FlatSeries | list[SeriesData]


def _as_flat(result: Answer) -> tuple[list[Labels], np.ndarray, np.ndarray, np.ndarray]:
    """(labels, timestamps, values, offsets) of one source's answer, its samples back
    to back: as they are when the source says so (`FlatSeries`, `SeriesList`), else
    concatenated."""
    if isinstance(result, FlatSeries):
        return result.labels, result.timestamps, result.values, result.offsets
    return ([s.labels for s in result], *flat_samples(result))


def _union(label_lists: list[list[Labels]]) -> tuple[list[Labels], list[np.ndarray | None]]:
    """The sorted union of label-sorted lists, and each list's rows in it (`None`
    where a list is the union itself, row for row)."""
    first = label_lists[0]
    if all(len(ls) == len(first) and ls == first for ls in label_lists[1:]):
        return first, [None] * len(label_lists)
    union: list[Labels] = []
    for ls in heapq.merge(*label_lists):
        if not union or union[-1] != ls:
            union.append(ls)
    row_of = {ls: i for i, ls in enumerate(union)}
    rows: list[np.ndarray | None] = [
        np.fromiter((row_of[ls] for ls in lst), dtype=np.int64, count=len(lst))
        for lst in label_lists
    ]
    return union, rows


def merge_flat(results: Sequence[Answer]) -> SeriesList | None:
    """Merge label-sorted answers of several sources (oldest first) when, for every
    series, each source's samples all come after the previous source's: the
    samples are copied once, source by source, into two flat arrays (series-major).
    Returns None when some series' sources overlap or are out of order in time;
    the per-series merge handles those (later source wins on equal timestamps)."""
    flats = [_as_flat(r) for r in results]
    union, rows = _union([f[0] for f in flats])
    n = len(union)
    filled = np.zeros(n, dtype=np.int64)  # samples placed per merged series so far
    last = np.full(n, _INT64_MIN, dtype=np.int64)  # their last timestamp
    placed: list[tuple[np.ndarray, np.ndarray]] = []
    for (_, ts, _, offsets), row in zip(flats, rows, strict=True):
        row = np.arange(len(offsets) - 1, dtype=np.int64) if row is None else row
        lens = np.diff(offsets)
        some = lens > 0
        if some.any():
            r = row[some]
            first_t = ts[offsets[:-1][some]]
            if bool((first_t <= last[r]).any()):
                return None
            last[r] = ts[offsets[1:][some] - 1]
        placed.append((row, filled[row].copy()))
        filled[row] += lens
    out_offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(filled, out=out_offsets[1:])
    total = int(out_offsets[-1])
    out_t = np.empty(total, dtype=np.int64)
    out_v = np.empty(total, dtype=np.float64)
    for (_, ts, vs, offsets), (row, before) in zip(flats, placed, strict=True):
        dest = out_offsets[row] + before  # where each of this source's runs goes
        for a in range(0, row.size, _COPY_BATCH_ROWS):
            b = min(row.size, a + _COPY_BATCH_ROWS)
            lo, hi = int(offsets[a]), int(offsets[b])
            if hi == lo:
                continue
            lens = np.diff(offsets[a : b + 1])
            index = np.repeat(dest[a:b] - offsets[a:b], lens)
            index += np.arange(lo, hi, dtype=np.int64)
            out_t[index] = ts[lo:hi]
            out_v[index] = vs[lo:hi]
    out_t.flags.writeable = False
    out_v.flags.writeable = False
    return FlatSeries(union, out_t, out_v, out_offsets).series_list()


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
        results: list[Answer] = []
        for q in self._queriers:
            # Blocks can answer without making a SeriesData per series, which the
            # merge would only throw away.
            select = getattr(q, "select_flat", None) or q.select
            results.append(select(matchers, mint, maxt, hints))
        answers = [r for r in results if len(r)]
        if not answers:
            return []
        if len(answers) == 1:
            only = answers[0]
            return only.series_list() if isinstance(only, FlatSeries) else only
        merged = merge_flat(answers)
        if merged is not None:
            return merged
        nonempty = [r.series_list() if isinstance(r, FlatSeries) else r for r in answers]
        # Same series row for row, but overlapping in time: merge per series.
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
