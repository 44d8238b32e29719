"""Retention by time (judged by a block's newest sample) and by total size."""

from __future__ import annotations

from vigil.tsdb.block import BlockMeta, new_ulid
from vigil.tsdb.retention import blocks_to_delete

H = 3_600_000


def meta(start_h: int, size: int = 100) -> BlockMeta:
    return BlockMeta(ulid=new_ulid(), mint=start_h * H, maxt=(start_h + 2) * H - 1, size_bytes=size)


def test_time_retention_by_maxt() -> None:
    metas = [meta(0), meta(2), meta(4), meta(6)]
    now = 10 * H
    # Cutoff 4h: the block [2h, 4h) ends just before it and goes; [4h, 6h) stays.
    doomed = blocks_to_delete(metas, now, 6 * H, 0)
    assert doomed == metas[:2]
    assert blocks_to_delete(metas, now, 6 * H + 1, 0) == metas[:1]
    assert blocks_to_delete(metas, now, 0, 0) == []
    assert blocks_to_delete([], now, H, 1) == []


def test_size_retention_deletes_oldest_first() -> None:
    metas = [meta(0, 50), meta(2, 100), meta(4, 100), meta(6, 100)]
    assert blocks_to_delete(metas, 0, 0, 300) == metas[:1]
    assert blocks_to_delete(metas, 0, 0, 299) == metas[:2]
    assert blocks_to_delete(metas, 0, 0, 350) == []
    # The WAL and head count against the limit but are never deleted.
    assert blocks_to_delete(metas, 0, 0, 350, other_bytes=10) == metas[:1]
    assert blocks_to_delete(metas, 0, 0, 350, other_bytes=60) == metas[:2]
    # Input order does not matter.
    assert blocks_to_delete(list(reversed(metas)), 0, 0, 299) == metas[:2]


def test_time_and_size_together() -> None:
    metas = [meta(0, 10), meta(2, 500), meta(4, 500), meta(6, 10)]
    doomed = blocks_to_delete(metas, 8 * H, 5 * H, 600)
    # Time removes the first; size (newest first: 10 + 500 + 500 > 600) the second.
    assert doomed == metas[:2]
