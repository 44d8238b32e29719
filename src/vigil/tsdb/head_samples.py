"""Columnar sample storage for the head.

Committed samples first land in *open batches* (the arrays of one commit each).
When enough have gathered, or a query needs them, the open batches are *sealed*
into an immutable `Segment`: one sort by (ref, t) turns them into CSR form, where
each series' samples are one contiguous, time-sorted slice of `ts` / `vs`. Segments
are merged size-tiered (a new segment merges with its predecessor while that one is
at most twice its size), so there are O(log n) of them and every sample is copied
O(log n) times over its life in the head.

A query gathers the selected series' slices from every segment with a handful of
vectorised numpy operations (no per-sample Python loop), giving, per series,
contiguous sorted arrays the engine can use directly.

Thread-safety: `SampleStore` is not locked; the head serialises mutations and
snapshotting under its own lock. Segments are immutable once built, so a snapshot
(a list of segments) can be read without any lock.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_I64 = np.int64
_EMPTY_I = np.empty(0, dtype=np.int64)
_EMPTY_F = np.empty(0, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class Segment:
    """Samples sorted by (ref, t); series `urefs[i]` owns `ts[off[i]:off[i+1]]`."""

    urefs: np.ndarray  # int64, sorted unique
    off: np.ndarray  # int64, len(urefs) + 1
    ts: np.ndarray  # int64
    vs: np.ndarray  # float64
    mint: int
    maxt: int

    @property
    def n(self) -> int:
        return len(self.ts)

    def sample_refs(self) -> np.ndarray:
        """The ref of every sample (expanded from the CSR offsets)."""
        return np.repeat(self.urefs, np.diff(self.off))

    @property
    def nbytes(self) -> int:
        return self.urefs.nbytes + self.off.nbytes + self.ts.nbytes + self.vs.nbytes


def _dedupe_sorted(r: np.ndarray, t: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, ...]:
    """Drop all but the last of equal (ref, t) runs in (ref, t)-sorted arrays."""
    if len(r) < 2:
        return r, t, v
    dup = (r[1:] == r[:-1]) & (t[1:] == t[:-1])
    if not dup.any():
        return r, t, v
    keep = np.ones(len(r), dtype=bool)
    keep[:-1] = ~dup
    return r[keep], t[keep], v[keep]


def build_segment(r: np.ndarray, t: np.ndarray, v: np.ndarray, *, ref_sorted: bool) -> Segment:
    """Build a segment from per-sample arrays.

    With `ref_sorted`, the input is already grouped by ref with each group in
    arrival order (older first), which is the common case: only series whose
    timestamps are not increasing (out-of-order samples) force a full sort.
    """
    if len(r) == 0:
        return Segment(_EMPTY_I, np.zeros(1, dtype=_I64), _EMPTY_I, _EMPTY_F, 0, -1)
    if not ref_sorted:
        # Stable sort keeps arrival order within a ref; timsort finds the runs.
        order = np.argsort(r, kind="stable")
        r, t, v = r[order], t[order], v[order]
    same = r[1:] == r[:-1]
    if (same & (t[1:] <= t[:-1])).any():
        order = np.lexsort((t, r))
        r, t, v = r[order], t[order], v[order]
        r, t, v = _dedupe_sorted(r, t, v)
        same = r[1:] == r[:-1]
    starts = np.flatnonzero(np.concatenate(([True], ~same)))
    off = np.empty(len(starts) + 1, dtype=_I64)
    off[:-1] = starts
    off[-1] = len(r)
    return Segment(r[starts], off, t, v, int(t.min()), int(t.max()))


def merge_segments(a: Segment, b: Segment) -> Segment:
    """Merge two segments; for equal (ref, t), `b` (the newer) wins."""
    r = np.concatenate((a.sample_refs(), b.sample_refs()))
    t = np.concatenate((a.ts, b.ts))
    v = np.concatenate((a.vs, b.vs))
    return build_segment(r, t, v, ref_sorted=False)


def _ranges(starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """Concatenation of arange(s, s + l) for each (s, l), vectorised."""
    total = int(lens.sum())
    if total == 0:
        return _EMPTY_I
    excl = np.cumsum(lens) - lens
    return np.repeat(starts - excl, lens) + np.arange(total, dtype=_I64)


def gather(
    segments: list[Segment], sel: np.ndarray, mint: int, maxt: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Samples in [mint, maxt] of the sorted refs `sel` across `segments`.

    Returns `(refs, bounds, ts, vs)`: the refs that have samples, and for
    `refs[i]` the slice `ts[bounds[i]:bounds[i+1]]`, time-sorted and unique.
    """
    segs = [s for s in segments if s.n and s.maxt >= mint and s.mint <= maxt]
    nsel = len(sel)
    if not segs or nsel == 0:
        return _EMPTY_I, np.zeros(1, dtype=_I64), _EMPTY_I, _EMPTY_F
    k = len(segs)
    starts = np.zeros((nsel, k), dtype=_I64)
    lens = np.zeros((nsel, k), dtype=_I64)
    for j, s in enumerate(segs):
        pos = np.searchsorted(s.urefs, sel)
        pos_c = np.minimum(pos, len(s.urefs) - 1)
        hit = s.urefs[pos_c] == sel
        starts[:, j] = np.where(hit, s.off[pos_c], 0)
        lens[:, j] = np.where(hit, s.off[pos_c + 1] - s.off[pos_c], 0)
    # Output is ref-major, then segment order (older segments first).
    flat_lens = lens.ravel()
    out_start = (np.cumsum(flat_lens) - flat_lens).reshape(nsel, k)
    total = int(flat_lens.sum())
    ts = np.empty(total, dtype=_I64)
    vs = np.empty(total, dtype=np.float64)
    if k == 1:
        src = _ranges(starts[:, 0], lens[:, 0])
        ts[:] = segs[0].ts[src]
        vs[:] = segs[0].vs[src]
    else:
        for j, s in enumerate(segs):
            src = _ranges(starts[:, j], lens[:, j])
            dst = _ranges(out_start[:, j], lens[:, j])
            ts[dst] = s.ts[src]
            vs[dst] = s.vs[src]
    counts = lens.sum(axis=1)
    bounds = np.zeros(nsel + 1, dtype=_I64)
    np.cumsum(counts, out=bounds[1:])
    if k > 1:
        ts, vs, bounds = _fix_order(ts, vs, bounds)
    if any(s.mint < mint or s.maxt > maxt for s in segs):
        keep = (ts >= mint) & (ts <= maxt)
        cm = np.zeros(len(keep) + 1, dtype=_I64)
        np.cumsum(keep, out=cm[1:])
        counts = cm[bounds[1:]] - cm[bounds[:-1]]
        ts, vs = ts[keep], vs[keep]
        bounds = np.zeros(nsel + 1, dtype=_I64)
        np.cumsum(counts, out=bounds[1:])
    else:
        counts = np.diff(bounds)
    nonempty = counts > 0
    if not nonempty.all():
        refs = sel[nonempty]
        b = np.zeros(len(refs) + 1, dtype=_I64)
        np.cumsum(counts[nonempty], out=b[1:])
        return refs, b, ts, vs
    return sel, bounds, ts, vs


