"""Set operations on postings: ascending arrays of unique series ids.

Both inputs are already sorted, so a binary search of the shorter list in the
longer one does the job in O(short x log long), where `np.intersect1d` and
`np.isin` sort the concatenation of both first.
"""

from __future__ import annotations

import numpy as np


def _found(haystack: np.ndarray, needles: np.ndarray) -> np.ndarray:
    """Mask over `needles`: present in `haystack` (both ascending, unique)."""
    if haystack.size == 0:
        return np.zeros(needles.size, dtype=bool)
    at = np.searchsorted(haystack, needles)
    np.minimum(at, haystack.size - 1, out=at)
    return haystack[at] == needles


def intersect_sorted(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Ids in both `a` and `b`, ascending."""
    if a.size > b.size:
        a, b = b, a
    return a[_found(b, a)]


def subtract_sorted(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Ids of `a` not in `b`, ascending."""
    if a.size == 0 or b.size == 0:
        return a
    return a[~_found(b, a)]
