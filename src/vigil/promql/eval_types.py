"""Value representations used inside the evaluator.

Every node is evaluated once for all steps of a query. An instant vector over the
steps is a `VectorBlock`: one row per series, one column per step, with a presence
mask (NaN is a legal sample value, so absence cannot be encoded as NaN). A scalar is
a `ScalarBlock` holding one float per step. A range vector handed to a function is a
`MatrixBlock`: all series' samples concatenated into flat arrays plus, for every
series and step, the half-open index window ``[lo, hi)`` of samples that fall into
that step's range ``(t - range, t]``.

Series carry a `drop_name` flag (Prometheus 3's delayed `__name__` removal): an
operation that would drop the metric name only sets the flag; names are removed at
the end of the query, so `label_replace` can still read `__name__`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vigil.model.labels import Labels


@dataclass(slots=True)
class VectorBlock:
    """An instant vector at every step. `values`/`present` have shape [series, steps]."""

    labels: list[Labels]
    drop_name: np.ndarray  # bool [series]
    values: np.ndarray  # float64 [series, steps]
    present: np.ndarray  # bool [series, steps]

    @property
    def n_series(self) -> int:
        return len(self.labels)

    @classmethod
    def empty(cls, n_steps: int) -> VectorBlock:
        return cls(
            [],
            np.zeros(0, dtype=bool),
            np.zeros((0, n_steps), dtype=np.float64),
            np.zeros((0, n_steps), dtype=bool),
        )

    def select_rows(self, rows: np.ndarray | list[int]) -> VectorBlock:
        idx = np.asarray(rows, dtype=np.int64)
        return VectorBlock(
            [self.labels[i] for i in idx.tolist()],
            self.drop_name[idx],
            self.values[idx],
            self.present[idx],
        )

    def compact(self) -> VectorBlock:
        """Drop series that have no value at any step."""
        keep = self.present.any(axis=1)
        if keep.all():
            return self
        return self.select_rows(np.flatnonzero(keep))


@dataclass(slots=True)
class ScalarBlock:
    """A scalar at every step (float64 [steps])."""

    values: np.ndarray


@dataclass(slots=True)
class StringValue:
    value: str


@dataclass(slots=True)
class MatrixBlock:
    """A range vector at every step, for functions taking a range argument.

    `ts`/`vs` hold all series' samples back to back; series `i` owns
    ``ts[offsets[i]:offsets[i+1]]``. `lo`/`hi` ([series, steps], int64) are global
    indices into the flat arrays. `range_start`/`range_end` ([steps], int64 ms) are
    the window bounds per step, used by extrapolating functions.
    """

    labels: list[Labels]
    drop_name: np.ndarray
    ts: np.ndarray
    vs: np.ndarray
    offsets: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    range_ms: int
    range_start: np.ndarray
    range_end: np.ndarray

    @property
    def n_series(self) -> int:
        return len(self.labels)

    @property
    def counts(self) -> np.ndarray:
        return self.hi - self.lo


Value = VectorBlock | ScalarBlock | StringValue | MatrixBlock


def window_indices(
    ts: np.ndarray, offsets: np.ndarray, starts: np.ndarray, ends: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per series and step, the index window of samples with start < t <= end.

    `ts` is the flat, per-series ascending timestamp array; `starts`/`ends` are
    [steps] int64. Returns global (lo, hi) arrays of shape [series, steps].
    """
    n = len(offsets) - 1
    steps = len(ends)
    lo = np.empty((n, steps), dtype=np.int64)
    hi = np.empty((n, steps), dtype=np.int64)
    for i in range(n):
        a, b = int(offsets[i]), int(offsets[i + 1])
        seg = ts[a:b]
        lo[i] = np.searchsorted(seg, starts, side="right") + a
        hi[i] = np.searchsorted(seg, ends, side="right") + a
    return lo, hi
