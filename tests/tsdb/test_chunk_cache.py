"""The decoded-chunk cache: bounds, LRU order, invalidation, sharing by blocks and a TSDB."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from _bands import band_width  # noqa: F401 - autouse: every test with wide and narrow bands
from vigil.model.labels import Labels
from vigil.model.matchers import Matcher, MatchType
from vigil.tsdb import block as block_mod
from vigil.tsdb.block import Block, write_block
from vigil.tsdb.chunk_cache import ENTRY_OVERHEAD_BYTES, ChunkCache
from vigil.tsdb.db import TSDB, TSDBOptions

from .test_block import ALL, MATCHERS, T0, assert_same, make_series

H = 3600 * 1000
ANY = [Matcher(MatchType.REGEX, "__name__", ".+")]


def arrays(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return np.arange(n, dtype=np.int64), rng.normal(size=n)


def entry_bytes(n: int) -> int:
    return 16 * n + ENTRY_OVERHEAD_BYTES


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(block_mod, "CHUNK_TARGET_SAMPLES", 97)


# -- the cache on its own ---------------------------------------------------------------


def test_put_get_marks_read_only_and_counts() -> None:
    c = ChunkCache(1 << 20)
    ts, vs = arrays(10)
    assert c.get("a", 0) is None
    c.put("a", 0, ts, vs)
    got = c.get("a", 0)
    assert got is not None and got[0] is ts and got[1] is vs
    assert not ts.flags.writeable and not vs.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        got[1][0] = 1.0
    assert c.get("b", 0) is None and c.get("a", 1) is None
    st = c.stats()
    assert (st["hits"], st["misses"], st["entries"]) == (1, 3, 1)
    assert st["bytes"] == c.bytes == entry_bytes(10)


def test_eviction_by_bytes_is_lru() -> None:
    c = ChunkCache(3 * entry_bytes(100))
    for i in range(3):
        c.put("b", i, *arrays(100, i))
    assert len(c) == 3 and c.bytes == 3 * entry_bytes(100)
    assert c.get("b", 0) is not None  # 0 is now the most recently used
    c.put("b", 3, *arrays(100, 3))  # evicts 1, the least recently used
    assert c.get("b", 1) is None
    assert all(c.get("b", i) is not None for i in (0, 2, 3))
    # A big entry evicts as many as needed; the bound always holds.
    c.put("b", 4, *arrays(250, 4))
    assert c.bytes <= c.max_bytes and c.get("b", 4) is not None
    assert c.stats()["evictions"] >= 3
    # One larger than the whole cache is not kept and evicts nothing.
    before = len(c)
    c.put("b", 5, *arrays(10_000, 5))
    assert c.get("b", 5) is None and len(c) == before


def test_replacing_an_entry_keeps_the_accounting() -> None:
    c = ChunkCache(1 << 20)
    c.put("a", 0, *arrays(10))
    c.put("a", 0, *arrays(20))
    assert len(c) == 1 and c.bytes == entry_bytes(20)


def test_invalidate_drops_owner_and_refuses_late_puts() -> None:
    c = ChunkCache(1 << 20)
    for i in range(4):
        c.put("x", i, *arrays(10, i))
        c.put("y", i, *arrays(10, i))
    assert c.invalidate("x") == 4
    assert all(c.get("x", i) is None for i in range(4))
    assert all(c.get("y", i) is not None for i in range(4))
    assert c.bytes == 4 * entry_bytes(10)
    c.put("x", 0, *arrays(10))  # a reader racing the close must not resurrect it
    assert c.get("x", 0) is None and c.bytes == 4 * entry_bytes(10)


def test_zero_disables_and_negative_is_rejected() -> None:
    c = ChunkCache(0)
    assert not c.enabled
    c.put("a", 0, *arrays(1))
    assert c.get("a", 0) is None and c.bytes == 0
    with pytest.raises(ValueError):
        ChunkCache(-1)
    with pytest.raises(ValueError, match="chunk_cache_bytes"):
        TSDBOptions(chunk_cache_bytes=-1)


def test_concurrent_put_get_keeps_the_bound() -> None:
    c = ChunkCache(20 * entry_bytes(50))
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            rng = np.random.default_rng(k)
            for _ in range(2000):
                i = int(rng.integers(0, 60))
                got = c.get("o", i)
                if got is None:
                    ts = np.full(50, i, dtype=np.int64)
                    c.put("o", i, ts, ts.astype(np.float64))
                else:
                    assert int(got[0][0]) == i and float(got[1][-1]) == i
                if k == 0 and rng.random() < 0.01:
                    c.invalidate(("dead", int(rng.integers(0, 1000))))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert c.bytes <= c.max_bytes
    assert c.bytes == len(c) * entry_bytes(50)


# -- blocks sharing a cache ----------------------------------------------------------------


def test_cached_results_equal_uncached_on_random_windows(
    tmp_path: Path, small_chunks: None
) -> None:
    series = make_series(11)
    path = write_block(tmp_path, series, T0, T0 + 10**10)
    lo = min(int(s.timestamps[0]) for s in series if s.timestamps.size)
    hi = max(int(s.timestamps[-1]) for s in series if s.timestamps.size)
    rng = np.random.default_rng(3)
    # Small enough that evictions happen while querying.
    cache = ChunkCache(40 * entry_bytes(97))
    with Block.open(path) as plain, Block.open(path, cache=cache) as cached:
        qp, qc = plain.querier(*ALL), cached.querier(*ALL)
        for _ in range(60):
            mint, maxt = sorted(int(x) for x in rng.integers(lo - 100, hi + 100, 2))
            for matchers in ([], MATCHERS[1], MATCHERS[5], MATCHERS[7]):
                want = qp.select(matchers, mint, maxt)
                got = qc.select(matchers, mint, maxt)
                assert_same(got, want)
                for s in got:
                    assert not s.timestamps.flags.writeable and not s.values.flags.writeable
                assert qc.series(matchers, mint, maxt) == qp.series(matchers, mint, maxt)
        st = cache.stats()
        assert st["hits"] > 0 and st["misses"] > 0 and st["evictions"] > 0
        assert cache.bytes <= cache.max_bytes
        qp.close()
        qc.close()
    assert len(cache) == 0 and cache.bytes == 0  # dropped on close


def test_block_close_invalidates_only_its_entries(tmp_path: Path, small_chunks: None) -> None:
    cache = ChunkCache(1 << 24)
    a = Block.open(write_block(tmp_path, make_series(1, 30), T0, T0 + 10**10), cache=cache)
    b = Block.open(write_block(tmp_path, make_series(2, 30), T0, T0 + 10**10), cache=cache)
    for blk in (a, b):
        q = blk.querier(*ALL)
        assert q.select([], *ALL)
        q.close()
    n_a, n_b = a.index.chunks.size, b.index.chunks.size
    assert len(cache) == n_a + n_b
    q = a.querier(*ALL)
    a.close()
    assert len(cache) == n_a + n_b  # a querier still holds `a` open
    q.select([], *ALL)
    q.close()
    assert len(cache) == n_b
    # Reopening gives a new owner: nothing of the old instance is served.
    a2 = Block.open(a.path, cache=cache)
    assert cache.get(a2._cache_owner, 0) is None
    a2.close()
    b.close()
    assert len(cache) == 0 and cache.bytes == 0


def test_iter_series_and_verify_bypass_the_cache(tmp_path: Path, small_chunks: None) -> None:
    cache = ChunkCache(1 << 24)
    with Block.open(write_block(tmp_path, make_series(4), T0, T0 + 10**10), cache=cache) as b:
        b.verify()
        assert sum(1 for _ in b.iter_series())
        ts, _ = b.read_chunk(0)
        assert ts.flags.writeable  # read_chunk still returns fresh, caller-owned arrays
        assert len(cache) == 0


def test_concurrent_readers_share_the_cache(tmp_path: Path, small_chunks: None) -> None:
    series = make_series(5)
    path = write_block(tmp_path, series, T0, T0 + 10**10)
    lo = min(int(s.timestamps[0]) for s in series if s.timestamps.size)
    hi = max(int(s.timestamps[-1]) for s in series if s.timestamps.size)
    rng = np.random.default_rng(9)
    windows = [tuple(sorted(int(x) for x in rng.integers(lo, hi, 2))) for _ in range(30)]
    with Block.open(path) as plain:
        q = plain.querier(*ALL)
        want = {w: q.select(MATCHERS[1], *w) for w in windows}
        q.close()
    cache = ChunkCache(30 * entry_bytes(97))  # forces evictions under contention
    errors: list[BaseException] = []
    with Block.open(path, cache=cache) as b:

        def reader(k: int) -> None:
            try:
                for i in range(120):
                    w = windows[(i * (k + 1)) % len(windows)]
                    q = b.querier(*ALL)
                    try:
                        assert_same(q.select(MATCHERS[1], *w), want[w])
                    finally:
                        q.close()
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=reader, args=(k,)) for k in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert cache.hits > 0 and cache.bytes <= cache.max_bytes


# -- the TSDB ------------------------------------------------------------------------------


def _fill(db: TSDB, start: int, end: int, step: int, nseries: int, scale: float) -> None:
    app = db.appender()
    refs = np.array(
        [app.series_ref(Labels.from_dict({"__name__": "m", "i": str(i)})) for i in range(nseries)]
    )
    for t in range(start, end, step):
        app.append_refs(refs, np.full(nseries, t), np.full(nseries, scale * t / 1000))
        app.commit()


def _select(db: TSDB, mint: int, maxt: int) -> list:
    q = db.querier(mint, maxt)
    try:
        return q.select(ANY, mint, maxt)
    finally:
        q.close()


def _metric(db: TSDB, name: str) -> float:
    return {m[0]: m[2] for m in db.metrics()}[name]


def test_tsdb_cache_metrics_and_invalidation_on_compaction_and_retention(
    tmp_path: Path,
) -> None:
    d = 2 * H
    o = TSDBOptions(
        background=False,
        wal_fsync="never",
        retention_ms=0,
        block_duration_ms=d,
        max_block_duration_ms=3 * d,
    )
    db = TSDB.open(tmp_path, o)
    assert _metric(db, "vigil_tsdb_chunk_cache_max_bytes") == 256 << 20
    _fill(db, 0, 5 * H, 60_000, nseries=3, scale=1.0)
    db.maintain(5 * H)
    old = {b._cache_owner for b in db.blocks}
    assert old
    first = _select(db, 0, 4 * H - 1)
    again = _select(db, 0, 4 * H - 1)
    assert_same(again, first)
    assert _metric(db, "vigil_tsdb_chunk_cache_hits_total") > 0
    assert _metric(db, "vigil_tsdb_chunk_cache_misses_total") > 0
    assert _metric(db, "vigil_tsdb_chunk_cache_bytes") == db.chunk_cache.bytes > 0
    # Compaction replaces the blocks: their entries go, the new block reads right.
    _fill(db, 5 * H, 9 * H, 60_000, nseries=3, scale=1.0)
    db.maintain(9 * H)
    assert [(b.meta.mint, b.meta.maxt) for b in db.blocks] == [(0, 3 * d - 1)]
    live = {b._cache_owner for b in db.blocks}
    assert not old & live
    assert_same(_select(db, 0, 4 * H - 1), first)
    assert {k[0] for k in db.chunk_cache._entries} <= live
    assert_same(_select(db, 0, 4 * H - 1), first)
    assert db.chunk_cache.bytes > 0
    db.close()
    assert db.chunk_cache.bytes == 0
    # Retention deletes the block; nothing of it stays cached.
    db = TSDB.open(tmp_path, TSDBOptions(background=False, wal_fsync="never", retention_ms=H))
    assert _select(db, 0, H)
    assert db.chunk_cache.bytes > 0
    report = db.maintain(9 * H)
    assert report.deleted and db.chunk_cache.bytes == 0
    db.close()


def test_tsdb_cache_disabled(tmp_path: Path) -> None:
    db = TSDB.open(
        tmp_path,
        TSDBOptions(background=False, wal_fsync="never", retention_ms=0, chunk_cache_bytes=0),
    )
    _fill(db, 0, 5 * H, 60_000, nseries=2, scale=1.0)
    db.maintain(5 * H)
    assert db.blocks
    got = _select(db, 0, 4 * H - 1)
    assert got and got[0].timestamps[0] == 0
    assert db.chunk_cache.bytes == 0 and db.chunk_cache.hits == 0
    db.close()


def test_arena_reads_equal_plain_reads_and_leave_with_their_group(
    tmp_path: Path, small_chunks: None
) -> None:
    """Blocks that fit half the cache decode into an arena; two such blocks that
    together overflow the cache evict each other's arenas whole, and every answer
    stays equal to an uncached read."""
    a_path = write_block(tmp_path, make_series(5), T0, T0 + 10**10)
    b_path = write_block(tmp_path, make_series(6), T0, T0 + 10**10)
    with Block.open(a_path) as probe:
        block_bytes = probe._arena_samples * block_mod.ARENA_BYTES_PER_SAMPLE
    # Each block alone is eligible (<= half the cache); both together do not fit.
    cache = ChunkCache(int(block_bytes * 2.2) + 64 * ENTRY_OVERHEAD_BYTES)
    arena_reads = []
    with (
        Block.open(a_path) as plain_a,
        Block.open(b_path) as plain_b,
        Block.open(a_path, cache=cache) as a,
        Block.open(b_path, cache=cache) as b,
    ):
        assert a._use_arena and b._use_arena
        pairs = [(plain_a.querier(*ALL), a.querier(*ALL)), (plain_b.querier(*ALL), b.querier(*ALL))]
        rng = np.random.default_rng(9)
        for i in range(40):
            qp, qc = pairs[i % 2]
            mint, maxt = sorted(int(x) for x in rng.integers(T0 - 100, T0 + 4 * 10**7, 2))
            for matchers in ([], MATCHERS[1], MATCHERS[7]):
                assert_same(qc.select(matchers, mint, maxt), qp.select(matchers, mint, maxt))
            arena_reads.append(a._arena is not None or b._arena is not None)
        for qp, qc in pairs:
            qp.close()
            qc.close()
        assert any(arena_reads)
        assert cache.stats()["evictions"] > 0 and cache.bytes <= cache.max_bytes


def test_grouped_owner_is_evicted_whole_and_told() -> None:
    cache = ChunkCache(6 * entry_bytes(10))
    dropped: list[str] = []
    for i in range(3):
        cache.put("arena", i, np.arange(10), np.zeros(10), on_evict=lambda: dropped.append("a"))
    for i in range(3):
        cache.put("plain", i, np.arange(10), np.zeros(10))
    assert dropped == [] and len(cache) == 6
    cache.put("plain", 3, np.arange(10), np.zeros(10))  # over budget: the LRU is "arena"
    assert dropped == ["a"]
    assert all(cache.get("arena", i) is None for i in range(3))
    assert all(cache.get("plain", i) is not None for i in range(4))
    assert cache.bytes == 4 * entry_bytes(10)


def test_auto_size_is_a_sixteenth_of_memory_within_bounds() -> None:
    from vigil.tsdb.chunk_cache import (
        AUTO_MAX_BYTES,
        AUTO_MIN_BYTES,
        DEFAULT_CHUNK_CACHE_BYTES,
        auto_chunk_cache_bytes,
        memory_limit_bytes,
    )

    assert auto_chunk_cache_bytes(24 << 30) == (24 << 30) // 16
    assert auto_chunk_cache_bytes(1 << 30) == AUTO_MIN_BYTES  # small VM: the floor
    assert auto_chunk_cache_bytes(256 << 30) == AUTO_MAX_BYTES  # big host: the ceiling
    assert auto_chunk_cache_bytes(0) == DEFAULT_CHUNK_CACHE_BYTES  # unknown memory
    memory = memory_limit_bytes()
    assert memory is not None and memory > 0  # Linux: physical memory or the cgroup limit
    assert AUTO_MIN_BYTES <= auto_chunk_cache_bytes() <= AUTO_MAX_BYTES
