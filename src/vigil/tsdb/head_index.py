"""The head's series registry and inverted index (postings).

Maps a `Labels` to a series ref and back, and keeps, for each label name, the refs
of the series carrying each value, so matchers select series without scanning every
label set: an equality matcher is one dict lookup, a regex matcher is evaluated once
per distinct value of its label (not once per series).

Memory is what limits how many series a head holds, so each series costs little:
its label set is stored once, built from canonical ``(name, value)`` pairs shared by
every series carrying that pair (names and values are also `sys.intern`ed, so the
exposition parser's cache shares the strings); ref -> labels is a list indexed by
ref; postings are `array('q')` of refs (8 bytes per entry, against ~60 for a set
entry), kept in ascending order because refs are handed out in increasing order.

Refs are assigned from a counter, never reused within a process (a WAL replay
restores the refs it finds and continues after the largest). Thread-safety: all
methods take the registry's own lock; the returned arrays are fresh copies.
"""

from __future__ import annotations

import sys
import threading
from array import array
from collections.abc import Iterable, Sequence

import numpy as np

from vigil.model.labels import Labels
from vigil.model.matchers import Matcher, MatchType
from vigil.tsdb.postings import intersect_sorted, subtract_sorted

_EMPTY = np.empty(0, dtype=np.int64)


class _Posting:
    """The series carrying one (name, value): the canonical pair and their refs."""

    __slots__ = ("ordered", "pair", "refs")

    def __init__(self, pair: tuple[str, str]) -> None:
        self.pair = pair
        self.refs = array("q")
        # False after a WAL replay restored refs out of order; sorted when read.
        self.ordered = True

    def add(self, ref: int) -> None:
        refs = self.refs
        if refs and ref < refs[-1]:
            self.ordered = False
        refs.append(ref)

    def array(self) -> np.ndarray:
        """The refs, ascending, as a fresh int64 array (callers may keep it)."""
        if not self.refs:
            return _EMPTY
        view = np.frombuffer(self.refs, dtype=np.int64)
        if not self.ordered:
            view.sort()
            self.ordered = True
        # A copy: a live view would forbid the array from growing.
        return view.copy()

    def discard(self, gone: np.ndarray) -> None:
        """Drop the refs in `gone` (int64, any order)."""
        cur = np.frombuffer(self.refs, dtype=np.int64)
        kept = cur[~np.isin(cur, gone)]
        del cur
        refs = array("q")
        refs.frombytes(kept.tobytes())
        self.refs = refs


