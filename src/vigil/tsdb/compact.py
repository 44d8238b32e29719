"""Compaction: merging blocks into one larger block.

Merging streams every input block series by series in label order, so memory
holds one series per input (plus the output's label sets), never whole blocks.
Overlapping blocks are allowed ("vertical" compaction): samples at equal
timestamps are deduplicated and the block later in the input list wins.
"""

from __future__ import annotations

from pathlib import Path

from vigil.tsdb.block import Block, write_block
from vigil.tsdb.merge import merge_series_streams


def compact_blocks(blocks: list[Block], parent_dir: Path) -> Path:
    """Write one new block in `parent_dir` holding every sample of `blocks`.

    The new block covers [min mint, max maxt], has compaction level max+1 and
    lists the union of the inputs' sources. Inputs are left in place (the caller
    deletes them once the new block is open). Returns the new block's path.
    """
    if not blocks:
        raise ValueError("compact_blocks needs at least one block")
    metas = [b.meta for b in blocks]
    sources = sorted({s for m in metas for s in m.sources})
    return write_block(
        parent_dir,
        merge_series_streams([b.iter_series() for b in blocks]),
        min(m.mint for m in metas),
        max(m.maxt for m in metas),
        level=max(m.level for m in metas) + 1,
        sources=sources,
    )
