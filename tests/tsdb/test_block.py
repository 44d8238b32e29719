"""Blocks: write/open round trips, matcher selection, clipping, corruption, atomicity."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from _bands import band_width  # noqa: F401 - autouse: every test with wide and narrow bands
from vigil.model.labels import Labels
from vigil.model.matchers import Matcher, MatchType
from vigil.model.samples import STALE_NAN
from vigil.storage.interface import SeriesData
from vigil.storage.memory import MemoryStorage
from vigil.tsdb import block as block_mod
from vigil.tsdb.block import (
    Block,
    CorruptBlockError,
    is_ulid,
    new_ulid,
    ulid_time,
    write_block,
)

T0 = 1_700_000_000_000
SPECIALS = [np.nan, STALE_NAN, np.inf, -np.inf, -0.0]


def make_series(seed: int, n_series: int = 120, max_len: int = 900) -> list[SeriesData]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_series):
        n = int(rng.choice([0, 1, 2, int(rng.integers(3, max_len))]))
        ts = T0 + np.cumsum(rng.integers(1, 60_000, n))
        kind = i % 3
        if kind == 0:
            vs = np.cumsum(rng.poisson(30, n)).astype(np.float64)
        elif kind == 1:
            vs = np.round(rng.normal(50, 10, n), 3)
        else:
            vs = rng.normal(size=n)
        if n:
            vs[rng.integers(0, n, max(1, n // 50))] = rng.choice(SPECIALS)
        labels = {
            "__name__": ["up", "http_requests_total", "mem_bytes"][kind],
            "job": ["api", "db", "web"][i % 3 if i % 5 else 0],
            "instance": f"host-{i % 17}",
            "i": str(i),
        }
        if i % 4 == 0:
            labels["env"] = "prod" if i % 8 else "dev"
        out.append(SeriesData(Labels.from_dict(labels), ts.astype(np.int64), vs))
    out.sort(key=lambda s: s.labels)
    return out


def to_memory(series: list[SeriesData]) -> MemoryStorage:
    mem = MemoryStorage()
    app = mem.appender()
    for s in series:
        for t, v in zip(s.timestamps.tolist(), s.values.tolist(), strict=True):
            app.append(s.labels, t, v)
    app.commit()
    return mem


def assert_same(got: list[SeriesData], want: list[SeriesData]) -> None:
    assert [g.labels for g in got] == [w.labels for w in want]
    for g, w in zip(got, want, strict=True):
        assert np.array_equal(g.timestamps, w.timestamps), g.labels
        assert np.array_equal(g.values.view(np.uint64), w.values.view(np.uint64)), g.labels


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    # Small chunks exercise series spanning chunks and chunks spanning series.
    monkeypatch.setattr(block_mod, "CHUNK_TARGET_SAMPLES", 97)


ALL = (0, 2**62)


def test_roundtrip_random_series(tmp_path: Path, small_chunks: None) -> None:
    series = make_series(1)
    path = write_block(tmp_path, series, T0, T0 + 10**10)
    assert path.parent == tmp_path and is_ulid(path.name)
    assert not list(tmp_path.glob("*.tmp"))
    with Block.open(path) as b:
        nonempty = [s for s in series if s.timestamps.size]
        assert b.meta.num_series == len(nonempty)
        assert b.meta.num_samples == sum(s.timestamps.size for s in nonempty)
        assert b.meta.level == 1 and b.meta.sources == (path.name,)
        assert b.meta.size_bytes == sum(f.stat().st_size for f in path.iterdir())
        q = b.querier(*ALL)
        assert_same(q.select([], *ALL), nonempty)
        assert_same(list(b.iter_series()), nonempty)
        b.verify()
        q.close()


MATCHERS = [
    [Matcher(MatchType.EQUAL, "__name__", "up")],
    [Matcher(MatchType.EQUAL, "job", "api"), Matcher(MatchType.NOT_EQUAL, "instance", "host-3")],
    [Matcher(MatchType.EQUAL, "env", "")],
    [Matcher(MatchType.NOT_EQUAL, "env", "")],
    [Matcher(MatchType.NOT_EQUAL, "env", "prod")],
    [Matcher(MatchType.REGEX, "instance", "host-1.*")],
    [Matcher(MatchType.REGEX, "env", "prod|")],
    [Matcher(MatchType.NOT_REGEX, "env", "d.*")],
    [Matcher(MatchType.NOT_REGEX, "job", "api|db"), Matcher(MatchType.REGEX, "i", "[0-9]")],
    [Matcher(MatchType.EQUAL, "nope", "x")],
    [Matcher(MatchType.EQUAL, "job", "missing")],
    [Matcher(MatchType.REGEX, "__name__", ".+")],
]


@pytest.mark.parametrize("few", [0, 10**9], ids=["postings", "per-series"])
@pytest.mark.parametrize("matchers", MATCHERS, ids=lambda ms: ",".join(map(str, ms)))
def test_select_matches_memory_storage(
    tmp_path: Path,
    small_chunks: None,
    matchers: list[Matcher],
    few: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # `few`: candidates below which matchers are checked series by series, so
    # both ways of evaluating the later matchers are compared.
    from vigil.tsdb import index as index_mod

    monkeypatch.setattr(index_mod, "_FEW_CANDIDATES", few)
    series = make_series(2)
    mem = to_memory(series).querier(*ALL)
    with Block.open(write_block(tmp_path, series, T0, T0 + 10**10)) as b:
        q = b.querier(*ALL)
        for mint, maxt in [ALL, (T0 + 3_000_000, T0 + 9_000_000), (T0 + 5, T0 + 5)]:
            assert_same(q.select(matchers, mint, maxt), mem.select(matchers, mint, maxt))
            assert q.series(matchers, mint, maxt) == mem.series(matchers, mint, maxt)
        assert q.label_names(matchers) == mem.label_names(matchers)
        for name in ("job", "env", "instance", "nope"):
            assert q.label_values(name, matchers) == mem.label_values(name, matchers)
        q.close()


def test_select_random_windows(tmp_path: Path, small_chunks: None) -> None:
    # Windows cutting chunks anywhere: chunks outside the window are skipped, so a
    # series' in-range samples must still come out whole and in order.
    series = make_series(3)
    mem = to_memory(series).querier(*ALL)
    lo = min(int(s.timestamps[0]) for s in series if s.timestamps.size)
    hi = max(int(s.timestamps[-1]) for s in series if s.timestamps.size)
    rng = np.random.default_rng(7)
    with Block.open(write_block(tmp_path, series, T0, T0 + 10**10)) as b:
        q = b.querier(*ALL)
        for _ in range(40):
            mint, maxt = sorted(int(x) for x in rng.integers(lo - 100, hi + 100, 2))
            for matchers in ([], MATCHERS[1], MATCHERS[5]):
                assert_same(q.select(matchers, mint, maxt), mem.select(matchers, mint, maxt))
        q.close()


def test_time_clipping_and_gaps(tmp_path: Path, small_chunks: None) -> None:
    ts = np.concatenate([np.arange(0, 1000, 10), np.arange(5000, 6000, 10)]).astype(np.int64)
    s = SeriesData(Labels.from_dict({"__name__": "a"}), ts, ts.astype(np.float64))
    with Block.open(write_block(tmp_path, [s], 0, 9999)) as b:
        q = b.querier(0, 9999)
        (got,) = q.select([], 995, 5000)
        assert got.timestamps.tolist() == [5000]
        (got,) = q.select([], 990, 5010)
        assert got.timestamps.tolist() == [990, 5000, 5010]
        assert q.select([], 1000, 4999) == []
        assert q.series([], 1000, 4999) == []
        assert q.series([], 2000, 5000) == [s.labels]
        assert q.select([], 7000, 8000) == []
        q.close()


def test_write_rejects_bad_input_and_leaves_nothing(tmp_path: Path) -> None:
    a = Labels.from_dict({"__name__": "a"})
    b = Labels.from_dict({"__name__": "b"})
    one = np.array([1], dtype=np.int64)
    v = np.array([1.0])
    cases = [
        ([SeriesData(b, one, v), SeriesData(a, one, v)], "not sorted"),
        ([SeriesData(a, one, v), SeriesData(a, one + 1, v)], "given twice"),
        ([SeriesData(a, np.array([1, 1]), np.array([1.0, 2.0]))], "index 1"),
        ([SeriesData(a, np.array([50]), v)], "outside the block range"),
        ([SeriesData(a, one, np.array([1.0, 2.0]))], "1 timestamps but 2 values"),
        ([SeriesData(Labels(), one, v)], "no labels"),
    ]
    for series, msg in cases:
        with pytest.raises(ValueError, match=msg):
            write_block(tmp_path, series, 0, 10)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="empty"):
        write_block(tmp_path, [], 10, 0)


def test_empty_block(tmp_path: Path) -> None:
    with Block.open(write_block(tmp_path, [], 0, 10)) as b:
        q = b.querier(0, 10)
        assert q.select([], 0, 10) == [] and q.label_names() == []
        assert q.label_values("x") == []
        q.close()


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x40
    path.write_bytes(bytes(data))


def test_corruption_in_index_is_named(tmp_path: Path) -> None:
    path = write_block(tmp_path, make_series(3), T0, T0 + 10**10)
    size = (path / "index").stat().st_size
    for offset in (0, 9, 20, size // 2, size - 1):
        blk = tmp_path / f"copy{offset}"
        blk.mkdir()
        for f in path.iterdir():
            (blk / f.name).write_bytes(f.read_bytes())
        _flip(blk / "index", offset)
        with pytest.raises(CorruptBlockError) as err:
            Block.open(blk)
        assert str(blk / "index") in str(err.value)


def test_corruption_in_chunks_is_named(tmp_path: Path) -> None:
    path = write_block(tmp_path, make_series(4), T0, T0 + 10**10)
    _flip(path / "chunks", 2)
    with pytest.raises(CorruptBlockError, match="bad magic"):
        Block.open(path)
    _flip(path / "chunks", 2)
    _flip(path / "chunks", (path / "chunks").stat().st_size // 2)
    with Block.open(path) as b:
        q = b.querier(*ALL)
        with pytest.raises(CorruptBlockError, match=r"chunks: chunk \d+ at offset \d+: checksum"):
            q.select([], *ALL)
        with pytest.raises(CorruptBlockError, match="checksum"):
            b.verify()
        q.close()
    with open(path / "chunks", "r+b") as fh:
        fh.truncate(100)
    with pytest.raises(CorruptBlockError, match="truncated"):
        Block.open(path)


def test_corrupt_or_missing_meta(tmp_path: Path) -> None:
    path = write_block(tmp_path, make_series(5, n_series=5), T0, T0 + 10**10)
    meta = json.loads((path / "meta.json").read_text())
    (path / "meta.json").write_text("{not json")
    with pytest.raises(CorruptBlockError, match=r"meta\.json"):
        Block.open(path)
    meta["stats"]["numSamples"] += 1
    (path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(CorruptBlockError, match=r"index: holds"):
        Block.open(path)
    meta["minTime"] = "soon"
    (path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(CorruptBlockError, match="minTime is not an integer"):
        Block.open(path)
    os.remove(path / "index")
    with pytest.raises(CorruptBlockError, match="index: missing"):
        Block.open(path)


def test_close_waits_for_queriers(tmp_path: Path) -> None:
    b = Block.open(write_block(tmp_path, make_series(6, n_series=10), T0, T0 + 10**10))
    q = b.querier(*ALL)
    b.close()
    assert q.select([], *ALL)  # still readable: the block closes after its querier
    with pytest.raises(RuntimeError, match="closed"):
        b.querier(*ALL)
    q.close()
    with pytest.raises(RuntimeError, match="after close"):
        q.select([], *ALL)
    b.close()


def test_ulids_sort_by_time() -> None:
    ids = [new_ulid() for _ in range(200)]
    assert ids == sorted(ids) and len(set(ids)) == 200
    assert all(is_ulid(u) for u in ids)
    late = new_ulid(now_ms=2**46)
    assert ulid_time(late) == 2**46 and late > ids[-1]


def test_segmented_search_matches_searchsorted_per_run() -> None:
    from vigil.tsdb.block import segmented_search

    for n_runs in (5, 200):  # the one-by-one path and the vectorised bisection
        _check_segmented_search(segmented_search, n_runs)
    assert segmented_search(np.zeros(0, dtype=np.int64), np.zeros(1), np.zeros(1), 5).tolist() == [
        0
    ]


def _check_segmented_search(segmented_search, n_runs: int) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(n_runs)
    lens = rng.integers(0, 40, size=n_runs)
    runs = [np.sort(rng.integers(0, 100, size=int(n))) for n in lens]
    ts = np.concatenate(runs)
    bounds = np.concatenate([[0], np.cumsum(lens)])
    lo, hi = bounds[:-1], bounds[1:]
    for key in (-1, 0, 37, 50, 99, 100):
        for side in ("left", "right"):
            got = segmented_search(ts, lo, hi, key, side=side)
            want = [
                int(a) + int(np.searchsorted(r, key, side=side))
                for a, r in zip(lo, runs, strict=True)
            ]
            assert got.tolist() == want


@pytest.mark.parametrize("target", [97, 4096])
def test_few_series_path_equals_whole_array_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: int
) -> None:
    """Small selections are read series by series; both paths give the same data."""
    monkeypatch.setattr(block_mod, "CHUNK_TARGET_SAMPLES", target)
    series = make_series(21, n_series=60)
    rng = np.random.default_rng(5)
    with Block.open(write_block(tmp_path, series, T0, T0 + 10**10)) as b:
        q = b.querier(T0, T0 + 10**10)
        try:
            for _ in range(60):
                n = b.index.num_series
                ids = np.sort(rng.choice(n, size=int(rng.integers(1, 12)), replace=False))
                a, z = sorted(rng.integers(T0 - 10**6, T0 + 6 * 10**7, size=2).tolist())
                few = q._read_few(ids.astype(np.int64), a, z)
                monkeypatch.setattr(block_mod, "_FEW_SERIES", 0)
                whole = q._read(ids.astype(np.int64), a, z)
                monkeypatch.setattr(block_mod, "_FEW_SERIES", 16)
                assert [s.labels for s in few] == [s.labels for s in whole]
                for x, y in zip(few, whole, strict=True):
                    assert x.timestamps.tolist() == y.timestamps.tolist()
                    assert np.array_equal(x.values.view(np.int64), y.values.view(np.int64))
                    assert not x.timestamps.flags.writeable and not x.values.flags.writeable
        finally:
            q.close()


def test_series_lists_say_truly_where_their_samples_lie(tmp_path: Path) -> None:
    """When a read hands back a `SeriesList`, its flat arrays and offsets are
    exactly the series' samples back to back (the engine uses them as they are)."""
    from vigil.storage.interface import SeriesList

    series = make_series(8)
    seen = 0
    with Block.open(write_block(tmp_path, series, T0, T0 + 10**10)) as b:
        q = b.querier(*ALL)
        for matchers in MATCHERS:
            for mint, maxt in [ALL, (T0 + 3_000_000, T0 + 9_000_000)]:
                got = q.select(matchers, mint, maxt)
                if not isinstance(got, SeriesList):
                    continue
                seen += 1
                assert got.offsets.tolist() == [0, *np.cumsum([len(s.timestamps) for s in got])]
                want_t = np.concatenate([s.timestamps for s in got])
                want_v = np.concatenate([s.values for s in got])
                assert np.array_equal(got.flat_timestamps, want_t)
                assert np.array_equal(got.flat_values.view(np.int64), want_v.view(np.int64))
        q.close()
    assert seen > 0