class SeriesIndex:
    """Labels <-> ref registry plus postings; see the module docstring for contracts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_labels: dict[Labels, int] = {}
        # ref -> labels (None: no such series); `_live[ref]` mirrors it for numpy.
        self._labels: list[Labels | None] = [None]
        self._live = bytearray(1)
        self._count = 0
        # name -> value -> posting.
        self._postings: dict[str, dict[str, _Posting]] = {}
        self._next_ref = 1
        # Regex results per (matcher, name), valid while the name's value set is
        # unchanged: dashboards repeat the same regexes over a stable value set.
        self._version: dict[str, int] = {}
        self._value_cache: dict[tuple[object, ...], tuple[int, list[str]]] = {}

    def __len__(self) -> int:
        return self._count

    @property
    def next_ref(self) -> int:
        """The ref the next new series will get (all live refs are smaller)."""
        return self._next_ref

    def get_or_create(self, labels: Labels) -> tuple[int, bool]:
        """Ref for `labels` and whether it was created by this call."""
        ref = self._by_labels.get(labels)
        if ref is not None:
            return ref, False
        with self._lock:
            ref = self._by_labels.get(labels)
            if ref is not None:
                return ref, False
            ref = self._next_ref
            self._next_ref += 1
            self._add(ref, labels)
            return ref, True

    def restore(self, ref: int, labels: Labels) -> None:
        """Register `labels` under a known `ref` (WAL replay). Idempotent."""
        with self._lock:
            old = self._by_labels.get(labels)
            if old == ref:
                return
            if old is not None:
                # The same label set logged under two refs (a series GC'd and
                # re-created before a crash): the newest ref wins, the old one
                # becomes an alias so its samples still land somewhere.
                self._remove_many([old])
            if ref < len(self._labels) and self._labels[ref] is not None:
                self._remove_many([ref])
            self._add(ref, labels)
            self._next_ref = max(self._next_ref, ref + 1)

    def _add(self, ref: int, labels: Labels) -> None:
        pairs: list[tuple[str, str]] = []
        for name, value in labels:
            values = self._postings.get(name)
            if values is None:
                values = self._postings[sys.intern(name)] = {}
            p = values.get(value)
            if p is None:
                p = _Posting((sys.intern(name), sys.intern(value)))
                values[p.pair[1]] = p
                self._version[name] = self._version.get(name, 0) + 1
            p.add(ref)
            pairs.append(p.pair)
        # The stored label set shares its pairs with every other series: only the
        # outer tuple is this series' own.
        canon = Labels.from_sorted(pairs)
        self._by_labels[canon] = ref
        grow = ref + 1 - len(self._labels)
        if grow > 0:
            self._labels.extend([None] * grow)
            self._live.extend(bytes(grow))
        self._labels[ref] = canon
        self._live[ref] = 1
        self._count += 1

    def _remove_many(self, refs: Iterable[int]) -> None:
        """Forget live `refs`, rewriting each touched posting once."""
        gone: dict[tuple[str, str], list[int]] = {}
        for ref in refs:
            labels = self._labels[ref]
            if labels is None:
                continue
            self._labels[ref] = None
            self._live[ref] = 0
            self._count -= 1
            if self._by_labels.get(labels) == ref:
                del self._by_labels[labels]
            for pair in labels:
                gone.setdefault(pair, []).append(ref)
        for (name, value), rs in gone.items():
            values = self._postings[name]
            p = values[value]
            p.discard(np.array(rs, dtype=np.int64))
            if not p.refs:
                del values[value]
                self._version[name] = self._version.get(name, 0) + 1
                if not values:
                    del self._postings[name]

    def remove(self, refs: Iterable[int]) -> None:
        """Forget these series (garbage collection after head truncation)."""
        with self._lock:
            n = len(self._labels)
            self._remove_many(r for r in refs if 0 <= r < n)

    def labels_of(self, ref: int) -> Labels | None:
        if 0 <= ref < len(self._labels):
            return self._labels[ref]
        return None

    def _all_refs(self) -> np.ndarray:
        return np.flatnonzero(np.frombuffer(self._live, dtype=np.uint8)).astype(np.int64)

    def all_refs(self) -> np.ndarray:
        with self._lock:
            return self._all_refs()

    def items(self) -> list[tuple[int, Labels]]:
        with self._lock:
            labels = self._labels
            return [(r, labels[r]) for r in self._all_refs().tolist()]  # type: ignore[misc]

    # -- selection -------------------------------------------------------------

    def _refs_for_values(self, name: str, pred: Matcher, want: bool) -> np.ndarray:
        """Sorted refs whose value of `name` satisfies (pred == want)."""
        values = self._postings.get(name, {})
        version = self._version.get(name, 0)
        key = (pred.type, pred.name, pred.value, want)
        hit = self._value_cache.get(key)
        if hit is not None and hit[0] == version:
            chosen = hit[1]
        else:
            chosen = [v for v in values if pred.matches(v) is want]
            if len(self._value_cache) >= 1024:
                self._value_cache.clear()
            self._value_cache[key] = (version, chosen)
        if not chosen:
            return _EMPTY
        if len(chosen) == 1:
            return values[chosen[0]].array()
        # A series has one value per name, so the postings are disjoint.
        out = np.concatenate([values[v].array() for v in chosen])
        out.sort()
        return out

    def select(self, matchers: Sequence[Matcher]) -> np.ndarray:
        """Sorted int64 refs of series matching every matcher (all series if none).

        An absent label reads as the empty string, as in Prometheus: `a=""` selects
        series without `a`, `a!=""` those with it, `a=~".*"` everything.
        """
        with self._lock:
            result: np.ndarray | None = None
            # Cheap, selective matchers first so later ones intersect small sets.
            ordered = sorted(matchers, key=lambda m: (m.matches_empty(), m.is_regex()))
            for m in ordered:
                if result is not None and len(result) * 4 < len(self._postings.get(m.name, ())):
                    # Few candidates left, many values: test the candidates' own
                    # values instead of every value of the label.
                    labels = self._labels
                    result = np.array(
                        [
                            r
                            for r in result.tolist()
                            if m.matches(labels[r].get(m.name))  # type: ignore[union-attr]
                        ],
                        dtype=np.int64,
                    )
                elif m.matches_empty():
                    # Matches series lacking the label too: start from everything
                    # (or the current result) and remove series whose value fails.
                    base = self._all_refs() if result is None else result
                    bad = self._refs_for_values(m.name, m, False)
                    result = subtract_sorted(base, bad)
                elif m.type is MatchType.EQUAL:
                    p = self._postings.get(m.name, {}).get(m.value)
                    refs = _EMPTY if p is None else p.array()
                    result = refs if result is None else _intersect(result, refs)
                else:
                    good = self._refs_for_values(m.name, m, True)
                    result = good if result is None else _intersect(result, good)
                if not len(result):
                    return _EMPTY
            if result is None:
                result = self._all_refs()
            return result

    # -- statistics ------------------------------------------------------------

    def label_names(self) -> list[str]:
        with self._lock:
            return sorted(self._postings)

    def label_values(self, name: str) -> list[str]:
        with self._lock:
            return sorted(self._postings.get(name, {}))

    def postings_stats(self) -> dict[str, dict[str, int]]:
        """name -> value -> number of series (a copy, for status pages)."""
        with self._lock:
            return {
                n: {v: len(p.refs) for v, p in vals.items()} for n, vals in self._postings.items()
            }


def _intersect(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection of two sorted arrays of unique refs."""
    if not len(a) or not len(b):
        return _EMPTY
    return intersect_sorted(a, b)
