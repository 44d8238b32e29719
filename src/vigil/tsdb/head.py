"""The head: the in-memory, writable part of the TSDB.

It holds the most recent samples (by default up to ~1.5 block durations) until they
are flushed into an immutable block. Appends follow Prometheus' rules per series:

- a sample newer than the series' newest committed sample is appended;
- same timestamp and bitwise-same value: a silently ignored duplicate;
- same timestamp, different value: rejected as a duplicate;
- older: rejected as out-of-order, unless `ooo_window_ms > 0` and the sample is no
  older than (head max time - window), in which case it is sorted in;
- older than the head's minimum valid time (max of the last truncation point and
  head max time - block_duration / 2, or the window rule when it is enabled):
  rejected as out-of-bounds.

Rejections are counted in `CommitStats`; `commit` raises only when the write-ahead
log cannot be written (then nothing of the commit is visible).

Thread-safety: any number of appenders (one per thread) and queriers may be used
concurrently; commits are serialised by the head's lock, which also keeps the WAL
in commit order. Durability waits (fsync) happen outside the lock so concurrent
commits share one fsync.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Protocol

import numpy as np

from vigil.model.labels import Labels
from vigil.model.matchers import Matcher
from vigil.storage.interface import (
    CommitStats,
    SelectHints,
    SeriesData,
    SeriesRef,
    UnknownSeriesRefError,
)
from vigil.tsdb.head_index import SeriesIndex
from vigil.tsdb.head_samples import AnySegment, SampleStore, gather

INT64_MIN = int(np.iinfo(np.int64).min)
INT64_MAX = int(np.iinfo(np.int64).max)


class CommitLog(Protocol):
    """Where the head writes a commit before making it visible (the WAL)."""

    def log_commit(
        self,
        series: list[tuple[int, Labels]],
        refs: np.ndarray,
        ts: np.ndarray,
        vs: np.ndarray,
    ) -> int:
        """Write the records; return a sequence number for `wait_durable`. Raises
        OSError-derived errors when nothing was written."""
        ...

    def wait_durable(self, seq: int) -> None:
        """Block until record `seq` is as durable as the fsync policy promises."""
        ...


def _bits_equal(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a.view(np.uint64) == b.view(np.uint64)


class Head:
    """In-memory series and samples; see the module docstring for the rules."""

    def __init__(
        self,
        *,
        block_duration_ms: int = 2 * 3600 * 1000,
        ooo_window_ms: int = 0,
        log: CommitLog | None = None,
        seal_threshold: int = 1 << 16,
        pack_threshold: int = 1 << 22,
    ) -> None:
        self.block_duration_ms = block_duration_ms
        self.ooo_window_ms = ooo_window_ms
        self.log = log
        self.index = SeriesIndex()
        self.store = SampleStore(seal_threshold, pack_threshold)
        self._lock = threading.RLock()
        cap = 1024
        self._max_t = np.full(cap, INT64_MIN, dtype=np.int64)
        self._min_t = np.full(cap, INT64_MAX, dtype=np.int64)
        self._last_v = np.zeros(cap, dtype=np.float64)
        self._logged = np.zeros(cap, dtype=bool)
        self._gen = np.zeros(cap, dtype=np.int32)  # truncation generation at creation
        self._alive = np.zeros(cap, dtype=bool)
        self._slot = np.zeros(cap, dtype=np.int64)  # scratch for _unique_order
        self._generation = 0
        self._min_valid = INT64_MIN  # samples below this were flushed to blocks
        self.mint = INT64_MAX
        self.maxt = INT64_MIN
        # Counters for self-metrics.
        self.samples_appended = 0
        self.out_of_order = 0
        self.duplicates = 0
        self.out_of_bounds = 0
        self.series_created = 0
        self.series_removed = 0

    # -- series ----------------------------------------------------------------

    def _grow(self, need: int) -> None:
        cap = len(self._max_t)
        if need <= cap:
            return
        new = max(need, cap * 2)

        def grow(a: np.ndarray, fill: object) -> np.ndarray:
            b = np.empty(new, dtype=a.dtype)
            b[:cap] = a
            b[cap:] = fill
            return b

        self._max_t = grow(self._max_t, INT64_MIN)
        self._min_t = grow(self._min_t, INT64_MAX)
        self._last_v = grow(self._last_v, 0.0)
        self._logged = grow(self._logged, False)
        self._gen = grow(self._gen, 0)
        self._alive = grow(self._alive, False)
        self._slot = grow(self._slot, 0)

    def get_or_create(self, labels: Labels) -> int:
        return self.get_or_create_flag(labels)[0]

    def get_or_create_flag(self, labels: Labels) -> tuple[int, bool]:
        """Ref for `labels` and whether this call created the series."""
        ref, created = self.index.get_or_create(labels)
        if created:
            with self._lock:
                self._grow(ref + 1)
                self._gen[ref] = self._generation
                self._alive[ref] = True
                self.series_created += 1
        return ref, created

    def known_refs(self, refs: np.ndarray) -> np.ndarray:
        """Boolean mask: which of `refs` name a live series."""
        alive = self._alive
        if len(refs) and int(refs.min()) >= 1 and int(refs.max()) < len(alive):
            return alive[refs]
        ok = (refs >= 1) & (refs < len(alive))
        out = np.zeros(len(refs), dtype=bool)
        out[ok] = alive[refs[ok]]
        return out

    def all_known(self, refs: np.ndarray) -> bool:
        """Whether every one of `refs` names a live series (no mask built)."""
        if len(refs) == 0:
            return True
        alive = self._alive
        if int(refs.min()) < 1 or int(refs.max()) >= len(alive):
            return False
        return bool(alive[refs].all())

    @property
    def num_series(self) -> int:
        return len(self.index)

    @property
    def num_samples(self) -> int:
        return self.store.num_samples

    @property
    def min_valid_time(self) -> int:
        """Samples older than this are out of bounds for the head (in blocks)."""
        return self._min_valid

    # -- appending ---------------------------------------------------------------

    def appender(self) -> HeadAppender:
        return HeadAppender(self)

    def _min_valid_for_append(self) -> int:
        if self.maxt == INT64_MIN:
            return self._min_valid
        return max(self._min_valid, self.maxt - self.block_duration_ms // 2)

    def commit_arrays(
        self, refs: np.ndarray, ts: np.ndarray, vs: np.ndarray, *, owned: bool = False
    ) -> CommitStats:
        """Validate, log and apply one transaction's samples (refs must exist).

        The head keeps the accepted samples' arrays; with `owned` the caller hands
        over `refs` / `ts` / `vs` (it will not touch them again), otherwise the head
        copies what it keeps.
        """
        stats = CommitStats()
        n = len(refs)
        if n == 0:
            return stats
        seq = -1
        with self._lock:
            if not self.all_known(refs):
                # Collected between append and commit: nothing to attach them to.
                known = self.known_refs(refs)
                stats.out_of_bounds += int((~known).sum())
                refs, ts, vs = refs[known], ts[known], vs[known]
                owned = True
                if len(refs) == 0:
                    self.out_of_bounds += stats.out_of_bounds
                    return stats
            ref_sorted = self._unique_order(refs)
            if ref_sorted is not None and self._all_in_order(refs, ts):
                # The common case (each series once, each newer than its last
                # sample): no sort, no per-sample classification.
                if not owned:
                    refs, ts, vs = refs.copy(), ts.copy(), vs.copy()
                seq = self._log(refs, ts, vs)
                self._apply_unique(refs, ts, vs, ref_sorted)
                stats.appended = len(refs)
            else:
                r, t, v, acc, inorder = self._classify(refs, ts, vs, stats)
                if acc is not None:
                    ra, ta, va = r[acc], t[acc], v[acc]
                else:
                    ra, ta, va = r, t, v
                if len(ra):
                    seq = self._log(ra, ta, va)
                    self._apply(r, t, v, acc, inorder)
                stats.appended = len(ra)
            self.samples_appended += stats.appended
            self.out_of_order += stats.out_of_order
            self.duplicates += stats.duplicate
            self.out_of_bounds += stats.out_of_bounds
        if seq >= 0 and self.log is not None:
            self.log.wait_durable(seq)
        return stats

    def _unique_order(self, refs: np.ndarray) -> bool | None:
        """None if some ref occurs twice; else whether `refs` are ascending."""
        n = len(refs)
        if n < 2 or bool((refs[1:] > refs[:-1]).all()):
            return True
        # Each position writes itself into its ref's slot: with a repeated ref, a
        # later position overwrites an earlier one, which then reads back wrong.
        pos = np.arange(n, dtype=np.int64)
        slot = self._slot
        slot[refs] = pos
        return False if bool((slot[refs] == pos).all()) else None

    def _all_in_order(self, refs: np.ndarray, ts: np.ndarray) -> bool:
        """Whether every sample (refs unique) is newer than its series' newest and
        not below the minimum valid time."""
        prev = self._max_t[refs]
        minv = self._min_valid_for_append()
        if minv > INT64_MIN:
            np.maximum(prev, minv - 1, out=prev)
        return bool((ts > prev).all())

    def _log(self, r: np.ndarray, t: np.ndarray, v: np.ndarray) -> int:
        """Write the accepted samples (and series records for refs never logged)."""
        if self.log is None:
            return -1
        fresh = ~self._logged[r]
        series = []
        todo = None
        if fresh.any():
            todo = np.unique(r[fresh])
            for ref in todo.tolist():
                lbl = self.index.labels_of(ref)
                assert lbl is not None  # liveness was checked under the lock
                series.append((ref, lbl))
        seq = self.log.log_commit(series, r, t, v)
        if todo is not None:
            self._logged[todo] = True
        return seq

    def _apply_unique(self, r: np.ndarray, t: np.ndarray, v: np.ndarray, ref_sorted: bool) -> None:
        """Apply in-order samples of distinct series (arrays are kept)."""
        self._max_t[r] = t
        self._last_v[r] = v
        mt = self._min_t[r]
        np.minimum(mt, t, out=mt)
        self._min_t[r] = mt
        self.mint = min(self.mint, int(t.min()))
        self.maxt = max(self.maxt, int(t.max()))
        self.store.add(r, t, v, ref_sorted=ref_sorted)

    def _classify(
        self, refs: np.ndarray, ts: np.ndarray, vs: np.ndarray, stats: CommitStats
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
        """Sort by ref (stable) and decide each sample's fate, vectorised.

        Returns sorted (r, t, v), the accepted mask (None = all accepted) and the
        in-order mask (samples that advance their series' newest timestamp).
        """
        n = len(refs)
        order = np.argsort(refs, kind="stable")
        r, t, v = refs[order], ts[order], vs[order]
        first = np.empty(n, dtype=bool)
        first[0] = True
        np.not_equal(r[1:], r[:-1], out=first[1:])
        stored = self._max_t[r]
        prev_batch = self._exclusive_group_cummax(t, first)
        prev = np.maximum(stored, prev_batch)
        minv = self._min_valid_for_append()
        valid = t >= minv
        inorder = valid & (t > prev)
        if inorder.all():
            return r, t, v, None, inorder
        eq = valid & (t == prev)
        silent = np.zeros(n, dtype=bool)
        dup = np.zeros(n, dtype=bool)
        if eq.any():
            from_store = eq & (stored >= prev_batch)
            same = _bits_equal(v, self._last_v[r])
            silent |= from_store & same
            dup |= from_store & ~same
            for i in np.flatnonzero(eq & ~from_store).tolist():
                # Equal to an earlier sample of this batch: find its value.
                j = i - 1
                while t[j] != t[i] or not inorder[j]:
                    j -= 1
                if _bits_equal(v[i : i + 1], v[j : j + 1])[0]:
                    silent[i] = True
                else:
                    dup[i] = True
        rest = ~(inorder | eq)
        ooo_acc = np.zeros(n, dtype=bool)
        oob = np.zeros(n, dtype=bool)
        ooo = np.zeros(n, dtype=bool)
        if self.ooo_window_ms > 0:
            head_max = self.maxt if self.maxt != INT64_MIN else int(t.max())
            floor = max(head_max - self.ooo_window_ms, self._min_valid)
            cand = rest & (t >= floor)
            oob |= rest & ~cand
            seen: dict[tuple[int, int], int] = {}
            for i in np.flatnonzero(cand).tolist():
                key = (int(r[i]), int(t[i]))
                old_i = seen.get(key)
                old: np.ndarray | None
                if old_i is not None:
                    old = v[old_i : old_i + 1]
                else:
                    # An in-order sample of this batch, or a stored one, may hold t.
                    grp = np.flatnonzero((r == r[i]) & (t == t[i]) & inorder)
                    if len(grp):
                        old = v[grp[0] : grp[0] + 1]
                    else:
                        got = self.store.lookup(key[0], key[1])
                        old = None if got is None else np.array([got])
                if old is None:
                    ooo_acc[i] = True
                    seen[key] = i
                elif _bits_equal(v[i : i + 1], old)[0]:
                    silent[i] = True
                else:
                    dup[i] = True
        else:
            oob |= rest & ~valid
            ooo |= rest & valid
        stats.duplicate = int(dup.sum())
        stats.out_of_bounds += int(oob.sum())
        stats.out_of_order = int(ooo.sum())
        return r, t, v, inorder | ooo_acc, inorder

    @staticmethod
    def _exclusive_group_cummax(t: np.ndarray, first: np.ndarray) -> np.ndarray:
        """prev[i] = max of t over earlier elements of i's group (INT64_MIN if none)."""
        n = len(t)
        out = np.full(n, INT64_MIN, dtype=np.int64)
        if n < 2:
            return out
        gid = np.cumsum(first) - 1
        tmin, tmax = int(t.min()), int(t.max())
        span = tmax - tmin + 1
        if int(gid[-1]) * span < (1 << 62):
            # Offsetting each group by gid*span makes a global running max reset
            # at group starts, so one accumulate does every group at once.
            shift = gid * span
            cm = np.maximum.accumulate((t - tmin) + shift) - shift + tmin
            out[1:] = cm[:-1]
            out[first] = INT64_MIN
            return out
        cur = INT64_MIN
        for i in range(n):
            if first[i]:
                cur = INT64_MIN
            out[i] = cur
            cur = max(cur, int(t[i]))
        return out

    def _apply(
        self,
        r: np.ndarray,
        t: np.ndarray,
        v: np.ndarray,
        acc: np.ndarray | None,
        inorder: np.ndarray,
    ) -> None:
        if acc is not None:
            ra, ta, va = r[acc], t[acc], v[acc]
        else:
            ra, ta, va = r, t, v
        io = np.flatnonzero(inorder)
        if len(io):
            ri = r[io]
            last = np.empty(len(io), dtype=bool)
            last[-1] = True
            np.not_equal(ri[1:], ri[:-1], out=last[:-1])
            ends = io[last]
            self._max_t[r[ends]] = t[ends]
            self._last_v[r[ends]] = v[ends]
        np.minimum.at(self._min_t, ra, ta)
        self.mint = min(self.mint, int(ta.min()))
        self.maxt = max(self.maxt, int(ta.max()))
        self.store.add(ra, ta, va)

    # -- replay -----------------------------------------------------------------

    def replay_series(self, ref: int, labels: Labels) -> None:
        """Restore a series record from the WAL (already logged)."""
        with self._lock:
            self.index.restore(ref, labels)
            self._grow(ref + 1)
            self._logged[ref] = True
            self._alive[ref] = True

    def replay_samples(self, refs: np.ndarray, ts: np.ndarray, vs: np.ndarray) -> int:
        """Apply logged samples without validation (they were accepted once).

        Samples of unknown refs or below the minimum valid time are dropped;
        returns how many were applied.
        """
        with self._lock:
            keep = (refs >= 1) & (refs < len(self._max_t)) & (ts >= self._min_valid)
            if not keep.all():
                refs, ts, vs = refs[keep], ts[keep], vs[keep]
            if len(refs) == 0:
                return 0
            order = np.argsort(refs, kind="stable")
            r, t, v = refs[order], ts[order], vs[order]
            first = np.empty(len(r), dtype=bool)
            first[0] = True
            np.not_equal(r[1:], r[:-1], out=first[1:])
            prev = np.maximum(self._max_t[r], self._exclusive_group_cummax(t, first))
            inorder = t > prev
            self._apply(r, t, v, None, inorder)
            return len(r)

    # -- reading ----------------------------------------------------------------

    def snapshot(self) -> list[AnySegment]:
        with self._lock:
            return self.store.snapshot()

    def _time_filter(self, refs: np.ndarray, mint: int, maxt: int) -> np.ndarray:
        if len(refs) == 0:
            return refs
        keep = (self._max_t[refs] >= mint) & (self._min_t[refs] <= maxt)
        return refs[keep]

    def select_refs(self, matchers: Sequence[Matcher], mint: int, maxt: int) -> np.ndarray:
        return self._time_filter(self.index.select(matchers), mint, maxt)

    def read(self, refs: np.ndarray, mint: int, maxt: int) -> list[SeriesData]:
        """Series data of `refs` in [mint, maxt], sorted by labels."""
        segs = self.snapshot()
        got, bounds, ts, vs = gather(segs, refs, mint, maxt)
        out: list[SeriesData] = []
        b = bounds.tolist()
        for i, ref in enumerate(got.tolist()):
            lbl = self.index.labels_of(ref)
            if lbl is None:
                continue
            out.append(SeriesData(lbl, ts[b[i] : b[i + 1]], vs[b[i] : b[i + 1]]))
        out.sort(key=lambda s: s.labels)
        return out

    def querier(self, mint: int, maxt: int) -> HeadQuerier:
        return HeadQuerier(self, mint, maxt)

    def series_in_range(self, mint: int, maxt: int) -> Iterator[SeriesData]:
        """Every series' samples in [mint, maxt], sorted by labels (for a block)."""
        yield from self.read(self.index.all_refs(), mint, maxt)

    # -- truncation ---------------------------------------------------------------

    def truncate(self, cut: int) -> int:
        """Drop samples older than `cut` (they are in a block now) and collect series
        without samples left. Returns the number of series removed."""
        with self._lock:
            self.store.truncate(cut)
            self._min_valid = max(self._min_valid, cut)
            refs = self.index.all_refs()
            if len(refs):
                mt = self._max_t[refs]
                # Series with samples only before the cut, and series created before
                # the previous truncation that never got a sample (an appender that
                # went away), are dead. Newer empty ones may belong to a live
                # appender that has not committed yet.
                dead = (mt != INT64_MIN) & (mt < cut)
                dead |= (mt == INT64_MIN) & (self._gen[refs] < self._generation)
                gone = refs[dead]
                self.index.remove(gone.tolist())
                self._alive[gone] = False
                self.series_removed += len(gone)
                alive = refs[~dead]
                self._min_t[alive] = np.maximum(self._min_t[alive], cut)
            else:
                gone = refs
            self._generation += 1
            segs = self.store.snapshot()
            if segs:
                self.mint = min(s.mint for s in segs)
                self.maxt = max(self.maxt, max(s.maxt for s in segs))
            else:
                self.mint = INT64_MAX
            return len(gone)

    def live_series(self) -> list[tuple[int, Labels]]:
        return self.index.items()

    @property
    def memory_bytes(self) -> int:
        """Bytes of the sample store and the per-series arrays (not the label index)."""
        per_series = (self._max_t, self._min_t, self._last_v, self._logged, self._gen)
        return self.store.nbytes + sum(a.nbytes for a in (*per_series, self._alive, self._slot))


class HeadAppender:
    """One transaction against the head. Not thread-safe (one per thread)."""

    def __init__(self, head: Head) -> None:
        self._head = head
        self._refs: list[int] = []
        self._ts: list[int] = []
        self._vs: list[float] = []
        self._chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._new = 0

    def series_ref(self, labels: Labels) -> SeriesRef:
        ref, created = self._head.get_or_create_flag(labels)
        self._new += created
        return ref

    def append(self, labels: Labels, t: int, v: float) -> SeriesRef:
        ref = self.series_ref(labels)
        self._refs.append(ref)
        self._ts.append(int(t))
        self._vs.append(float(v))
        return ref

    def append_refs(self, refs: np.ndarray, ts: np.ndarray, vs: np.ndarray) -> None:
        if not (len(refs) == len(ts) == len(vs)):
            raise ValueError(
                f"append_refs: arrays differ in length (refs {len(refs)}, ts {len(ts)}, vs {len(vs)})"
            )
        refs = np.asarray(refs, dtype=np.int64)
        if not self._head.all_known(refs):
            known = self._head.known_refs(refs)
            bad = refs[~known][:5].tolist()
            raise UnknownSeriesRefError(
                f"append_refs: unknown series refs {bad} (never created, or collected "
                "after going without samples; get a fresh ref with series_ref)"
            )
        self._chunks.append(
            (
                refs,
                np.asarray(ts, dtype=np.int64),
                np.asarray(vs, dtype=np.float64),
            )
        )

    def _arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
        """The transaction's samples, and whether they are fresh arrays (not the
        caller's, which `append_refs` keeps without copying)."""
        chunks = list(self._chunks)
        if self._refs:
            chunks.append(
                (
                    np.array(self._refs, dtype=np.int64),
                    np.array(self._ts, dtype=np.int64),
                    np.array(self._vs, dtype=np.float64),
                )
            )
            if len(chunks) == 1:
                return (*chunks[0], True)
        if len(chunks) == 1:
            return (*chunks[0], False)
        if not chunks:
            e = np.empty(0, dtype=np.int64)
            return e, e, np.empty(0, dtype=np.float64), True
        return (
            np.concatenate([c[0] for c in chunks]),
            np.concatenate([c[1] for c in chunks]),
            np.concatenate([c[2] for c in chunks]),
            True,
        )

    def commit(self) -> CommitStats:
        refs, ts, vs, owned = self._arrays()
        new = self._new
        self.rollback()
        stats = self._head.commit_arrays(refs, ts, vs, owned=owned)
        stats.new_series = new
        return stats

    def rollback(self) -> None:
        self._new = 0
        self._refs = []
        self._ts = []
        self._vs = []
        self._chunks = []


class HeadQuerier:
    """Reads the head over [mint, maxt]; a view taken at each call."""

    def __init__(self, head: Head, mint: int, maxt: int) -> None:
        self._head = head
        self.mint = mint
        self.maxt = maxt

    def _clamp(self, mint: int, maxt: int) -> tuple[int, int]:
        return max(mint, self.mint), min(maxt, self.maxt)

    def select(
        self,
        matchers: Sequence[Matcher],
        mint: int,
        maxt: int,
        hints: SelectHints | None = None,
    ) -> list[SeriesData]:
        mint, maxt = self._clamp(mint, maxt)
        if mint > maxt:
            return []
        refs = self._head.select_refs(matchers, mint, maxt)
        return self._head.read(refs, mint, maxt)

    def series(self, matchers: Sequence[Matcher], mint: int, maxt: int) -> list[Labels]:
        mint, maxt = self._clamp(mint, maxt)
        refs = self._head.select_refs(matchers, mint, maxt)
        out = [lbl for r in refs.tolist() if (lbl := self._head.index.labels_of(r)) is not None]
        out.sort()
        return out

    def _labels(self, matchers: Sequence[Matcher]) -> list[Labels]:
        refs = self._head.index.select(matchers)
        idx = self._head.index
        return [lbl for r in refs.tolist() if (lbl := idx.labels_of(r)) is not None]

    def label_names(
        self, matchers: Sequence[Matcher] = (), mint: int = 0, maxt: int = 0
    ) -> list[str]:
        if not matchers:
            return self._head.index.label_names()
        names: set[str] = set()
        for lbl in self._labels(matchers):
            names.update(lbl.names())
        return sorted(names)

    def label_values(
        self, name: str, matchers: Sequence[Matcher] = (), mint: int = 0, maxt: int = 0
    ) -> list[str]:
        if not matchers:
            return self._head.index.label_values(name)
        vals = {lbl.get(name) for lbl in self._labels(matchers)}
        vals.discard("")
        return sorted(vals)

    def close(self) -> None:
        pass
