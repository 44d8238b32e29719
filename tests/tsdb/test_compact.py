"""Compaction merges blocks, deduplicates (later block wins), and records lineage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from _bands import band_width  # noqa: F401 - autouse: every test with wide and narrow bands
from vigil.model.labels import Labels
from vigil.model.samples import STALE_NAN
from vigil.storage.interface import SeriesData
from vigil.tsdb import block as block_mod
from vigil.tsdb.block import Block, write_block
from vigil.tsdb.compact import compact_blocks


def sd(name: str, ts: list[int], vs: list[float]) -> SeriesData:
    return SeriesData(
        Labels.from_dict({"__name__": name}), np.array(ts, dtype=np.int64), np.array(vs)
    )


def test_adjacent_blocks_compact_in_order(tmp_path: Path) -> None:
    b1 = write_block(tmp_path, [sd("a", [0, 10], [1, 2]), sd("c", [5], [STALE_NAN])], 0, 99)
    b2 = write_block(tmp_path, [sd("a", [100, 110], [3, 4]), sd("b", [150], [7])], 100, 199)
    blocks = [Block.open(b1), Block.open(b2)]
    out = compact_blocks(blocks, tmp_path)
    with Block.open(out) as merged:
        assert merged.meta.mint == 0 and merged.meta.maxt == 199
        assert merged.meta.level == 2
        assert merged.meta.sources == tuple(sorted([b1.name, b2.name]))
        got = list(merged.iter_series())
        assert [s.labels.metric_name for s in got] == ["a", "b", "c"]
        assert got[0].timestamps.tolist() == [0, 10, 100, 110]
        assert got[0].values.tolist() == [1, 2, 3, 4]
        assert got[2].values.view(np.uint64)[0] == np.float64(STALE_NAN).view(np.uint64)
    for b in blocks:
        b.close()
    # Level grows from the inputs' maximum.
    blocks = [Block.open(out), Block.open(b2)]
    with Block.open(compact_blocks(blocks, tmp_path)) as again:
        assert again.meta.level == 3
    for b in blocks:
        b.close()


def test_overlapping_blocks_later_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(block_mod, "CHUNK_TARGET_SAMPLES", 64)
    rng = np.random.default_rng(3)
    ts1 = np.arange(0, 5000, 10)
    ts2 = np.arange(2500, 8000, 10)
    s1 = [
        SeriesData(Labels.from_dict({"__name__": "x", "i": str(i)}), ts1, rng.normal(size=500))
        for i in range(20)
    ]
    s2 = [
        SeriesData(Labels.from_dict({"__name__": "x", "i": str(i)}), ts2, rng.normal(size=550))
        for i in range(10, 30)
    ]
    s1.sort(key=lambda s: s.labels)
    s2.sort(key=lambda s: s.labels)
    blocks = [
        Block.open(write_block(tmp_path, s1, 0, 7999)),
        Block.open(write_block(tmp_path, s2, 0, 7999)),
    ]
    with Block.open(compact_blocks(blocks, tmp_path)) as m:
        got = {s.labels.get("i"): s for s in m.iter_series()}
        assert len(got) == 30 and m.meta.num_series == 30
        old = {s.labels.get("i"): s for s in s1}
        new = {s.labels.get("i"): s for s in s2}
        for i in ("12", "25", "3"):
            s = got[i]
            assert np.all(np.diff(s.timestamps) > 0)
            exp: dict[int, float] = {}
            for src in (old, new):
                if i in src:
                    exp.update(zip(src[i].timestamps.tolist(), src[i].values.tolist(), strict=True))
            assert s.timestamps.tolist() == sorted(exp)
            assert s.values.tolist() == [exp[t] for t in sorted(exp)]
        assert got["12"].values[got["12"].timestamps.tolist().index(3000)] == new["12"].values[50]
    for b in blocks:
        b.close()


def test_compact_nothing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one"):
        compact_blocks([], tmp_path)
