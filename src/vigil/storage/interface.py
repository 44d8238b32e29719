"""Appender and Querier: the only way subsystems write to and read from a store.

Contracts shared by every implementation:

- Timestamps are int milliseconds since the Unix epoch; values are float64.
- Time bounds (`mint`, `maxt`) are inclusive on both ends.
- A staleness marker is `vigil.model.STALE_NAN` and is stored and returned like any
  other value; queriers do not filter it out (the PromQL engine needs to see it).
- Series returned by a querier are sorted by labels, each with timestamps strictly
  ascending and no duplicates. The arrays belong to the caller only for reading: an
  implementation may hand out views of its own buffers, so never write into them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from vigil.model.labels import Labels
from vigil.model.matchers import Matcher

SeriesRef = int
"""Opaque, store-assigned id of a series; stable for the life of the process."""


class AppendError(ValueError):
    """A sample the store refuses. Subclasses say why."""


class OutOfOrderSampleError(AppendError):
    """Older than the series' newest sample and outside the out-of-order window."""


class DuplicateSampleError(AppendError):
    """Same timestamp as a stored sample but a different value."""


class OutOfBoundsError(AppendError):
    """Too old for the head and no longer writable (outside every writable window)."""


class UnknownSeriesRefError(AppendError):
    """`append_refs` got a ref the store does not know: never created, or collected
    after a long time without samples. Callers caching refs must resolve again."""


@dataclass(slots=True)
class CommitStats:
    """What a commit did with the samples it was given."""

    appended: int = 0
    out_of_order: int = 0
    duplicate: int = 0
    out_of_bounds: int = 0
    new_series: int = 0

    @property
    def rejected(self) -> int:
        return self.out_of_order + self.duplicate + self.out_of_bounds


@dataclass(slots=True)
class SeriesData:
    """One series' samples in a time range, as contiguous numpy arrays."""

    labels: Labels
    timestamps: np.ndarray  # int64 ms, strictly ascending
    values: np.ndarray  # float64, same length


class SeriesList(list[SeriesData]):
    """A select result whose series' samples lie back to back in two flat arrays:
    series i's are ``timestamps[offsets[i]:offsets[i+1]]`` (and its `SeriesData`
    arrays are those slices). A store that reads one block into one buffer can say
    so, and a consumer that wants the samples flat (the PromQL engine) takes them as
    they are instead of concatenating them again."""

    def __init__(
        self,
        series: list[SeriesData],
        timestamps: np.ndarray,
        values: np.ndarray,
        offsets: np.ndarray,
    ) -> None:
        super().__init__(series)
        self.flat_timestamps = timestamps
        self.flat_values = values
        self.offsets = offsets


class FlatSeries:
    """Series as label rows plus their samples back to back in two flat arrays (row
    i's are ``timestamps[offsets[i]:offsets[i+1]]``), with no `SeriesData` made:
    what a store that merges several sources wants from each of them. A querier
    may offer it as ``select_flat`` (same arguments as ``select``)."""

    __slots__ = ("labels", "offsets", "timestamps", "values")

    def __init__(
        self, labels: list[Labels], timestamps: np.ndarray, values: np.ndarray, offsets: np.ndarray
    ) -> None:
        self.labels = labels
        self.timestamps = timestamps
        self.values = values
        self.offsets = offsets

    def __len__(self) -> int:
        return len(self.labels)

    def series_list(self) -> SeriesList:
        """The same series as a `SeriesList` (the `SeriesData` are views)."""
        ts, vs, bounds = self.timestamps, self.values, self.offsets.tolist()
        rows = [
            SeriesData(ls, ts[bounds[j] : bounds[j + 1]], vs[bounds[j] : bounds[j + 1]])
            for j, ls in enumerate(self.labels)
        ]
        return SeriesList(rows, ts, vs, self.offsets)


def flat_samples(series: list[SeriesData]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All series' samples back to back, and the offsets of each: as the store
    returned them when it says they already are (`SeriesList`), else concatenated."""
    if isinstance(series, SeriesList) and len(series.offsets) == len(series) + 1:
        return (
            series.flat_timestamps.astype(np.int64, copy=False),
            series.flat_values.astype(np.float64, copy=False),
            series.offsets,
        )
    return concat_runs([s.timestamps for s in series], [s.values for s in series])


def concat_runs(
    tss: list[np.ndarray], vss: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`tss`/`vss` back to back (int64, float64) and the offsets of each run."""
    offsets = np.zeros(len(tss) + 1, dtype=np.int64)
    if not tss:
        return np.zeros(0, dtype=np.int64), np.zeros(0), offsets
    np.cumsum([len(t) for t in tss], out=offsets[1:])
    ts = np.concatenate(tss).astype(np.int64, copy=False)
    vs = np.concatenate(vss).astype(np.float64, copy=False)
    return ts, vs, offsets


@dataclass(frozen=True, slots=True)
class SelectHints:
    """What the caller will do with the data; an implementation may use it to prune."""

    start: int = 0
    end: int = 0
    step: int = 0
    func: str = ""
    range_ms: int = 0
    by: bool = False
    grouping: tuple[str, ...] = field(default_factory=tuple)


class Appender(Protocol):
    """A transaction of appends: nothing is visible to queriers before `commit`.

    Not thread-safe: one appender belongs to one thread. Errors about individual
    samples (out of order, duplicate) are counted in the `CommitStats` returned by
    `commit`, not raised, so one bad sample never fails a whole scrape or request.
    """

    def series_ref(self, labels: Labels) -> SeriesRef:
        """Id for `labels`, creating the series if new. Cache it for `append_refs`."""
        ...

    def append(self, labels: Labels, t: int, v: float) -> SeriesRef:
        """Add one sample; returns the series' ref."""
        ...

    def append_refs(self, refs: np.ndarray, ts: np.ndarray, vs: np.ndarray) -> None:
        """Add many samples at once: int64 refs, int64 ms timestamps, float64 values."""
        ...

    def commit(self) -> CommitStats:
        """Make the samples durable (per the WAL's fsync policy) and visible."""
        ...

    def rollback(self) -> None:
        """Drop everything appended since the last commit."""
        ...


@runtime_checkable
class Appendable(Protocol):
    def appender(self) -> Appender: ...


class Querier(Protocol):
    """Reads series over a fixed time range [mint, maxt]. Close it when done."""

    def select(
        self,
        matchers: Sequence[Matcher],
        mint: int,
        maxt: int,
        hints: SelectHints | None = None,
    ) -> list[SeriesData]:
        """Series matching every matcher with at least one sample in [mint, maxt],
        sorted by labels, holding only the samples in [mint, maxt]."""
        ...

    def label_names(
        self, matchers: Sequence[Matcher] = (), mint: int = 0, maxt: int = 0
    ) -> list[str]:
        """Sorted label names of series matching `matchers` (all series when empty)."""
        ...

    def label_values(
        self, name: str, matchers: Sequence[Matcher] = (), mint: int = 0, maxt: int = 0
    ) -> list[str]:
        """Sorted values of label `name` among series matching `matchers`."""
        ...

    def series(self, matchers: Sequence[Matcher], mint: int, maxt: int) -> list[Labels]:
        """Label sets of matching series with samples in [mint, maxt], without samples."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class Queryable(Protocol):
    def querier(self, mint: int, maxt: int) -> Querier: ...
