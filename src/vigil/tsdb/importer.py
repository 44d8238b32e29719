"""Backfill: turning timestamped samples into blocks, bypassing the WAL and head.

`import_exposition` reads an OpenMetrics or Prometheus text file whose samples all
carry timestamps (of any age), and `import_series` takes series directly. Both cut
the samples into block-duration windows aligned to multiples of the duration and
write one block per window, so they work on a data directory with no server
running (a running server picks the blocks up at its next reload of blocks; they
may overlap its own and are merged at query time and by vertical compaction).

Memory is bounded by the largest window, not the input: parsed samples are
spilled per window to raw column files in a staging directory (20 bytes a
sample), and each window is ordered and written on its own. No step does Python
work per sample: keys map to series per run of equal keys, samples are bucketed
into windows with numpy, and a window whose series arrive as contiguous ascending
runs (what OpenMetrics files hold) is ordered by sorting its runs, not its samples. Nothing becomes visible until the whole
input parsed and every block was written: blocks are staged in
``data_dir/.import-<ulid>.tmp/`` and only then renamed into the data directory.
A malformed input therefore leaves no block behind; the final renames are
per-block atomic (a crash during them can land a prefix of the windows, oldest
first, each one complete).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from itertools import compress
from operator import ne
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from vigil.model.labels import Labels
from vigil.storage.interface import SeriesData
from vigil.tsdb.block import new_ulid, write_block

_PROGRESS_MIN_BYTES = 16 << 20
OPENMETRICS_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"


class BackfillError(ValueError):
    """The input cannot be imported; `line` is its 1-based line number when known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message if line is None else f"line {line}: {message}")
        self.line = line


@dataclass
class ImportReport:
    """What an import wrote. Times are inclusive ms; `seconds` is wall time."""

    blocks: list[Path] = field(default_factory=list)
    samples: int = 0
    series: int = 0
    duplicates: int = 0  # samples dropped for repeating a (series, timestamp); last wins
    mint: int | None = None
    maxt: int | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (block paths as their ULID names)."""
        return {
            "blocks": [p.name for p in self.blocks],
            "samples": self.samples,
            "series": self.series,
            "duplicates": self.duplicates,
            "minTime": self.mint,
            "maxTime": self.maxt,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class _Window:
    """What is known of one window's spill without reading it back."""

    mint: int
    maxt: int
    # Every series' samples so far come in runs of strictly ascending times.
    ascending: bool = True
    last_sid: int = -1
    last_t: int = 0


