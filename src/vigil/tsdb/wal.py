"""Write-ahead log: numbered segment files of checksummed records, plus checkpoints.

Layout of the WAL directory (details in docs/format/wal.md):

    00000000, 00000001, ...   segments, written in order, rotated past `segment_bytes`
    checkpoint.00000007       the live head state as of the end of segment 7

Durability (`fsync` policy):

- "always": `wait_durable` returns after fdatasync covered the record. Concurrent
  committers share one fdatasync (group commit).
- "batch": records reach the OS when the commit returns (a process crash loses
  nothing acknowledged); a background thread fdatasyncs at most every
  `fsync_interval_ms`, so a machine crash loses at most that window.
- "never": like batch without the thread; fsync only on rotation and close.

Replay reads the newest checkpoint then every later segment. A torn or corrupt
record (short read, CRC mismatch) ends replay there: it is logged with file and
offset, the segment is truncated at the record and later segments are moved to
`wal/corrupt/`, never fatal.

Thread-safety: `log_commit` may be called from any thread (the head calls it under
its lock, which keeps records in commit order); `wait_durable` and the sync thread
use their own locks.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from vigil.model.labels import Labels
from vigil.tsdb import wal_records as rec

log = logging.getLogger(__name__)

FsyncPolicy = Literal["always", "batch", "never"]
_SEGMENT_RE = re.compile(r"^\d{8}$")
_CHECKPOINT_RE = re.compile(r"^checkpoint\.(\d{8})$")


class WALWriteError(OSError):
    """A WAL write failed (disk full, I/O error); the commit was not applied."""


@dataclass(slots=True)
class ReplayReport:
    """What a replay read, and where it stopped early if it did."""

    checkpoint: str = ""
    segments: int = 0
    records: int = 0
    series: int = 0
    samples: int = 0
    corrupt_file: str = ""
    corrupt_offset: int = -1
    corrupt_reason: str = ""
    moved_aside: list[str] = field(default_factory=list)
    duration_s: float = 0.0

    @property
    def corrupted(self) -> bool:
        return bool(self.corrupt_file)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _segment_name(i: int) -> str:
    return f"{i:08d}"


class WAL:
    """The log of one TSDB. Create with `WAL(dir, ...)`, `replay`, then write."""

    def __init__(
        self,
        directory: Path,
        *,
        segment_bytes: int = 128 << 20,
        fsync: FsyncPolicy = "batch",
        fsync_interval_ms: int = 100,
        compress: bool = True,
    ) -> None:
        if fsync not in ("always", "batch", "never"):
            raise ValueError(f"wal fsync policy must be always, batch or never, not {fsync!r}")
        self.dir = Path(directory)
        self.segment_bytes = segment_bytes
        self.fsync = fsync
        self.fsync_interval_ms = fsync_interval_ms
        self.compress = compress
        self.dir.mkdir(parents=True, exist_ok=True)
        self._wlock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._fd = -1
        self._seg = -1
        self._size = 0
        self._written_seq = 0
        self._synced_seq = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Self-metrics.
        self.fsyncs = 0
        self.fsync_seconds = 0.0
        self.bytes_written = 0
        self.records_written = 0
        self.write_failures = 0
        self.truncations = 0
        self.corruptions = 0

    # -- files --------------------------------------------------------------------

    def segments(self) -> list[int]:
        return sorted(int(p.name) for p in self.dir.iterdir() if _SEGMENT_RE.match(p.name))

    def checkpoints(self) -> list[int]:
        out = []
        for p in self.dir.iterdir():
            m = _CHECKPOINT_RE.match(p.name)
            if m:
                out.append(int(m.group(1)))
        return sorted(out)

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.dir.iterdir() if p.is_file())

    # -- replay -------------------------------------------------------------------

    def replay(
        self,
        on_series: Callable[[list[tuple[int, Labels]]], None],
        on_samples: Callable[[np.ndarray, np.ndarray, np.ndarray], object],
        on_meta: Callable[[dict[str, object]], None] | None = None,
    ) -> ReplayReport:
        """Feed every record to the callbacks, repairing a torn or corrupt tail."""
        t0 = time.perf_counter()
        report = ReplayReport()
        cps = self.checkpoints()
        first_seg = 0
        if cps:
            cp = cps[-1]
            path = self.dir / f"checkpoint.{cp:08d}"
            report.checkpoint = path.name
            ok = self._replay_file(path, on_series, on_samples, on_meta, report)
            if not ok:
                # A checkpoint is written to a temp name, fsynced and renamed, so
                # damage here is a disk fault: keep what was readable, go on.
                log.error(
                    "WAL checkpoint %s damaged at offset %d: %s",
                    path,
                    report.corrupt_offset,
                    report.corrupt_reason,
                )
            first_seg = cp + 1
        segs = [s for s in self.segments() if s >= first_seg]
        for i, seg in enumerate(segs):
            path = self.dir / _segment_name(seg)
            report.segments += 1
            if not self._replay_file(path, on_series, on_samples, on_meta, report):
                self._repair(path, report, segs[i + 1 :])
                break
        report.duration_s = time.perf_counter() - t0
        return report

    def _replay_file(
        self,
        path: Path,
        on_series: Callable[[list[tuple[int, Labels]]], None],
        on_samples: Callable[[np.ndarray, np.ndarray, np.ndarray], object],
        on_meta: Callable[[dict[str, object]], None] | None,
        report: ReplayReport,
    ) -> bool:
        buf = path.read_bytes()
        off = 0
        while off < len(buf):
            try:
                rtype, body, nxt = rec.unframe(buf, off)
                if rtype == rec.REC_SERIES:
                    series = rec.decode_series(body)
                    on_series(series)
                    report.series += len(series)
                elif rtype == rec.REC_SAMPLES:
                    refs, ts, vs = rec.decode_samples(body)
                    on_samples(refs, ts, vs)
                    report.samples += len(refs)
                elif on_meta is not None:
                    on_meta(rec.decode_meta(body))
            except rec.RecordError as exc:
                report.corrupt_file = str(path)
                report.corrupt_offset = off
                report.corrupt_reason = str(exc)
                self.corruptions += 1
                return False
            report.records += 1
            off = nxt
        return True

    def _repair(self, path: Path, report: ReplayReport, later: list[int]) -> None:
        log.warning(
            "WAL %s: %s at offset %d; truncating there%s",
            path,
            report.corrupt_reason,
            report.corrupt_offset,
            f" and moving {len(later)} later segment(s) to corrupt/" if later else "",
        )
        with open(path, "r+b") as f:
            f.truncate(report.corrupt_offset)
            os.fsync(f.fileno())
        self.truncations += 1
        if later:
            aside = self.dir / "corrupt"
            aside.mkdir(exist_ok=True)
            for seg in later:
                src = self.dir / _segment_name(seg)
                dst = aside / f"{_segment_name(seg)}.{int(time.time())}"
                src.rename(dst)
                report.moved_aside.append(str(dst))

    # -- writing ------------------------------------------------------------------

    def start(self) -> None:
        """Open a fresh segment after the existing ones and start the sync thread."""
        segs = self.segments()
        cps = self.checkpoints()
        nxt = max(segs[-1] if segs else -1, cps[-1] if cps else -1) + 1
        with self._wlock:
            self._open_segment(nxt)
        if self.fsync == "batch" and self._thread is None:
            self._thread = threading.Thread(
                target=self._sync_loop, name="vigil-wal-sync", daemon=True
            )
            self._thread.start()

    def _open_segment(self, i: int) -> None:
        path = self.dir / _segment_name(i)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError as exc:
            raise WALWriteError(
                exc.errno, f"cannot create WAL segment {path}: {exc.strerror}"
            ) from None
        self._fd = fd
        self._seg = i
        self._size = os.fstat(fd).st_size
        if self.fsync != "never":
            _fsync_dir(self.dir)

    def _close_segment(self) -> None:
        if self._fd < 0:
            return
        # Rotation and close always fsync (even with "never"): a finished segment
        # is then durable and the sync thread only has to look at the current one.
        if True:
            t0 = time.perf_counter()
            with contextlib.suppress(OSError):
                os.fdatasync(self._fd)
            self.fsyncs += 1
            self.fsync_seconds += time.perf_counter() - t0
        os.close(self._fd)
        self._fd = -1
        self._synced_seq = self._written_seq

    @property
    def current_segment(self) -> int:
        return self._seg

    def log_commit(
        self,
        series: list[tuple[int, Labels]],
        refs: np.ndarray,
        ts: np.ndarray,
        vs: np.ndarray,
    ) -> int:
        """Write a commit's series and samples records with one write.

        Returns the sequence number to pass to `wait_durable`. On failure raises
        `WALWriteError` after cutting the partial write off, so the log stays
        readable and the caller can apply nothing.
        """
        parts = []
        if series:
            parts.append(rec.frame(rec.REC_SERIES, rec.encode_series(series)))
        if len(refs):
            parts.append(
                rec.frame(rec.REC_SAMPLES, rec.encode_samples(refs, ts, vs), compress=self.compress)
            )
        return self.write(b"".join(parts), len(parts))

    def write(self, data: bytes, nrecords: int = 1) -> int:
        """Append framed records; see `log_commit` for the failure contract."""
        with self._wlock:
            if self._fd < 0:
                raise WALWriteError(errno.EBADF, f"WAL in {self.dir} is not open for writing")
            start = self._size
            view = memoryview(data)
            try:
                while view:
                    n = os.write(self._fd, view)
                    view = view[n:]
            except OSError as exc:
                self.write_failures += 1
                path = self.dir / _segment_name(self._seg)
                self._undo_partial(start)
                raise WALWriteError(
                    exc.errno,
                    f"WAL write to {path} at offset {start} failed: {exc.strerror or exc}; "
                    "the commit was not applied",
                ) from None
            self._size += len(data)
            self.bytes_written += len(data)
            self.records_written += nrecords
            self._written_seq += 1
            seq = self._written_seq
            if self._size >= self.segment_bytes:
                self._rotate()
            return seq

    def _undo_partial(self, start: int) -> None:
        try:
            os.ftruncate(self._fd, start)
            self._size = start
        except OSError:
            # The partial record stays; replay would stop at it and lose what
            # follows, so continue in a new segment instead.
            log.error("WAL: cannot cut partial write in segment %d; starting a new one", self._seg)
            with contextlib.suppress(OSError):
                self._close_segment()
            with contextlib.suppress(OSError):
                self._open_segment(self._seg + 1)

    def _rotate(self) -> None:
        nxt = self._seg + 1
        self._close_segment()
        self._open_segment(nxt)

    def cut(self) -> int:
        """Finish the current segment and start a new one; returns the finished index."""
        with self._wlock:
            done = self._seg
            self._rotate()
            return done

    def wait_durable(self, seq: int) -> None:
        """With fsync "always", return once record `seq` is on stable storage."""
        if self.fsync == "always" and self._synced_seq < seq:
            self.sync(seq)

    def sync(self, seq: int | None = None) -> None:
        """fdatasync the current segment (group commit: one sync covers all writers)."""
        with self._sync_lock:
            if seq is not None and self._synced_seq >= seq:
                return
            with self._wlock:
                target = self._written_seq
                if self._fd < 0 or self._synced_seq >= target:
                    return
                # A duplicate so a concurrent rotation may close the original.
                fd = os.dup(self._fd)
            t0 = time.perf_counter()
            try:
                os.fdatasync(fd)
            finally:
                os.close(fd)
            self.fsyncs += 1
            self.fsync_seconds += time.perf_counter() - t0
            self._synced_seq = max(self._synced_seq, target)

    def _sync_loop(self) -> None:
        interval = max(self.fsync_interval_ms, 1) / 1000
        while not self._stop.wait(interval):
            try:
                self.sync()
            except OSError as exc:
                log.error("WAL background fsync failed: %s", exc)

    # -- checkpoints ----------------------------------------------------------------

    def checkpoint(
        self,
        upto: int,
        series: list[tuple[int, Labels]],
        samples: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]],
        meta: Mapping[str, object],
    ) -> Path:
        """Write `checkpoint.<upto>` holding `series` and `samples` (the head state
        as of the end of segment `upto`), then delete segments <= upto and older
        checkpoints. Atomic: a crash leaves either the old or the new state."""
        final = self.dir / f"checkpoint.{upto:08d}"
        tmp = self.dir / f"checkpoint.{upto:08d}.tmp"
        with open(tmp, "wb") as f:
            f.write(rec.frame(rec.REC_META, rec.encode_meta(meta)))
            for i in range(0, len(series), 10000):
                f.write(rec.frame(rec.REC_SERIES, rec.encode_series(series[i : i + 10000])))
            step = 1 << 20
            for refs, ts, vs in samples:
                for i in range(0, len(refs), step):
                    body = rec.encode_samples(
                        refs[i : i + step], ts[i : i + step], vs[i : i + step]
                    )
                    f.write(rec.frame(rec.REC_SAMPLES, body, compress=self.compress))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
        _fsync_dir(self.dir)
        for seg in self.segments():
            if seg <= upto and seg != self._seg:
                (self.dir / _segment_name(seg)).unlink(missing_ok=True)
        for cp in self.checkpoints():
            if cp < upto:
                (self.dir / f"checkpoint.{cp:08d}").unlink(missing_ok=True)
        for p in self.dir.glob("checkpoint.*.tmp"):
            if p != tmp:
                p.unlink(missing_ok=True)
        aside = self.dir / "corrupt"
        if aside.exists():
            # Corrupt tails moved aside are evidence for one restart, not forever.
            shutil.rmtree(aside, ignore_errors=True)
        return final

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._sync_lock, self._wlock:
            self._close_segment()
