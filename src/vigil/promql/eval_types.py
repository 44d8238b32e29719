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

import time
from contextvars import ContextVar
from dataclasses import dataclass

import numpy as np

from vigil.model.labels import Labels
from vigil.promql.errors import QueryTimeoutError

# Deadline (time.monotonic()) of the query running in this thread/context. Set by
# the engine so long loops deep inside functions can stop a runaway query.
query_deadline: ContextVar[float] = ContextVar("vigil_promql_deadline", default=float("inf"))


def check_deadline() -> None:
    """Raise QueryTimeoutError when the current query is past its deadline."""
    if time.monotonic() > query_deadline.get():
        raise QueryTimeoutError()


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


# Series per batched searchsorted: a batch's keys stay small enough for the cache.
_SEARCH_BATCH = 16
# Up to this many queries, count_le compares every sample against each query
# (one pass per query) instead of building batched search keys.
_FEW_QUERIES = 4


def count_le(ts: np.ndarray, offsets: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """For every series i and query q: the global index just past the last sample
    of series i with timestamp <= q. Shape [series, queries].

    `ts` holds all series' ascending timestamps back to back (series i owns
    ``ts[offsets[i]:offsets[i+1]]``). Series are searched in batches: each batch's
    timestamps get a per-series key offset so the batch is one sorted array and
    one `searchsorted` call answers all its queries.
    """
    n = len(offsets) - 1
    out = np.empty((n, len(queries)), dtype=np.int64)
    if n == 0 or len(queries) == 0:
        return out
    if len(ts) == 0:
        out[:] = 0
        return out
    base = int(min(int(ts.min()), int(queries.min())))
    top = int(max(int(ts.max()), int(queries.max())))
    span = top - base + 2
    if span * (_SEARCH_BATCH + 1) >= 2**62:
        for i in range(n):
            a = int(offsets[i])
            out[i] = np.searchsorted(ts[a : int(offsets[i + 1])], queries, side="right") + a
        return out
    if len(queries) <= _FEW_QUERIES:
        return _count_le_few(ts, offsets, queries)
    q_rel = (queries - base).astype(np.int64)
    for a in range(0, n, _SEARCH_BATCH):
        if a % (_SEARCH_BATCH * 64) == 0:
            check_deadline()
        b = min(n, a + _SEARCH_BATCH)
        lo_i, hi_i = int(offsets[a]), int(offsets[b])
        lens = np.diff(offsets[a : b + 1])
        keys = ts[lo_i:hi_i] - base
        keys += np.repeat(np.arange(b - a, dtype=np.int64) * span, lens)
        qk = q_rel[None, :] + (np.arange(b - a, dtype=np.int64) * span)[:, None]
        out[a:b] = np.searchsorted(keys, qk, side="right") + lo_i
    return out


def _count_le_few(ts: np.ndarray, offsets: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """count_le for a handful of queries: per query, one comparison pass and a
    segmented count (timestamps ascend within each series, so the number of
    samples <= q is the index just past the last one)."""
    starts = offsets[:-1]
    nonempty = np.flatnonzero(offsets[1:] > starts)
    # Segments between consecutive non-empty series' starts are exactly those
    # series (empty ones hold nothing); empty series count 0.
    seg = starts[nonempty]
    out = np.repeat(starts[:, None], len(queries), axis=1)
    for j, q in enumerate(queries.tolist()):
        out[nonempty, j] += np.add.reduceat(ts <= q, seg, dtype=np.int64)
    return out
