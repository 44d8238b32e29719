"""Columnar sample storage for the head.

Committed samples first land in *open batches* (the arrays of one commit each).
When enough have gathered, or a query needs them, the open batches are *sealed*
into an immutable `Segment`: one sort by (ref, t) turns them into CSR form, where
each series' samples are one contiguous, time-sorted slice of `ts` / `vs`. Segments
are merged size-tiered (a new segment merges with its predecessor while that one is
at most twice its size), so there are O(log n) of them and every sample is copied
O(log n) times over its life in the head.

Once the raw segments hold `pack_threshold` samples they are merged into one and
*packed*: its samples are cut into chunks of `PACK_CHUNK_SAMPLES` consecutive
samples, each compressed with the block chunk encoding (`vigil.tsdb.chunks`), so
the bulk of the head costs ~1-2 bytes per sample instead of 16 (the role of
Prometheus' head chunks). Packed segments are never merged again; a query decodes
only the chunks holding the selected series.

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

from vigil.tsdb.chunks import decode_chunk, encode_chunk

_I64 = np.int64
_EMPTY_I = np.empty(0, dtype=np.int64)
_EMPTY_F = np.empty(0, dtype=np.float64)
PACK_CHUNK_SAMPLES = 4096


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

    def take(self, src: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Timestamps and values at sample positions `src`."""
        return self.ts[src], self.vs[src]