class _Backfill:
    """Spills samples per window as raw column files, then writes each window as one block.

    A window's spill is three files appended to chunk by chunk in input order:
    ``<w>.sid`` (uint32 series ids), ``<w>.t`` (int64 ms) and ``<w>.v`` (float64).
    Files are opened per append, so the number of windows is not bounded by open files.
    """

    def __init__(self, staging: Path, block_duration_ms: int) -> None:
        if block_duration_ms <= 0:
            raise ValueError(f"block duration must be positive, got {block_duration_ms} ms")
        self.staging = staging
        self.duration = block_duration_ms
        self.labels: list[Labels] = []
        self._ids: dict[Labels, int] = {}
        self._windows: dict[int, _Window] = {}
        self.samples = 0

    def series_id(self, labels: Labels) -> int:
        sid = self._ids.get(labels)
        if sid is None:
            if not labels:
                raise BackfillError("a sample has no labels")
            sid = self._ids[labels] = len(self.labels)
            self.labels.append(labels)
        return sid

    def add(self, sids: np.ndarray, ts: np.ndarray, vs: np.ndarray) -> None:
        """Spill samples (any order): uint32 ids from `series_id`, int64 ms, float64."""
        n = ts.size
        if n == 0:
            return
        win = np.floor_divide(ts, self.duration)
        if not bool((win[1:] >= win[:-1]).all()):
            # Series-major input cycles through a few windows per series: group by
            # window, keeping input order within each (a radix sort when few windows).
            lo = int(win.min())
            rel = win - lo
            key = rel.astype(np.uint16) if int(rel.max()) < (1 << 16) else rel
            order = np.argsort(key, kind="stable")
            win, sids, ts, vs = win[order], sids[order], ts[order], vs[order]
        cuts = (np.flatnonzero(win[1:] != win[:-1]) + 1).tolist()
        for a, b in zip([0, *cuts], [*cuts, n], strict=True):
            self._spill(int(win[a]), sids[a:b], ts[a:b], vs[a:b])
        self.samples += int(n)

    @property
    def windows(self) -> int:
        """How many blocks `write_blocks` will write."""
        return len(self._windows)

    def _path(self, window: int, column: str) -> Path:
        return self.staging / f"window-{window}.{column}"

    def _spill(self, window: int, sids: np.ndarray, ts: np.ndarray, vs: np.ndarray) -> None:
        sids = sids.astype("<u4", copy=False)
        w = self._windows.get(window)
        if w is None:
            w = self._windows[window] = _Window(int(ts.min()), int(ts.max()))
        else:
            w.mint, w.maxt = min(w.mint, int(ts.min())), max(w.maxt, int(ts.max()))
        if w.ascending:
            first = int(sids[0])
            w.ascending = (first != w.last_sid or int(ts[0]) > w.last_t) and bool(
                ((ts[1:] > ts[:-1]) | (sids[1:] != sids[:-1])).all()
            )
            w.last_sid, w.last_t = int(sids[-1]), int(ts[-1])
        for column, arr, dtype in (("sid", sids, "<u4"), ("t", ts, "<i8"), ("v", vs, "<f8")):
            with self._path(window, column).open("ab") as fh:
                fh.write(np.ascontiguousarray(arr, dtype=dtype).data)

    def _load(self, window: int, column: str, dtype: str) -> np.ndarray:
        return np.fromfile(self._path(window, column), dtype=dtype)

    def write_blocks(
        self, report: ImportReport, on_window: Callable[[], None] | None = None
    ) -> list[Path]:
        """Write one staged block per window, oldest first; returns their paths."""
        rank = np.empty(len(self.labels), dtype=np.int64)
        order = sorted(range(len(self.labels)), key=self.labels.__getitem__)
        rank[order] = np.arange(len(order))
        by_rank = np.asarray(order, dtype=np.int64)
        paths = []
        seen = np.zeros(len(self.labels), dtype=bool)
        for window, w in sorted(self._windows.items()):
            sids = self._load(window, "sid", "<u4")
            runs = _ordered_runs(rank, sids) if w.ascending else None
            tf: np.ndarray | BinaryIO
            vf: np.ndarray | BinaryIO
            with ExitStack() as files:
                if runs is not None:
                    # Each series is one ascending run: read the runs in label order
                    # straight from the spill, never holding the window in memory.
                    del sids
                    ranks, starts, stops = runs
                    tf = files.enter_context(self._path(window, "t").open("rb", buffering=0))
                    vf = files.enter_context(self._path(window, "v").open("rb", buffering=0))
                    mint, maxt = w.mint, w.maxt
                else:
                    ts = self._load(window, "t", "<i8")
                    vs = self._load(window, "v", "<f8")
                    ranks, starts, stops, ts, vs, dups = _sort_window(rank, sids, ts, vs)
                    del sids
                    report.duplicates += dups
                    mint, maxt = int(ts.min()), int(ts.max())
                    tf, vf = ts, vs
                ids = by_rank[ranks]
                seen[ids] = True
                labels = [self.labels[i] for i in ids.tolist()]
                series = _runs(labels, starts.tolist(), stops.tolist(), tf, vf)
                paths.append(write_block(self.staging, series, mint, maxt))
            for column in ("sid", "t", "v"):
                self._path(window, column).unlink()
            report.samples += int(stops.sum() - starts.sum())
            report.mint = mint if report.mint is None else min(report.mint, mint)
            report.maxt = maxt if report.maxt is None else max(report.maxt, maxt)
            if on_window is not None:
                on_window()
        report.series = int(np.count_nonzero(seen))
        return paths

    def close(self) -> None:
        """Nothing is held open between appends; kept for the callers' cleanup stacks."""


