"""Which blocks to compact together next (pure function, no I/O).

Follows Prometheus' leveled scheme: block ranges grow by 3x per level (2h, 6h,
18h, ...), up to a maximum. Overlapping blocks (from imports or backfill) are
merged first; then, level by level, blocks that fall within one aligned range of
the next level are merged once that range is complete (the head has moved past
it, or the blocks already cover it end to end).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class HasTimeRange(Protocol):
    @property
    def mint(self) -> int: ...

    @property
    def maxt(self) -> int: ...


def level_ranges(block_duration_ms: int, max_duration_ms: int) -> list[int]:
    """[d, 3d, 9d, ...] not exceeding `max_duration_ms` (always at least [d])."""
    out = [block_duration_ms]
    while out[-1] * 3 <= max_duration_ms:
        out.append(out[-1] * 3)
    return out


def plan(metas: Sequence[HasTimeRange], ranges: Sequence[int], head_mint: int) -> list[int]:
    """Indices (into `metas`) of blocks to compact into one, or [] if nothing to do.

    Block times are inclusive [mint, maxt]; `head_mint` is the oldest time the head
    may still receive, so ranges ending before it are complete.
    """
    order = sorted(range(len(metas)), key=lambda i: (metas[i].mint, metas[i].maxt))
    # 1. Overlaps: any run of blocks whose ranges intersect.
    run: list[int] = []
    run_max = None
    for i in order:
        m = metas[i]
        if run_max is not None and m.mint <= run_max:
            run.append(i)
            run_max = max(run_max, m.maxt)
            continue
        if len(run) > 1:
            return run
        run = [i]
        run_max = m.maxt
    if len(run) > 1:
        return run
    # 2. Levels.
    for rng in ranges[1:]:
        buckets: dict[int, list[int]] = {}
        for i in order:
            m = metas[i]
            start = (m.mint // rng) * rng
            if m.maxt <= start + rng - 1:
                buckets.setdefault(start, []).append(i)
        for start in sorted(buckets):
            group = buckets[start]
            if len(group) < 2:
                continue
            end = start + rng - 1
            covered = (
                min(metas[i].mint for i in group) == start
                and max(metas[i].maxt for i in group) == end
            )
            if end < head_mint or covered:
                return group
    return []