@dataclass(frozen=True, slots=True)
class PackedSegment:
    """A `Segment` whose samples are stored as compressed chunks.

    Chunk `i` holds the samples at positions `chunk_off[i]:chunk_off[i+1]` (a run of
    the segment's (ref, t)-sorted samples, possibly spanning series boundaries).
    `ts` / `vs` decode everything (checkpoints, truncation); queries use `take`.
    """

    urefs: np.ndarray  # int64, sorted unique
    off: np.ndarray  # int64, len(urefs) + 1
    chunks: tuple[bytes, ...]
    chunk_off: np.ndarray  # int64, len(chunks) + 1
    mint: int
    maxt: int

    @property
    def n(self) -> int:
        return int(self.chunk_off[-1])

    def sample_refs(self) -> np.ndarray:
        return np.repeat(self.urefs, np.diff(self.off))

    @property
    def nbytes(self) -> int:
        return (
            self.urefs.nbytes
            + self.off.nbytes
            + self.chunk_off.nbytes
            + sum(len(c) for c in self.chunks)
        )

    def _decode(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return decode_chunk(self.chunks[i], int(self.chunk_off[i + 1] - self.chunk_off[i]))

    @property
    def ts(self) -> np.ndarray:
        return self.unpack().ts

    @property
    def vs(self) -> np.ndarray:
        return self.unpack().vs

    def unpack(self) -> Segment:
        if not self.chunks:
            return Segment(self.urefs, self.off, _EMPTY_I, _EMPTY_F, self.mint, self.maxt)
        parts = [self._decode(i) for i in range(len(self.chunks))]
        ts = np.concatenate([p[0] for p in parts])
        vs = np.concatenate([p[1] for p in parts])
        return Segment(self.urefs, self.off, ts, vs, self.mint, self.maxt)

    def take(self, src: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Timestamps and values at sample positions `src`, decoding only the chunks
        that hold them."""
        if len(src) == 0:
            return _EMPTY_I, _EMPTY_F
        ci = np.searchsorted(self.chunk_off, src, side="right") - 1
        need = np.unique(ci)
        parts = [self._decode(i) for i in need.tolist()]
        sizes = np.diff(self.chunk_off)[need]
        # Where each needed chunk starts in the concatenated decoded arrays.
        start = np.zeros(len(self.chunks), dtype=_I64)
        start[need] = np.cumsum(sizes) - sizes
        idx = src - self.chunk_off[ci] + start[ci]
        if len(parts) == 1:
            return parts[0][0][idx], parts[0][1][idx]
        ts = np.concatenate([p[0] for p in parts])
        vs = np.concatenate([p[1] for p in parts])
        return ts[idx], vs[idx]


AnySegment = Segment | PackedSegment


def pack_segment(seg: Segment, chunk_samples: int = PACK_CHUNK_SAMPLES) -> PackedSegment:
    """Compress `seg`'s samples into chunks of `chunk_samples` consecutive samples."""
    n = seg.n
    bounds = np.arange(0, n, chunk_samples, dtype=_I64)
    chunk_off = np.append(bounds, np.int64(n)).astype(_I64)
    # zstd hands back its payload in a buffer sized for the worst case (16 bytes a
    # sample); a copy holds only the compressed bytes.
    chunks = tuple(
        memoryview(encode_chunk(seg.ts[a:b], seg.vs[a:b])).tobytes()
        for a, b in zip(chunk_off[:-1].tolist(), chunk_off[1:].tolist(), strict=True)
    )
    return PackedSegment(seg.urefs, seg.off, chunks, chunk_off, seg.mint, seg.maxt)


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


def _same_series_segment(
    batches: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
) -> Segment | None:
    """The segment of batches that each hold the same strictly ascending refs with
    every series' timestamps increasing from batch to batch (a scrape or a remote
    writer sending the same series each time): one transpose, no sort. None when
    the batches are not like that."""
    refs = batches[0][0]
    n = len(refs)
    for b in batches[1:]:
        if b[0] is not refs and not np.array_equal(b[0], refs):
            return None
    if n > 1 and not bool((refs[1:] > refs[:-1]).all()):
        return None
    k = len(batches)
    # Row i is series refs[i]'s samples in commit order: CSR with k per series.
    ts = np.stack([b[1] for b in batches], axis=1) if k > 1 else batches[0][1].reshape(n, 1)
    if k > 1 and not bool((ts[:, 1:] > ts[:, :-1]).all()):
        return None
    vs = np.stack([b[2] for b in batches], axis=1) if k > 1 else batches[0][2]
    off = np.arange(0, n * k + 1, k, dtype=_I64)
    return Segment(refs, off, ts.ravel(), vs.ravel(), int(ts[:, 0].min()), int(ts[:, -1].max()))


def merge_segments(a: AnySegment, b: AnySegment) -> Segment:
    """Merge two segments; for equal (ref, t), `b` (the newer) wins."""
    if isinstance(a, Segment) and isinstance(b, Segment):
        fast = _merge_ordered(a, b)
        if fast is not None:
            return fast
    r = np.concatenate((a.sample_refs(), b.sample_refs()))
    t = np.concatenate((a.ts, b.ts))
    v = np.concatenate((a.vs, b.vs))
    return build_segment(r, t, v, ref_sorted=False)


def _merge_ordered(a: Segment, b: Segment) -> Segment | None:
    """Merge without sorting when each series' samples in `a` all precede its
    samples in `b` (no out-of-order data): every sample's destination follows from
    the offsets, so the samples are scattered there. None otherwise."""
    if a.n == 0 or b.n == 0:
        return b if a.n == 0 else a
    la, lb = np.diff(a.off), np.diff(b.off)
    if len(a.urefs) == len(b.urefs) and np.array_equal(a.urefs, b.urefs):
        if not bool((a.ts[a.off[1:] - 1] < b.ts[b.off[:-1]]).all()):
            return None
        urefs = a.urefs
        n = len(urefs)
        ka, kb = a.n // n, b.n // n
        if a.n == ka * n and b.n == kb * n and bool((la == ka).all()) and bool((lb == kb).all()):
            # Every series has ka samples in `a` and kb in `b` (the usual shape: the
            # same series in every commit): side by side, no index arrays.
            ts = np.hstack((a.ts.reshape(n, ka), b.ts.reshape(n, kb))).ravel()
            vs = np.hstack((a.vs.reshape(n, ka), b.vs.reshape(n, kb))).ravel()
            off = np.arange(0, a.n + b.n + 1, ka + kb, dtype=_I64)
            return Segment(urefs, off, ts, vs, min(a.mint, b.mint), max(a.maxt, b.maxt))
        off = a.off + b.off
        # Series i's run in `a` moves up by b's samples of the series before it;
        # its run in `b` by a's samples up to and including series i.
        shift_a, shift_b = b.off[:-1], a.off[1:]
    else:
        urefs = np.union1d(a.urefs, b.urefs)
        ia = np.searchsorted(urefs, a.urefs)
        ib = np.searchsorted(urefs, b.urefs)
        last_a = np.full(len(urefs), np.iinfo(_I64).min, dtype=_I64)
        last_a[ia] = a.ts[a.off[1:] - 1]
        if not bool((last_a[ib] < b.ts[b.off[:-1]]).all()):
            return None
        in_a = np.zeros(len(urefs), dtype=_I64)
        in_a[ia] = la
        lens = in_a.copy()
        lens[ib] += lb
        off = np.zeros(len(urefs) + 1, dtype=_I64)
        np.cumsum(lens, out=off[1:])
        shift_a = off[ia] - a.off[:-1]
        shift_b = off[ib] + in_a[ib] - b.off[:-1]
    ts = np.empty(a.n + b.n, dtype=_I64)
    vs = np.empty(a.n + b.n, dtype=np.float64)
    dest = np.repeat(shift_a, la)
    dest += np.arange(a.n, dtype=_I64)
    ts[dest], vs[dest] = a.ts, a.vs
    dest = np.repeat(shift_b, lb)
    dest += np.arange(b.n, dtype=_I64)
    ts[dest], vs[dest] = b.ts, b.vs
    return Segment(urefs, off, ts, vs, min(a.mint, b.mint), max(a.maxt, b.maxt))


def _ranges(starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """Concatenation of arange(s, s + l) for each (s, l), vectorised."""
    total = int(lens.sum())
    if total == 0:
        return _EMPTY_I
    excl = np.cumsum(lens) - lens
    return np.repeat(starts - excl, lens) + np.arange(total, dtype=_I64)


def gather(
    segments: list[AnySegment], sel: np.ndarray, mint: int, maxt: int
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
        ts[:], vs[:] = segs[0].take(src)
    else:
        for j, s in enumerate(segs):
            src = _ranges(starts[:, j], lens[:, j])
            dst = _ranges(out_start[:, j], lens[:, j])
            ts[dst], vs[dst] = s.take(src)
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
    """Open batches, size-tiered raw segments and packed segments (module docstring).

    `pack_threshold` = 0 never packs (every sample stays 16 bytes raw).
    """

    def __init__(self, seal_threshold: int = 1 << 16, pack_threshold: int = 1 << 22) -> None:
        self.seal_threshold = seal_threshold
        self.pack_threshold = pack_threshold
        self._packed: list[PackedSegment] = []  # older than every raw segment
        self._segments: list[Segment] = []
        self._open: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._open_sorted = True  # every open batch grouped by ascending ref
        self._open_n = 0

    @property
    def num_samples(self) -> int:
        return self._open_n + sum(s.n for s in self._segments) + sum(s.n for s in self._packed)

    @property
    def nbytes(self) -> int:
        opened = sum(r.nbytes + t.nbytes + v.nbytes for r, t, v in self._open)
        raw = sum(s.nbytes for s in self._segments)
        return opened + raw + sum(s.nbytes for s in self._packed)

    def add(self, r: np.ndarray, t: np.ndarray, v: np.ndarray, *, ref_sorted: bool = True) -> None:
        """Add one commit's samples; the arrays are kept (the caller gives them up).

        With `ref_sorted` they are grouped by ascending ref, arrival order within a
        ref; otherwise each ref occurs once, in any order.
        """
        if len(r) == 0:
            return
        self._open.append((r, t, v))
        self._open_sorted &= ref_sorted
        self._open_n += len(r)
        if self._open_n >= self.seal_threshold:
            self.seal()

    def seal(self) -> None:
        """Turn the open batches into a segment, merge size-tiered, pack when due."""
        if not self._open:
            return
        seg = _same_series_segment(self._open) if self._open_sorted else None
        if seg is None and len(self._open) == 1:
            r, t, v = self._open[0]
            seg = build_segment(r, t, v, ref_sorted=self._open_sorted)
        elif seg is None:
            r = np.concatenate([b[0] for b in self._open])
            t = np.concatenate([b[1] for b in self._open])
            v = np.concatenate([b[2] for b in self._open])
            seg = build_segment(r, t, v, ref_sorted=False)
        self._open_sorted = True
        self._open = []
        self._open_n = 0
        segs = self._segments
        segs.append(seg)
        while len(segs) >= 2 and segs[-2].n <= 2 * segs[-1].n:
            b = segs.pop()
            a = segs.pop()
            segs.append(merge_segments(a, b))
        if self.pack_threshold and sum(s.n for s in segs) >= self.pack_threshold:
            whole = segs[0]
            for later in segs[1:]:
                whole = merge_segments(whole, later)
            self._packed.append(pack_segment(whole))
            self._segments = []

    def snapshot(self) -> list[AnySegment]:
        """Seal, then return the (immutable) segments, oldest first: a consistent
        read view."""
        self.seal()
        out: list[AnySegment] = list(self._packed)
        out.extend(self._segments)
        return out

    def truncate(self, cut: int) -> None:
        """Drop every sample with t < cut."""
        self.seal()
        self._packed = [
            p if isinstance(p, PackedSegment) else pack_segment(p)
            for p in self._cut(list[AnySegment](self._packed), cut)
        ]
        self._segments = [
            s.unpack() if isinstance(s, PackedSegment) else s
            for s in self._cut(list(self._segments), cut)
        ]

    @staticmethod
    def _cut(segments: list[AnySegment], cut: int) -> list[AnySegment]:
        out: list[AnySegment] = []
        for s in segments:
            if s.maxt < cut:
                continue
            if s.mint >= cut:
                out.append(s)
                continue
            raw = s.unpack() if isinstance(s, PackedSegment) else s
            keep = raw.ts >= cut
            kept = build_segment(
                raw.sample_refs()[keep], raw.ts[keep], raw.vs[keep], ref_sorted=True
            )
            if kept.n:
                out.append(kept)
        return out

    def lookup(self, ref: int, t: int) -> float | None:
        """Value stored for (ref, t), or None. For rare checks (out-of-order inserts)."""
        segs: list[AnySegment] = [*self._packed, *self._segments]
        for s in segs:
            if s.mint <= t <= s.maxt:
                i = int(np.searchsorted(s.urefs, ref))
                if i < len(s.urefs) and s.urefs[i] == ref:
                    lo, hi = int(s.off[i]), int(s.off[i + 1])
                    ts, vs = s.take(np.arange(lo, hi, dtype=_I64))
                    j = int(np.searchsorted(ts, t))
                    if j < len(ts) and ts[j] == t:
                        return float(vs[j])
        found: float | None = None
        for r, ts, vs in self._open:
            hit = np.flatnonzero((r == ref) & (ts == t))
            if len(hit):
                found = float(vs[hit[-1]])
        return found