def _ordered_runs(
    rank: np.ndarray, sids: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The runs of equal ids in `sids` as (label rank, start, stop), in label order;
    None when some series has more than one run (its samples need a sort)."""
    n = sids.size
    starts = np.concatenate(([0], np.flatnonzero(sids[1:] != sids[:-1]) + 1))
    stops = np.concatenate((starts[1:], [n]))
    run_ranks = rank[sids[starts]]
    by = np.argsort(run_ranks, kind="stable")
    r = run_ranks[by]
    if not bool((r[1:] != r[:-1]).all()):
        return None
    return r, starts[by], stops[by]


def _sort_window(
    rank: np.ndarray, sids: np.ndarray, ts: np.ndarray, vs: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Order samples by (series labels, time), the last of equal ones winning.

    Returns (rank, start, stop) per series into the returned (ts, vs), and how many
    duplicates were dropped.
    """
    key = rank[sids]
    # lexsort is stable, so among equal (series, time) the last read wins.
    idx = np.lexsort((ts, key))
    key, ts, vs = key[idx], ts[idx], vs[idx]
    del idx
    n = ts.size
    last = np.ones(n, dtype=bool)
    last[:-1] = (key[1:] != key[:-1]) | (ts[1:] != ts[:-1])
    kept = int(np.count_nonzero(last))
    if kept < n:
        key, ts, vs = key[last], ts[last], vs[last]
    del last
    bounds = np.flatnonzero(key[1:] != key[:-1]) + 1
    starts = np.concatenate(([0], bounds))
    stops = np.concatenate((bounds, [key.size]))
    return key[starts], starts, stops, ts, vs, n - kept


def _runs(
    labels: list[Labels],
    starts: list[int],
    stops: list[int],
    ts: np.ndarray | BinaryIO,
    vs: np.ndarray | BinaryIO,
) -> Iterator[SeriesData]:
    """Series from sample ranges of arrays, or of raw spill files read run by run."""
    for ls, a, b in zip(labels, starts, stops, strict=True):
        if isinstance(ts, np.ndarray) and isinstance(vs, np.ndarray):
            yield SeriesData(ls, ts[a:b], vs[a:b])
        else:
            yield SeriesData(ls, _read(ts, a, b, "<i8"), _read(vs, a, b, "<f8"))  # type: ignore[arg-type]


def _read(fh: BinaryIO, a: int, b: int, dtype: str) -> np.ndarray:
    out = np.empty(b - a, dtype=dtype)
    fh.seek(a * out.itemsize)
    if fh.readinto(out.data) != out.nbytes:  # type: ignore[attr-defined]
        raise OSError(f"spill file {fh.name!r} ends early")
    return out


def _land(staged: list[Path], data_dir: Path, report: ImportReport) -> None:
    for p in staged:
        dest = data_dir / p.name
        p.rename(dest)
        report.blocks.append(dest)


def import_series(
    series: Iterable[SeriesData], data_dir: Path, *, block_duration_ms: int = 7_200_000
) -> ImportReport:
    """Write `series` (any order; the same labels may repeat, last sample wins on
    equal timestamps) as blocks in `data_dir`, one per aligned window."""
    started = time.monotonic()
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    staging = data_dir / f".import-{new_ulid()}.tmp"
    staging.mkdir()
    report = ImportReport()
    bf = _Backfill(staging, block_duration_ms)
    try:
        for s in series:
            ts = np.asarray(s.timestamps, dtype=np.int64)
            vs = np.asarray(s.values, dtype=np.float64)
            if ts.size != vs.size:
                raise BackfillError(f"series {s.labels}: {ts.size} timestamps, {vs.size} values")
            bf.add(np.full(ts.size, bf.series_id(s.labels), dtype=np.uint32), ts, vs)
        _land(bf.write_blocks(report), data_dir, report)
    finally:
        bf.close()
        shutil.rmtree(staging, ignore_errors=True)
    report.seconds = time.monotonic() - started
    return report


class _CountingReader:
    """Wraps a binary stream and reports bytes read (for the progress bar)."""

    def __init__(self, raw: BinaryIO, advance: Callable[[int], None]) -> None:
        self._raw = raw
        self._advance = advance

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self._advance(len(data))
        return data

    def readinto(self, buf: Any) -> int:
        got = self._raw.readinto(buf)  # type: ignore[attr-defined]
        self._advance(got or 0)
        return got or 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


def _sniff_openmetrics(fh: BinaryIO) -> bool:
    """True when a seekable stream ends with OpenMetrics' mandatory ``# EOF``."""
    try:
        pos = fh.tell()
        fh.seek(0, 2)
        end = fh.tell()
        fh.seek(max(pos, end - 64))
        tail = fh.read()
        fh.seek(pos)
    except (OSError, ValueError):
        return False
    return tail.rstrip(b"\r\n").endswith(b"# EOF")


def _stream_size(fh: BinaryIO) -> int | None:
    try:
        pos = fh.tell()
        end = fh.seek(0, 2)
        fh.seek(pos)
        return int(end - pos)
    except (OSError, ValueError):
        return None


def import_exposition(
    source: BinaryIO | Path,
    data_dir: Path,
    *,
    content_type: str | None = None,
    block_duration_ms: int = 7_200_000,
    progress: bool = False,
) -> ImportReport:
    """Import a text exposition (OpenMetrics or Prometheus) with timestamps into blocks.

    Every sample must carry a timestamp; one without raises BackfillError naming it
    and nothing is written. Parse errors are re-raised as BackfillError with the
    line. `content_type` picks the parser; when None, a seekable input ending in
    ``# EOF`` is read as OpenMetrics, anything else as Prometheus text. With
    `progress`, a rich progress bar goes to stderr for inputs over 16 MiB.
    """
    from vigil.scrape import exposition  # late: the scrape package is optional here

    started = time.monotonic()
    data_dir = Path(data_dir)
    with ExitStack() as stack:
        fh: BinaryIO = (
            stack.enter_context(open(source, "rb")) if isinstance(source, (str, Path)) else source
        )
        if content_type is None and _sniff_openmetrics(fh):
            content_type = OPENMETRICS_TYPE
        size = _stream_size(fh)
        bar = None
        if progress and size is not None and size >= _PROGRESS_MIN_BYTES:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            bar = stack.enter_context(
                Progress(
                    TextColumn("{task.description}"),
                    BarColumn(),
                    TextColumn("{task.completed:,.0f}/{task.total:,.0f} {task.fields[unit]}"),
                    TimeRemainingColumn(),
                    console=Console(stderr=True),
                )
            )
            task = bar.add_task("parsing", total=size, unit="bytes")
            fh = _CountingReader(fh, lambda n: bar.advance(task, n))  # type: ignore[assignment]

        data_dir.mkdir(parents=True, exist_ok=True)
        staging = data_dir / f".import-{new_ulid()}.tmp"
        staging.mkdir()
        stack.callback(shutil.rmtree, staging, True)
        bf = _Backfill(staging, block_duration_ms)
        stack.callback(bf.close)
        report = ImportReport()
        seen_keys: dict[str, int] = {}
        ordinal = 0
        try:
            for exp in exposition.iter_parse(fh, content_type):
                ts = np.asarray(exp.timestamps, dtype=np.int64)
                missing = np.flatnonzero(ts == exposition.NO_TIMESTAMP)
                if missing.size:
                    i = int(missing[0])
                    raise BackfillError(
                        f"sample {ordinal + i + 1} ({exp.keys[i]}) has no timestamp; "
                        "a backfill needs a timestamp on every sample",
                        _line_of(exp, i),
                    )
                sids = _series_ids(exp.keys, seen_keys, bf, exposition.labels_of)
                bf.add(sids, ts, np.asarray(exp.values, dtype=np.float64))
                ordinal += ts.size
        except exposition.ExpositionError as exc:
            raise BackfillError(exc.message, exc.line) from None
        if bar is not None:
            wtask = bar.add_task("writing", total=bf.windows, unit="blocks")
            staged = bf.write_blocks(report, lambda: bar.advance(wtask, 1))
        else:
            staged = bf.write_blocks(report)
        _land(staged, data_dir, report)
    report.seconds = time.monotonic() - started
    return report


def _series_ids(
    keys: list[str],
    seen: dict[str, int],
    bf: _Backfill,
    labels_of: Callable[[str], Labels],
) -> np.ndarray:
    """uint32 series ids for `keys`, looking up only the first key of each run of
    equal keys (the parsers emit a series' consecutive samples as such a run)."""
    m = len(keys)
    if m == 0:
        return np.empty(0, dtype=np.uint32)
    starts = _run_starts(keys)
    run_keys = [keys[a] for a in starts]
    ids = list(map(seen.get, run_keys))
    for j, sid in enumerate(ids):
        if sid is None:
            key = run_keys[j]
            sid = seen.get(key)
            if sid is None:
                sid = seen[key] = bf.series_id(labels_of(key))
            ids[j] = sid
    if len(starts) == m:
        return np.array(ids, dtype=np.uint32)
    bounds = np.array([*starts, m], dtype=np.int64)
    return np.repeat(np.array(ids, dtype=np.uint32), bounds[1:] - bounds[:-1])


def _run_starts(keys: list[str]) -> list[int]:
    """Where each run of equal neighbours in `keys` starts (`keys` non-empty).

    Long runs (a series' consecutive samples) are found by galloping to their end
    and checked whole with one `list.count`; once runs turn out short (time-major
    input, one sample per series in a row) it compares neighbours instead.
    """
    m = len(keys)
    starts: list[int] = []
    a = 0
    while a < m:
        if len(starts) * 64 > a + 1024:
            break
        k = keys[a]
        lo, step = a, 1
        while lo + step < m and keys[lo + step] == k:
            lo += step
            step *= 2
        hi = min(lo + step, m)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if keys[mid] == k:
                lo = mid
            else:
                hi = mid
        if keys[a : lo + 1].count(k) != lo + 1 - a:
            break  # the key came back after others: not one run
        starts.append(a)
        a = lo + 1
    else:
        return starts
    starts.append(a)
    starts.extend(compress(range(a + 1, m), map(ne, keys[a + 1 :], keys[a:-1])))
    return starts


def _line_of(exp: Any, i: int) -> int | None:
    """The line of sample `i` when the parser records sample lines (optional)."""
    lines = getattr(exp, "lines", None)
    if lines is None:
        return None
    try:
        return int(lines[i])
    except (IndexError, TypeError, ValueError):
        return None