def _fix_order(
    ts: np.ndarray, vs: np.ndarray, bounds: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sort (and dedupe) the few series whose pieces overlap in time (OOO data)."""
    if len(ts) < 2:
        return ts, vs, bounds
    bad = ts[1:] <= ts[:-1]
    # A decrease exactly at a series boundary is not a problem.
    inner = bounds[1:-1]
    inner = inner[(inner > 0) & (inner < len(ts))]
    bad[inner - 1] = False
    if not bad.any():
        return ts, vs, bounds
    groups = np.unique(np.searchsorted(bounds, np.flatnonzero(bad) + 1, side="right") - 1)
    ts = ts.copy()
    vs = vs.copy()
    removed = np.zeros(len(bounds) - 1, dtype=_I64)
    keep = np.ones(len(ts), dtype=bool)
    for g in groups.tolist():
        lo, hi = int(bounds[g]), int(bounds[g + 1])
        order = np.argsort(ts[lo:hi], kind="stable")
        ts[lo:hi] = ts[lo:hi][order]
        vs[lo:hi] = vs[lo:hi][order]
        dup = ts[lo + 1 : hi] == ts[lo : hi - 1]
        if dup.any():
            # Later arrivals sort after earlier ones (stable), so keep the last.
            keep[lo : hi - 1] &= ~dup
            removed[g] = int(dup.sum())
    if removed.any():
        ts, vs = ts[keep], vs[keep]
        counts = np.diff(bounds) - removed
        bounds = np.zeros(len(counts) + 1, dtype=_I64)
        np.cumsum(counts, out=bounds[1:])
    return ts, vs, bounds


class SampleStore:
    """Open batches plus size-tiered segments; see the module docstring."""

    def __init__(self, seal_threshold: int = 1 << 16) -> None:
        self.seal_threshold = seal_threshold
        self._segments: list[Segment] = []
        self._open: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._open_n = 0

    @property
    def num_samples(self) -> int:
        return self._open_n + sum(s.n for s in self._segments)

    @property
    def nbytes(self) -> int:
        opened = sum(r.nbytes + t.nbytes + v.nbytes for r, t, v in self._open)
        return opened + sum(s.nbytes for s in self._segments)

    def add(self, r: np.ndarray, t: np.ndarray, v: np.ndarray) -> None:
        """Add samples grouped by ref (arrival order within a ref); arrays are kept."""
        if len(r) == 0:
            return
        self._open.append((r, t, v))
        self._open_n += len(r)
        if self._open_n >= self.seal_threshold:
            self.seal()

    def seal(self) -> None:
        """Turn the open batches into a segment and merge size-tiered."""
        if not self._open:
            return
        if len(self._open) == 1:
            r, t, v = self._open[0]
            seg = build_segment(r, t, v, ref_sorted=True)
        else:
            r = np.concatenate([b[0] for b in self._open])
            t = np.concatenate([b[1] for b in self._open])
            v = np.concatenate([b[2] for b in self._open])
            seg = build_segment(r, t, v, ref_sorted=False)
        self._open = []
        self._open_n = 0
        segs = self._segments
        segs.append(seg)
        while len(segs) >= 2 and segs[-2].n <= 2 * segs[-1].n:
            b = segs.pop()
            a = segs.pop()
            segs.append(merge_segments(a, b))

    def snapshot(self) -> list[Segment]:
        """Seal, then return the (immutable) segments: a consistent read view."""
        self.seal()
        return list(self._segments)

    def truncate(self, cut: int) -> None:
        """Drop every sample with t < cut."""
        self.seal()
        out: list[Segment] = []
        for s in self._segments:
            if s.maxt < cut:
                continue
            if s.mint >= cut:
                out.append(s)
                continue
            keep = s.ts >= cut
            out.append(
                build_segment(s.sample_refs()[keep], s.ts[keep], s.vs[keep], ref_sorted=True)
            )
        self._segments = [s for s in out if s.n]

    def lookup(self, ref: int, t: int) -> float | None:
        """Value stored for (ref, t), or None. For rare checks (out-of-order inserts)."""
        for s in self._segments:
            if s.mint <= t <= s.maxt:
                i = int(np.searchsorted(s.urefs, ref))
                if i < len(s.urefs) and s.urefs[i] == ref:
                    lo, hi = int(s.off[i]), int(s.off[i + 1])
                    j = lo + int(np.searchsorted(s.ts[lo:hi], t))
                    if j < hi and s.ts[j] == t:
                        return float(s.vs[j])
        found: float | None = None
        for r, ts, vs in self._open:
            hit = np.flatnonzero((r == ref) & (ts == t))
            if len(hit):
                found = float(vs[hit[-1]])
        return found
