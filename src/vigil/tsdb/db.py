"""The TSDB: head + WAL + immutable blocks in one data directory.

    <data_dir>/lock          flock held while open (see lock.py)
    <data_dir>/wal/          write-ahead log (see wal.py, docs/format/wal.md)
    <data_dir>/<ULID>/       immutable blocks (written by vigil.tsdb.block)

`TSDB.open` replays the WAL into the head; `appender()` writes to the head;
`querier(mint, maxt)` merges the blocks overlapping the range with the head.
`maintain(now_ms)` does the background work once (flush the head's old data into
a block, checkpoint the WAL, compact blocks, apply retention); a thread calls it
every `maintenance_interval_s` unless `background=False`, and tests call it with
an injected clock.

Thread-safety: appenders are per-thread; queriers, `maintain`, `stats` and
`metrics` may run concurrently. Blocks a querier uses stay open until it closes,
even if compaction or retention removes them meanwhile.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vigil.model.labels import Labels
from vigil.model.matchers import Matcher
from vigil.storage.interface import Querier, SelectHints, SeriesData
from vigil.tsdb import planner
from vigil.tsdb.chunk_cache import DEFAULT_CHUNK_CACHE_BYTES, ChunkCache
from vigil.tsdb.head import INT64_MAX, INT64_MIN, Head, HeadAppender
from vigil.tsdb.lock import DataDirError, DirLock
from vigil.tsdb.wal import WAL, FsyncPolicy, ReplayReport

log = logging.getLogger(__name__)

DAY_MS = 24 * 3600 * 1000
HOUR_MS = 3600 * 1000
MetricTuple = tuple[str, dict[str, str], float, str, str]


@dataclass(frozen=True, slots=True)
class TSDBOptions:
    """Storage settings. Durations are int milliseconds."""

    retention_ms: int = 15 * DAY_MS
    retention_bytes: int = 0  # 0 = no size limit
    block_duration_ms: int = 2 * HOUR_MS
    max_block_duration_ms: int = 0  # 0 = min(retention / 10, 31 days)
    wal_fsync: FsyncPolicy = "batch"
    wal_fsync_interval_ms: int = 100
    wal_segment_bytes: int = 128 << 20
    wal_compression: bool = True
    out_of_order_window_ms: int = 0
    head_seal_samples: int = 1 << 16
    background: bool = True
    maintenance_interval_s: float = 60.0
    chunk_cache_bytes: int = DEFAULT_CHUNK_CACHE_BYTES  # decoded block chunks; 0 = off

    def __post_init__(self) -> None:
        if self.block_duration_ms <= 0:
            raise ValueError(f"block_duration_ms must be > 0, got {self.block_duration_ms}")
        if self.retention_ms < 0 or self.retention_bytes < 0:
            raise ValueError("retention_ms and retention_bytes must be >= 0")
        if self.out_of_order_window_ms < 0:
            raise ValueError("out_of_order_window_ms must be >= 0")
        if self.wal_segment_bytes < 4096:
            raise ValueError(f"wal_segment_bytes must be >= 4096, got {self.wal_segment_bytes}")
        if self.chunk_cache_bytes < 0:
            raise ValueError(f"chunk_cache_bytes must be >= 0, got {self.chunk_cache_bytes}")
        if self.wal_fsync not in ("always", "batch", "never"):
            raise ValueError(f"wal_fsync must be always, batch or never, not {self.wal_fsync!r}")

    @property
    def level_ranges(self) -> list[int]:
        top = self.max_block_duration_ms or min(max(self.retention_ms // 10, 1), 31 * DAY_MS)
        return planner.level_ranges(self.block_duration_ms, top)


@dataclass(slots=True)
class MaintenanceReport:
    flushed_blocks: list[Path] = field(default_factory=list)
    compacted: list[Path] = field(default_factory=list)
    deleted: list[Path] = field(default_factory=list)
    checkpoint: Path | None = None


class _BlockHandle:
    """Reference-counted block: closed and removed only when no querier uses it."""

    def __init__(self, block: Any, path: Path) -> None:
        self.block = block
        self.path = path
        self.refs = 0
        self.doomed = False

    @property
    def meta(self) -> Any:
        return self.block.meta


def _block_module() -> Any:
    from vigil.tsdb import block

    return block


def _is_block_dir(p: Path) -> bool:
    return p.is_dir() and (p / "meta.json").is_file() and not p.name.endswith(".tmp")


class TSDB:
    """A durable store implementing `Appendable` and `Queryable`."""

    def __init__(
        self,
        data_dir: Path,
        options: TSDBOptions,
        lock: DirLock,
        now: Callable[[], int],
    ) -> None:
        self.dir = data_dir
        self.options = options
        self._lock = lock
        self._now = now
        self._mu = threading.RLock()  # guards self._blocks
        self._maint_mu = threading.Lock()  # one maintenance run at a time
        self._blocks: list[_BlockHandle] = []
        self.chunk_cache = ChunkCache(options.chunk_cache_bytes)
        self.head = Head(
            block_duration_ms=options.block_duration_ms,
            ooo_window_ms=options.out_of_order_window_ms,
            seal_threshold=options.head_seal_samples,
        )
        self.wal = WAL(
            data_dir / "wal",
            segment_bytes=options.wal_segment_bytes,
            fsync=options.wal_fsync,
            fsync_interval_ms=options.wal_fsync_interval_ms,
            compress=options.wal_compression,
        )
        self.replay_report = ReplayReport()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.compactions = 0
        self.compactions_failed = 0
        self.head_flushes = 0
        self.time_retentions = 0
        self.size_retentions = 0
        self.checkpoints = 0

    # -- lifecycle -------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        data_dir: Path,
        options: TSDBOptions | None = None,
        *,
        now: Callable[[], int] | None = None,
    ) -> TSDB:
        """Lock `data_dir`, load its blocks, replay the WAL and start writing.

        Raises `DataDirLockedError` if another process holds the directory and
        `DataDirError` if it cannot be created or written.
        """
        options = options or TSDBOptions()
        data_dir = Path(data_dir)
        lock = DirLock(data_dir)
        lock.acquire()
        clock = now or (lambda: int(time.time() * 1000))
        try:
            db = cls(data_dir, options, lock, clock)
            db._load()
        except OSError as exc:
            lock.release()
            if isinstance(exc, DataDirError):
                raise
            raise DataDirError(exc.errno, f"cannot open TSDB in {data_dir}: {exc}") from None
        except BaseException:
            lock.release()
            raise
        if options.background:
            db._thread = threading.Thread(target=db._loop, name="vigil-tsdb-maint", daemon=True)
            db._thread.start()
        return db

    def _load(self) -> None:
        for p in self.dir.iterdir():
            # Leftovers of a write interrupted by a crash (tmp names never count).
            if p.is_dir() and (p.name.endswith(".tmp") or ".tmp-" in p.name):
                shutil.rmtree(p, ignore_errors=True)
        for p in sorted(self.dir.iterdir()):
            if _is_block_dir(p):
                try:
                    blk = _block_module().Block.open(p, cache=self.chunk_cache)
                except Exception as exc:  # a damaged block must not keep the DB down
                    log.error("skipping unreadable block %s: %s", p, exc)
                    continue
                self._blocks.append(_BlockHandle(blk, p))
        self._blocks.sort(key=lambda h: (h.meta.mint, h.meta.maxt))
        if self._blocks:
            # Samples up to the newest block's end are in blocks: a crash between a
            # head flush and its WAL checkpoint leaves them in the WAL too.
            self.head.truncate(max(h.meta.maxt for h in self._blocks) + 1)

        def on_series(series: list[tuple[int, Labels]]) -> None:
            for ref, labels in series:
                self.head.replay_series(ref, labels)

        self.replay_report = self.wal.replay(on_series, self.head.replay_samples)
        r = self.replay_report
        log.info(
            "WAL replay: %d records, %d series, %d samples in %.2fs",
            r.records,
            r.series,
            r.samples,
            r.duration_s,
        )
        self.head.log = self.wal
        self.wal.start()

    def close(self) -> None:
        """Stop background work, sync and close the WAL, close blocks, unlock. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._maint_mu:
            self.wal.close()
            with self._mu:
                for h in self._blocks:
                    with contextlib.suppress(Exception):
                        h.block.close()
                self._blocks = []
        self._lock.release()

    def __enter__(self) -> TSDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _loop(self) -> None:
        while not self._stop.wait(self.options.maintenance_interval_s):
            try:
                self.maintain(self._now())
            except Exception:
                log.exception("TSDB maintenance failed")

    # -- Appendable / Queryable --------------------------------------------------------

    def appender(self) -> HeadAppender:
        if self._closed:
            raise RuntimeError(f"TSDB in {self.dir} is closed")
        return self.head.appender()

    def querier(self, mint: int, maxt: int) -> Querier:
        """A querier over [mint, maxt] merging overlapping blocks with the head."""
        with self._mu:
            handles = [
                h
                for h in self._blocks
                if not h.doomed and h.meta.maxt >= mint and h.meta.mint <= maxt
            ]
            for h in handles:
                h.refs += 1
        parts: list[Querier] = [h.block.querier(mint, maxt) for h in handles]
        if (self.head.maxt >= mint and self.head.mint <= maxt) or not parts:
            parts.append(self.head.querier(mint, maxt))
        if len(parts) == 1:
            inner = parts[0]
        else:
            from vigil.tsdb.merge import MergeQuerier

            inner = MergeQuerier(parts)
        return _DBQuerier(self, inner, handles)

    def _release(self, handles: list[_BlockHandle]) -> None:
        with self._mu:
            for h in handles:
                h.refs -= 1
                if h.doomed and h.refs == 0:
                    self._destroy(h)

    def _destroy(self, h: _BlockHandle) -> None:
        with contextlib.suppress(Exception):
            h.block.close()
        # Rename first so a crash mid-delete never leaves a half block that loads.
        tmp = h.path.with_name(h.path.name + ".tmp-for-deletion")
        try:
            h.path.rename(tmp)
            shutil.rmtree(tmp, ignore_errors=True)
        except OSError as exc:
            log.error("cannot delete block %s: %s", h.path, exc)

    def _retire(self, h: _BlockHandle) -> None:
        """Take a block out of service; it is removed once no querier holds it."""
        with self._mu:
            if h in self._blocks:
                self._blocks.remove(h)
            h.doomed = True
            if h.refs == 0:
                self._destroy(h)

    # -- blocks ------------------------------------------------------------------------

    @property
    def blocks(self) -> list[Any]:
        with self._mu:
            return [h.block for h in self._blocks]

    def _adopt(self, path: Path) -> _BlockHandle:
        blk = _block_module().Block.open(path, cache=self.chunk_cache)
        h = _BlockHandle(blk, path)
        with self._mu:
            self._blocks.append(h)
            self._blocks.sort(key=lambda b: (b.meta.mint, b.meta.maxt))
        return h

    def add_block(self, path: Path) -> Path:
        """Adopt a block written elsewhere (import, backfill).

        A block outside the data directory is copied in (through a temp name, so
        a crash leaves nothing half-loaded). Overlaps with existing blocks are
        allowed: queries merge them and the next compaction combines them.
        """
        path = Path(path)
        if not _is_block_dir(path):
            raise ValueError(f"{path} is not a block directory (no meta.json)")
        _block_module().Block.open(path).close()  # validate before touching the DB
        if path.parent.resolve() != self.dir.resolve():
            dest = self.dir / path.name
            if dest.exists():
                raise FileExistsError(f"block {path.name} already exists in {self.dir}")
            tmp = self.dir / (path.name + ".tmp")
            shutil.copytree(path, tmp)
            tmp.rename(dest)
            path = dest
        self._adopt(path)
        return path

    # -- maintenance ---------------------------------------------------------------------

    def maintain(self, now_ms: int | None = None) -> MaintenanceReport:
        """Flush, checkpoint, compact and apply retention once (synchronously)."""
        now_ms = self._now() if now_ms is None else now_ms
        report = MaintenanceReport()
        with self._maint_mu:
            if self._closed:
                return report
            self._flush_head(report)
            self._compact(report)
            self._apply_retention(now_ms, report)
        return report

    def _flush_head(self, report: MaintenanceReport) -> None:
        d = self.options.block_duration_ms
        flushed = False
        while True:
            head = self.head
            if head.maxt == INT64_MIN or head.mint == INT64_MAX:
                break
            if head.maxt - head.mint <= d * 3 // 2:
                break
            mint = (head.mint // d) * d
            maxt = mint + d - 1
            series = [s for s in head.series_in_range(mint, maxt) if len(s.timestamps)]
            if series:
                path = _block_module().write_block(self.dir, series, mint, maxt)
                self._adopt(Path(path))
                report.flushed_blocks.append(Path(path))
                self.head_flushes += 1
            head.truncate(maxt + 1)
            flushed = True
        if flushed:
            report.checkpoint = self._checkpoint()

    def _checkpoint(self) -> Path:
        with self.head._lock:
            upto = self.wal.cut()
            series = self.head.live_series()
            segs = self.head.snapshot()
            meta = {"min_time": self.head.min_valid_time, "upto": upto}
        path = self.wal.checkpoint(
            upto, series, ((s.sample_refs(), s.ts, s.vs) for s in segs), meta
        )
        self.checkpoints += 1
        return path

    def _compact(self, report: MaintenanceReport) -> None:
        ranges = self.options.level_ranges
        while True:
            with self._mu:
                handles = list(self._blocks)
            head_mint = self.head.min_valid_time if self.head.maxt != INT64_MIN else INT64_MAX
            idx = planner.plan([h.meta for h in handles], ranges, head_mint)
            if not idx:
                return
            group = [handles[i] for i in idx]
            try:
                from vigil.tsdb.compact import compact_blocks

                path = Path(compact_blocks([h.block for h in group], self.dir))
            except Exception:
                self.compactions_failed += 1
                log.exception("compaction of %s failed", [h.path.name for h in group])
                return
            self._adopt(path)
            for h in group:
                self._retire(h)
            self.compactions += 1
            report.compacted.append(path)

    def _apply_retention(self, now_ms: int, report: MaintenanceReport) -> None:
        if not self.options.retention_ms and not self.options.retention_bytes:
            return
        with self._mu:
            handles = sorted(self._blocks, key=lambda h: h.meta.mint)
        if not handles:
            return
        from vigil.tsdb.retention import blocks_to_delete

        metas = [h.meta for h in handles]
        doomed = blocks_to_delete(
            metas,
            now_ms,
            self.options.retention_ms,
            self.options.retention_bytes,
            other_bytes=self.wal.size_bytes(),
        )
        ids = {m.ulid for m in doomed}
        for h in handles:
            if h.meta.ulid in ids:
                if self.options.retention_ms and h.meta.maxt < now_ms - self.options.retention_ms:
                    self.time_retentions += 1
                else:
                    self.size_retentions += 1
                report.deleted.append(h.path)
                self._retire(h)

    # -- status ------------------------------------------------------------------------

    def stats(self, limit: int = 10) -> dict[str, Any]:
        """What `/api/v1/status/tsdb` shows (head only, as in Prometheus)."""
        head = self.head
        post = head.index.postings_stats()
        names = post.get("__name__", {})

        def top(items: dict[str, int]) -> list[dict[str, Any]]:
            best = sorted(items.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
            return [{"name": k, "value": v} for k, v in best]

        pairs = {f"{n}={v}": c for n, vals in post.items() for v, c in vals.items()}
        empty = head.maxt == INT64_MIN
        return {
            "headStats": {
                "numSeries": head.num_series,
                "numLabelPairs": sum(len(v) for v in post.values()),
                "chunkCount": -(-head.num_samples // 120),
                "numSamples": head.num_samples,
                "minTime": 0 if empty else head.mint,
                "maxTime": 0 if empty else head.maxt,
            },
            "seriesCountByMetricName": top(dict(names)),
            "labelValueCountByLabelName": top({n: len(v) for n, v in post.items()}),
            "memoryInBytesByLabelName": top(
                {n: sum(len(v.encode()) * c for v, c in vals.items()) for n, vals in post.items()}
            ),
            "seriesCountByLabelValuePair": top(pairs),
        }

    def metrics(self) -> list[MetricTuple]:
        """Self-metrics as (name, labels, value, type, help), Prometheus names."""
        h, w = self.head, self.wal
        with self._mu:
            blocks = [b.meta for b in self._blocks]
        lowest = min(
            [m.mint for m in blocks] + ([h.mint] if h.mint != INT64_MAX else []), default=0
        )
        g, c = "gauge", "counter"
        cc = self.chunk_cache.stats()
        return [
            ("prometheus_tsdb_head_series", {}, h.num_series, g, "Series in the head."),
            ("prometheus_tsdb_head_samples", {}, h.num_samples, g, "Samples held in the head."),
            (
                "prometheus_tsdb_head_chunks",
                {},
                -(-h.num_samples // 120),
                g,
                "Estimated chunks (120 samples each) in the head.",
            ),
            (
                "prometheus_tsdb_head_series_created_total",
                {},
                h.series_created,
                c,
                "Series created in the head.",
            ),
            (
                "prometheus_tsdb_head_series_removed_total",
                {},
                h.series_removed,
                c,
                "Series removed from the head.",
            ),
            (
                "prometheus_tsdb_head_samples_appended_total",
                {"type": "float"},
                h.samples_appended,
                c,
                "Samples appended to the head.",
            ),
            (
                "prometheus_tsdb_out_of_order_samples_total",
                {"type": "float"},
                h.out_of_order,
                c,
                "Samples rejected as out of order.",
            ),
            (
                "prometheus_tsdb_duplicate_samples_total",
                {"type": "float"},
                h.duplicates,
                c,
                "Samples rejected as duplicates with a different value.",
            ),
            (
                "prometheus_tsdb_out_of_bound_samples_total",
                {"type": "float"},
                h.out_of_bounds,
                c,
                "Samples rejected as too old for the head.",
            ),
            (
                "prometheus_tsdb_head_min_time",
                {},
                h.mint if h.mint != INT64_MAX else 0,
                g,
                "Lowest timestamp in the head (ms).",
            ),
            (
                "prometheus_tsdb_head_max_time",
                {},
                h.maxt if h.maxt != INT64_MIN else 0,
                g,
                "Highest timestamp in the head (ms).",
            ),
            (
                "prometheus_tsdb_head_memory_bytes",
                {},
                h.memory_bytes,
                g,
                "Bytes of sample arrays held by the head.",
            ),
            (
                "prometheus_tsdb_wal_fsync_duration_seconds_sum",
                {},
                w.fsync_seconds,
                c,
                "Time spent in WAL fsync.",
            ),
            (
                "prometheus_tsdb_wal_fsync_duration_seconds_count",
                {},
                w.fsyncs,
                c,
                "WAL fsync calls.",
            ),
            (
                "prometheus_tsdb_wal_bytes_written_total",
                {},
                w.bytes_written,
                c,
                "Bytes written to the WAL.",
            ),
            (
                "prometheus_tsdb_wal_records_written_total",
                {},
                w.records_written,
                c,
                "Records written to the WAL.",
            ),
            (
                "prometheus_tsdb_wal_writes_failed_total",
                {},
                w.write_failures,
                c,
                "WAL writes that failed.",
            ),
            (
                "prometheus_tsdb_wal_corruptions_total",
                {},
                w.corruptions,
                c,
                "Corrupt or torn WAL tails found at replay.",
            ),
            (
                "prometheus_tsdb_wal_truncations_total",
                {},
                w.truncations,
                c,
                "WAL repairs by truncation.",
            ),
            (
                "prometheus_tsdb_wal_segment_current",
                {},
                w.current_segment,
                g,
                "Index of the WAL segment being written.",
            ),
            (
                "prometheus_tsdb_checkpoint_creations_total",
                {},
                self.checkpoints,
                c,
                "WAL checkpoints written.",
            ),
            (
                "prometheus_tsdb_data_replay_duration_seconds",
                {},
                self.replay_report.duration_s,
                g,
                "Time the last WAL replay took.",
            ),
            ("prometheus_tsdb_blocks_loaded", {}, len(blocks), g, "Blocks currently loaded."),
            (
                "prometheus_tsdb_storage_blocks_bytes",
                {},
                sum(m.size_bytes for m in blocks),
                g,
                "Bytes of all loaded blocks.",
            ),
            (
                "prometheus_tsdb_lowest_timestamp",
                {},
                lowest,
                g,
                "Lowest timestamp in blocks and head (ms).",
            ),
            (
                "prometheus_tsdb_compactions_total",
                {},
                self.compactions,
                c,
                "Block compactions run.",
            ),
            (
                "prometheus_tsdb_compactions_failed_total",
                {},
                self.compactions_failed,
                c,
                "Block compactions that failed.",
            ),
            (
                "prometheus_tsdb_head_truncations_total",
                {},
                self.head_flushes,
                c,
                "Head flushes into blocks.",
            ),
            (
                "prometheus_tsdb_time_retentions_total",
                {},
                self.time_retentions,
                c,
                "Blocks deleted by time retention.",
            ),
            (
                "prometheus_tsdb_size_retentions_total",
                {},
                self.size_retentions,
                c,
                "Blocks deleted by size retention.",
            ),
            ("vigil_tsdb_chunk_cache_hits_total", {}, cc["hits"], c, "Chunk cache hits."),
            ("vigil_tsdb_chunk_cache_misses_total", {}, cc["misses"], c, "Chunk cache misses."),
            (
                "vigil_tsdb_chunk_cache_bytes",
                {},
                cc["bytes"],
                g,
                "Bytes of decoded block chunks held in the chunk cache.",
            ),
            (
                "vigil_tsdb_chunk_cache_max_bytes",
                {},
                cc["max_bytes"],
                g,
                "Bound of the chunk cache (0 = disabled).",
            ),
        ]


class _DBQuerier:
    """Delegates to the merged querier and releases block references on close."""

    def __init__(self, db: TSDB, inner: Querier, handles: list[_BlockHandle]) -> None:
        self._db = db
        self._inner = inner
        self._handles = handles
        self._closed = False

    def select(
        self,
        matchers: Sequence[Matcher],
        mint: int,
        maxt: int,
        hints: SelectHints | None = None,
    ) -> list[SeriesData]:
        return self._inner.select(matchers, mint, maxt, hints)

    def label_names(
        self, matchers: Sequence[Matcher] = (), mint: int = 0, maxt: int = 0
    ) -> list[str]:
        return self._inner.label_names(matchers, mint, maxt)

    def label_values(
        self, name: str, matchers: Sequence[Matcher] = (), mint: int = 0, maxt: int = 0
    ) -> list[str]:
        return self._inner.label_values(name, matchers, mint, maxt)

    def series(self, matchers: Sequence[Matcher], mint: int, maxt: int) -> list[Labels]:
        return self._inner.series(matchers, mint, maxt)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self._inner.close()
        self._db._release(self._handles)

    def __enter__(self) -> _DBQuerier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
