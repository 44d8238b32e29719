from __future__ import annotations

import numpy as np

from vigil.tsdb.postings import intersect_sorted, subtract_sorted


def test_set_operations_match_numpy_on_random_postings() -> None:
    rng = np.random.default_rng(3)
    for _ in range(200):
        a = np.unique(rng.integers(0, 60, size=int(rng.integers(0, 30))))
        b = np.unique(rng.integers(0, 60, size=int(rng.integers(0, 30))))
        assert intersect_sorted(a, b).tolist() == np.intersect1d(a, b).tolist()
        assert subtract_sorted(a, b).tolist() == np.setdiff1d(a, b).tolist()


def test_empty_inputs() -> None:
    e = np.zeros(0, dtype=np.int64)
    x = np.array([1, 5, 9], dtype=np.int64)
    assert intersect_sorted(e, x).tolist() == []
    assert intersect_sorted(x, e).tolist() == []
    assert subtract_sorted(x, e).tolist() == [1, 5, 9]
    assert subtract_sorted(e, x).tolist() == []