def test_version_1_blocks_read_as_one_band(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks written before time bands (index version 1: no band edges, one run
    per series) still open, select and stream out unchanged."""
    from vigil.tsdb import index as index_mod

    series = make_series(4)
    monkeypatch.setattr(block_mod, "BAND_MS", 10**13)  # one band: the v1 sample order
    path = write_block(tmp_path, series, T0, T0 + 10**10)
    with Block.open(path) as b:
        idx = b.index
        labels = [idx.labels(i) for i in range(idx.num_series)]
        starts, smin, smax, chunks = (
            idx.sample_starts.copy(),
            idx.series_mint.copy(),
            idx.series_maxt.copy(),
            idx.chunks.copy(),
        )
    monkeypatch.setattr(index_mod, "INDEX_VERSION", 1)
    index_mod.write_index(path / "index", labels, starts, smin, smax, chunks)  # no band edges
    monkeypatch.undo()
    mem = to_memory(series).querier(*ALL)
    with Block.open(path) as b:
        assert b.index.band_edges is None and b.num_bands == 1
        q = b.querier(*ALL)
        for matchers in MATCHERS:
            for mint, maxt in [ALL, (T0 + 3_000_000, T0 + 9_000_000)]:
                assert_same(q.select(matchers, mint, maxt), mem.select(matchers, mint, maxt))
        q.close()
        streamed = list(b.iter_series())
    want = [s for s in series if s.timestamps.size]
    assert [s.labels for s in streamed] == [s.labels for s in want]
    for got, exp in zip(streamed, want, strict=True):
        assert np.array_equal(got.timestamps, exp.timestamps)


@pytest.mark.parametrize("span", [1, 29 * 60_000, 10**6 * 3600, 7 * 86_400_000 + 12345])
def test_band_edges_cover_the_block_in_at_most_max_bands(span: int) -> None:
    for mint in (0, T0, T0 + 17 * 60_000 + 5):
        maxt = mint + span
        edges = block_mod.band_edges_for(mint, maxt)
        assert edges[0] <= mint and edges[-1] > maxt
        assert 1 <= edges.size - 1 <= block_mod.MAX_BANDS
        widths = np.diff(edges)
        assert (widths == widths[0]).all() and widths[0] % block_mod.BAND_MS == 0
        assert edges[0] % widths[0] == 0


@pytest.mark.parametrize("batch", [7, 64, 4096])
def test_whole_range_join_from_chunks_equals_memory_storage(
    tmp_path: Path, small_chunks: None, monkeypatch: pytest.MonkeyPatch, batch: int
) -> None:
    """Long ranges over a block whose chunks are not in an arena are joined a batch
    of series at a time from the chunks holding that batch (no copy of the whole
    selection first); any batch size gives the same series as the reference."""
    monkeypatch.setattr(block_mod, "_JOIN_BATCH", batch)
    calls = []
    original = block_mod.BlockQuerier._join_from_chunks

    def spy(self, *args):  # type: ignore[no-untyped-def]
        calls.append(1)
        return original(self, *args)

    monkeypatch.setattr(block_mod.BlockQuerier, "_join_from_chunks", spy)
    series = make_series(11, n_series=150)
    mem = to_memory(series).querier(*ALL)
    with Block.open(write_block(tmp_path, series, T0, T0 + 10**10)) as b:
        q = b.querier(*ALL)
        try:
            for matchers in ([], MATCHERS[1], MATCHERS[3], MATCHERS[11]):
                got = q.select(matchers, *ALL)
                assert_same(got, mem.select(matchers, *ALL))
                for s in got:
                    assert not s.timestamps.flags.writeable and not s.values.flags.writeable
        finally:
            q.close()
    if b.num_bands > 1 and batch < 150:
        assert calls  # the batched join was exercised, not bypassed
