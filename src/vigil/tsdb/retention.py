"""Retention: which blocks to delete by age and by total size.

Pure functions over `BlockMeta`, so the policy is testable without disks or clocks.
"""

from __future__ import annotations

from collections.abc import Sequence

from vigil.tsdb.block import BlockMeta


def blocks_to_delete(
    metas: Sequence[BlockMeta],
    now_ms: int,
    retention_ms: int,
    retention_bytes: int,
    *,
    other_bytes: int = 0,
) -> list[BlockMeta]:
    """Blocks to delete, oldest first.

    Time: a block goes when all of it is older than ``now_ms - retention_ms``, i.e.
    its (inclusive) ``maxt`` is before that instant; like Prometheus, a block is
    judged by its newest sample, so it is kept while any of it is in retention.
    Size: of the blocks that remain, newest first, once the running total of
    ``size_bytes`` plus `other_bytes` (the WAL and head, which cannot be deleted)
    exceeds `retention_bytes`, that block and every older one go.
    A zero or negative `retention_ms` / `retention_bytes` disables that rule.
    """
    doomed: dict[str, BlockMeta] = {}
    newest_first = sorted(metas, key=lambda m: (m.maxt, m.mint, m.ulid), reverse=True)
    if retention_ms > 0:
        cutoff = now_ms - retention_ms
        for m in newest_first:
            if m.maxt < cutoff:
                doomed[m.ulid] = m
    if retention_bytes > 0:
        total = other_bytes
        over = False
        for m in newest_first:
            if m.ulid in doomed:
                continue
            total += m.size_bytes
            over = over or total > retention_bytes
            if over:
                doomed[m.ulid] = m
    return sorted(doomed.values(), key=lambda m: (m.mint, m.maxt, m.ulid))
