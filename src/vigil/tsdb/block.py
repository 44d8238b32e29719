"""Immutable on-disk blocks: writing, opening, querying.

A block is a directory named by a ULID holding ``meta.json``, ``index`` and
``chunks`` (formats in docs/format/block.md). It covers the inclusive time range
[meta.mint, meta.maxt]; its series are sorted by labels and each series' samples
are contiguous and ascending, so a block is a CSR matrix of samples that numpy
reads in bulk.

Writing is atomic: files go to ``<ulid>.tmp``, are fsynced, and the directory is
renamed into place, so a reader never sees half a block. Opening checks magic,
versions, checksums and cross-references and raises `CorruptBlockError` naming the
file; chunk checksums are checked when a chunk is first read (opening a block
does not read its samples: the chunks file is memory-mapped).

Decoded chunks: queriers go through an optional `ChunkCache` shared by the blocks
of a TSDB (vigil.tsdb.chunk_cache), so repeated queries over the same block do not
decode the same chunks again; a block's entries are dropped when its files are
released. `read_chunk`, `verify` and `iter_series` (compaction, export) always
decode afresh and leave the cache alone.

Thread-safety: a `Block` may be queried from many threads; `close()` waits for
open queriers (the resources are released when the last one closes).
"""

from __future__ import annotations

import bisect
import itertools
import json
import mmap
import os
import shutil
import threading
import time
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vigil.model.labels import Labels
from vigil.model.matchers import Matcher
from vigil.storage.interface import SelectHints, SeriesData
from vigil.tsdb.chunk_cache import ChunkCache
from vigil.tsdb.chunks import ChunkDecodeError, decode_chunk, encode_chunk
from vigil.tsdb.index import CHUNK_DTYPE, IndexFormatError, IndexReader, write_index

META_FILE = "meta.json"
INDEX_FILE = "index"
CHUNKS_FILE = "chunks"
CHUNKS_MAGIC = b"VGLCHNKS"
CHUNKS_VERSION = 1
_CHUNKS_HEADER = CHUNKS_MAGIC + CHUNKS_VERSION.to_bytes(4, "little") + b"\0\0\0\0"
META_VERSION = 1

CHUNK_TARGET_SAMPLES = 4096
"""Samples per chunk: small series share a chunk, long ones are cut into pieces."""

_EMPTY_T = np.empty(0, dtype=np.int64)
_EMPTY_V = np.empty(0, dtype=np.float64)

_block_seq = itertools.count()  # tells apart opened Block instances in a chunk cache


class CorruptBlockError(Exception):
    """A block's files are damaged or not a block; the message names the file."""

    def __init__(self, path: Path, detail: str) -> None:
        super().__init__(f"corrupt block file {path}: {detail}")
        self.path = path
        self.detail = detail


# -- ULIDs -----------------------------------------------------------------

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_ulid_lock = threading.Lock()
_ulid_last = [0, 0]  # ms, random part of the last ULID made in this process


def new_ulid(now_ms: int | None = None) -> str:
    """A 26-character ULID; ULIDs made by this process without `now_ms` sort in
    creation order (same-millisecond ones count up). An explicit `now_ms` gives a
    random ULID for that instant and leaves the ordering state alone."""
    if now_ms is not None:
        value = ((int(now_ms) & ((1 << 48) - 1)) << 80) | int.from_bytes(os.urandom(10), "big")
        return _encode_ulid(value)
    t = int(time.time() * 1000)
    with _ulid_lock:
        if t <= _ulid_last[0]:
            # Same (or a backwards) millisecond: stay monotonic by counting up.
            t, rnd = _ulid_last[0], (_ulid_last[1] + 1) & ((1 << 80) - 1)
        else:
            rnd = int.from_bytes(os.urandom(10), "big")
        _ulid_last[0], _ulid_last[1] = t, rnd
    return _encode_ulid(((t & ((1 << 48) - 1)) << 80) | rnd)


def _encode_ulid(value: int) -> str:
    return "".join(_CROCKFORD[(value >> (5 * (25 - i))) & 31] for i in range(26))


def ulid_time(ulid: str) -> int:
    """The creation time (ms) encoded in a ULID."""
    value = 0
    for ch in ulid.upper():
        value = value * 32 + _CROCKFORD.index(ch)
    return value >> 80


def is_ulid(name: str) -> bool:
    return len(name) == 26 and all(c in _CROCKFORD for c in name.upper())


# -- meta ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BlockMeta:
    """What a block covers. `mint`/`maxt` are inclusive ms bounds of its range."""

    ulid: str
    mint: int
    maxt: int
    num_series: int = 0
    num_samples: int = 0
    num_chunks: int = 0
    size_bytes: int = 0
    level: int = 1
    sources: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, object]:
        return {
            "ulid": self.ulid,
            "minTime": self.mint,
            "maxTime": self.maxt,
            "maxTimeInclusive": True,
            "stats": {
                "numSeries": self.num_series,
                "numSamples": self.num_samples,
                "numChunks": self.num_chunks,
            },
            "compaction": {"level": self.level, "sources": list(self.sources)},
            "version": META_VERSION,
        }

    @classmethod
    def from_json(cls, doc: object, size_bytes: int) -> BlockMeta:
        """Parse meta.json content; raises ValueError saying which field is wrong."""
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        if doc.get("version") != META_VERSION:
            raise ValueError(f"unsupported meta version {doc.get('version')!r}")
        try:
            stats, comp = doc["stats"], doc["compaction"]
            meta = cls(
                ulid=str(doc["ulid"]),
                mint=_int(doc["minTime"], "minTime"),
                maxt=_int(doc["maxTime"], "maxTime"),
                num_series=_int(stats["numSeries"], "stats.numSeries"),
                num_samples=_int(stats["numSamples"], "stats.numSamples"),
                num_chunks=_int(stats["numChunks"], "stats.numChunks"),
                size_bytes=size_bytes,
                level=_int(comp["level"], "compaction.level"),
                sources=tuple(str(s) for s in comp["sources"]),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"missing or malformed field {exc}") from None
        if not is_ulid(meta.ulid):
            raise ValueError(f"ulid {meta.ulid!r} is not a ULID")
        if meta.maxt < meta.mint:
            raise ValueError(f"maxTime {meta.maxt} before minTime {meta.mint}")
        return meta


def _int(v: object, name: str) -> int:
    if not isinstance(v, int) or isinstance(v, bool):
        raise ValueError(f"{name} is not an integer: {v!r}")
    return v


# -- writing ---------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _ChunkWriter:
    """Streams series into chunk payloads; keeps only labels and tables in memory."""

    def __init__(self, path: Path, mint: int, maxt: int) -> None:
        self._fh = open(path, "wb")  # noqa: SIM115 - closed in finish()/abort()
        self._fh.write(_CHUNKS_HEADER)
        self._offset = len(_CHUNKS_HEADER)
        self.mint, self.maxt = mint, maxt
        self.labels: list[Labels] = []
        self.starts: list[int] = [0]
        self.smint: list[int] = []
        self.smaxt: list[int] = []
        self.chunks: list[tuple[int, int, int, int, int, int, int]] = []
        self._pend_t: list[np.ndarray] = []
        self._pend_v: list[np.ndarray] = []
        self._pending = 0
        self._written = 0  # samples already in chunks

    def add(self, s: SeriesData) -> None:
        ts = np.asarray(s.timestamps, dtype=np.int64)
        vs = np.asarray(s.values, dtype=np.float64)
        n = int(ts.size)
        if vs.size != n:
            raise ValueError(f"series {s.labels}: {n} timestamps but {vs.size} values")
        if n == 0:
            return
        if len(s.labels) == 0:
            raise ValueError("a series with no labels cannot be stored")
        if self.labels and not self.labels[-1] < s.labels:
            raise ValueError(
                f"series not sorted by labels: {s.labels} after {self.labels[-1]}"
                if self.labels[-1] != s.labels
                else f"series {s.labels} given twice"
            )
        if n > 1 and not bool(np.all(ts[1:] > ts[:-1])):
            bad = int(np.argmax(ts[1:] <= ts[:-1])) + 1
            raise ValueError(
                f"series {s.labels}: timestamps not strictly ascending at index {bad} "
                f"({int(ts[bad - 1])} then {int(ts[bad])})"
            )
        if int(ts[0]) < self.mint or int(ts[-1]) > self.maxt:
            raise ValueError(
                f"series {s.labels}: samples {int(ts[0])}..{int(ts[-1])} outside the block "
                f"range [{self.mint}, {self.maxt}]"
            )
        if self._pending and self._pending + n > CHUNK_TARGET_SAMPLES:
            self._flush(self._pending)
        self.labels.append(s.labels)
        self.starts.append(self.starts[-1] + n)
        self.smint.append(int(ts[0]))
        self.smaxt.append(int(ts[-1]))
        self._pend_t.append(ts)
        self._pend_v.append(vs)
        self._pending += n
        while self._pending > CHUNK_TARGET_SAMPLES:
            self._flush(CHUNK_TARGET_SAMPLES)

    def _flush(self, count: int) -> None:
        ts = np.concatenate(self._pend_t) if len(self._pend_t) > 1 else self._pend_t[0]
        vs = np.concatenate(self._pend_v) if len(self._pend_v) > 1 else self._pend_v[0]
        ct, cv = ts[:count], vs[:count]
        payload = encode_chunk(ct, cv)
        self._fh.write(payload)
        self.chunks.append(
            (
                self._written,
                count,
                zlib.crc32(payload),
                self._offset,
                len(payload),
                int(ct.min()),
                int(ct.max()),
            )
        )
        self._offset += len(payload)
        self._written += count
        rest = self._pending - count
        self._pend_t = [ts[count:]] if rest else []
        self._pend_v = [vs[count:]] if rest else []
        self._pending = rest

    def finish(self) -> None:
        if self._pending:
            self._flush(self._pending)
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()

    def abort(self) -> None:
        self._fh.close()


def write_block(
    parent_dir: Path,
    series: Iterable[SeriesData],
    mint: int,
    maxt: int,
    *,
    level: int = 1,
    sources: Sequence[str] = (),
    ulid: str | None = None,
) -> Path:
    """Write `series` (sorted by labels, unique) as a new block covering [mint, maxt].

    Streams: memory holds the label sets and one chunk's samples, not the block.
    Empty series are skipped; samples outside [mint, maxt], unsorted series or
    non-ascending timestamps raise ValueError naming the series, and leave nothing
    behind. `sources` lists the level-1 blocks merged into this one (defaults to the
    block itself). Returns ``parent_dir/<ulid>``, visible only once complete.
    """
    if maxt < mint:
        raise ValueError(f"block range [{mint}, {maxt}] is empty")
    parent_dir = Path(parent_dir)
    parent_dir.mkdir(parents=True, exist_ok=True)
    ulid = ulid or new_ulid()
    tmp = parent_dir / f"{ulid}.tmp"
    final = parent_dir / ulid
    tmp.mkdir()
    try:
        writer = _ChunkWriter(tmp / CHUNKS_FILE, mint, maxt)
        try:
            for s in series:
                writer.add(s)
            writer.finish()
        except BaseException:
            writer.abort()
            raise
        chunks = np.array(writer.chunks, dtype=CHUNK_DTYPE)
        write_index(
            tmp / INDEX_FILE,
            writer.labels,
            np.asarray(writer.starts, dtype=np.uint64),
            np.asarray(writer.smint, dtype=np.int64),
            np.asarray(writer.smaxt, dtype=np.int64),
            chunks,
        )
        meta = BlockMeta(
            ulid=ulid,
            mint=mint,
            maxt=maxt,
            num_series=len(writer.labels),
            num_samples=writer.starts[-1],
            num_chunks=len(writer.chunks),
            level=level,
            sources=tuple(sources) or (ulid,),
        )
        with open(tmp / META_FILE, "w") as fh:
            json.dump(meta.to_json(), fh, indent=2)
            fh.flush()
            os.fsync(fh.fileno())
        _fsync_dir(tmp)
        os.rename(tmp, final)
        _fsync_dir(parent_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


# -- reading ---------------------------------------------------------------


class Block:
    """An opened block. Use `Block.open(path)`; query it through `querier()`."""

    def __init__(
        self,
        path: Path,
        meta: BlockMeta,
        index: IndexReader,
        fh: object,
        mm: object,
        cache: ChunkCache | None = None,
    ):
        self.path = path
        self.meta = meta
        self.index = index
        self._fh = fh
        self._mm = mm
        self._cache = cache if cache is not None and cache.enabled else None
        # Never reused: entries of a closed (or reopened) block can never be served.
        self._cache_owner = (meta.ulid, next(_block_seq))
        self._lock = threading.Lock()
        self._readers = 0
        self._closing = False
        self._closed = False
        # Chunk table columns as plain int64 arrays, once: every read uses them.
        c = index.chunks
        self.chunk_start = c["start"].astype(np.int64)
        self.chunk_count = c["count"].astype(np.int64)
        self.chunk_mint = c["mint"].astype(np.int64)
        self.chunk_maxt = c["maxt"].astype(np.int64)
        # ... and as lists, for the per-series path of small selections.
        self._chunk_rows = list(
            zip(
                self.chunk_start.tolist(),
                self.chunk_count.tolist(),
                self.chunk_mint.tolist(),
                self.chunk_maxt.tolist(),
                strict=True,
            )
        )
        self._chunk_start_list = self.chunk_start.tolist()

    @classmethod
    def open(cls, path: Path, *, cache: ChunkCache | None = None) -> Block:
        """Open and check a block directory; CorruptBlockError names the damaged file.
        Queriers keep decoded chunks in `cache` (shared by blocks) when one is given."""
        path = Path(path)
        files = {name: path / name for name in (META_FILE, INDEX_FILE, CHUNKS_FILE)}
        for f in files.values():
            if not f.is_file():
                raise CorruptBlockError(f, "missing")
        size = sum(f.stat().st_size for f in files.values())
        try:
            meta = BlockMeta.from_json(json.loads(files[META_FILE].read_bytes()), size)
        except (ValueError, UnicodeDecodeError) as exc:
            raise CorruptBlockError(files[META_FILE], str(exc)) from None
        try:
            index = IndexReader(files[INDEX_FILE].read_bytes())
        except IndexFormatError as exc:
            raise CorruptBlockError(files[INDEX_FILE], str(exc)) from None
        if index.num_series != meta.num_series or int(index.sample_starts[-1]) != meta.num_samples:
            raise CorruptBlockError(
                files[INDEX_FILE],
                f"holds {index.num_series} series / {int(index.sample_starts[-1])} samples, "
                f"meta.json says {meta.num_series} / {meta.num_samples}",
            )
        fh = open(files[CHUNKS_FILE], "rb")  # noqa: SIM115 - owned by the Block
        try:
            head = fh.read(len(_CHUNKS_HEADER))
            if head[:8] != CHUNKS_MAGIC:
                raise CorruptBlockError(files[CHUNKS_FILE], f"bad magic {head[:8]!r}")
            if head != _CHUNKS_HEADER:
                raise CorruptBlockError(files[CHUNKS_FILE], "unsupported version")
            csize = files[CHUNKS_FILE].stat().st_size
            c = index.chunks
            if c.size and int((c["offset"] + c["length"]).max()) > csize:
                raise CorruptBlockError(files[CHUNKS_FILE], "truncated: chunks run past its end")
            mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if c.size else None
        except BaseException:
            fh.close()
            raise
        return cls(path, meta, index, fh, mm, cache)

    # -- lifetime -------------------------------------------------------

    def _acquire(self) -> None:
        with self._lock:
            if self._closing:
                raise RuntimeError(f"block {self.path} is closed")
            self._readers += 1

    def _release(self) -> None:
        with self._lock:
            self._readers -= 1
            done = self._closing and self._readers == 0
        if done:
            self._close_files()

    def close(self) -> None:
        """Release files now, or when the last open querier closes. Idempotent."""
        with self._lock:
            self._closing = True
            done = self._readers == 0
        if done:
            self._close_files()

    def _close_files(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._cache is not None:
            self._cache.invalidate(self._cache_owner)
        if self._mm is not None:
            self._mm.close()  # type: ignore[attr-defined]
        self._fh.close()  # type: ignore[attr-defined]

    def __enter__(self) -> Block:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- data -----------------------------------------------------------

    def read_chunk(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Decode chunk `i`: fresh (timestamps, values) arrays; checks its checksum."""
        c = self.index.chunks[i]
        off, length = int(c["offset"]), int(c["length"])
        payload = self._mm[off : off + length]  # type: ignore[index]
        where = f"chunk {i} at offset {off}"
        if zlib.crc32(payload) != int(c["crc"]):
            raise CorruptBlockError(self.path / CHUNKS_FILE, f"{where}: checksum mismatch")
        try:
            return decode_chunk(payload, int(c["count"]))
        except ChunkDecodeError as exc:
            raise CorruptBlockError(self.path / CHUNKS_FILE, f"{where}: {exc}") from None

    def _chunk(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Chunk `i` through the cache: read-only arrays, possibly shared; the caller
        must hold the block open (a querier)."""
        cache = self._cache
        if cache is None:
            return self.read_chunk(i)
        hit = cache.get(self._cache_owner, i)
        if hit is not None:
            return hit
        ts, vs = self.read_chunk(i)
        cache.put(self._cache_owner, i, ts, vs)
        return ts, vs

    def verify(self) -> None:
        """Read every chunk, raising CorruptBlockError at the first damaged one."""
        for i in range(self.index.chunks.size):
            self.read_chunk(i)

    def iter_series(self) -> Iterator[SeriesData]:
        """All series in label order, decoding chunk by chunk (bounded memory)."""
        self._acquire()
        try:
            idx = self.index
            starts = idx.sample_starts
            buf_t, buf_v, buf_start, next_chunk = _EMPTY_T, _EMPTY_V, 0, 0
            for sid in range(idx.num_series):
                lo, hi = int(starts[sid]), int(starts[sid + 1])
                while buf_start + buf_t.size < hi:
                    t, v = self.read_chunk(next_chunk)
                    next_chunk += 1
                    keep = lo - buf_start
                    buf_t = np.concatenate((buf_t[keep:], t)) if keep < buf_t.size else t
                    buf_v = np.concatenate((buf_v[keep:], v)) if keep < buf_v.size else v
                    buf_start = int(idx.chunks[next_chunk - 1]["start"]) + t.size - buf_t.size
                a, b = lo - buf_start, hi - buf_start
                yield SeriesData(idx.labels(sid), buf_t[a:b], buf_v[a:b])
        finally:
            self._release()

    def querier(self, mint: int, maxt: int) -> BlockQuerier:
        """A Querier over this block; close it to let the block close."""
        self._acquire()
        return BlockQuerier(self, mint, maxt)


_FEW_RUNS = 48
# Selections of at most this many series are read series by series.
_FEW_SERIES = 16


def segmented_search(
    ts: np.ndarray, lo: np.ndarray, hi: np.ndarray, key: int, side: str = "left"
) -> np.ndarray:
    """`np.searchsorted` of `key` inside each run `ts[lo[i]:hi[i]]` (each ascending),
    for all runs at once: absolute positions, one bisection step per loop."""
    lo = lo.astype(np.int64, copy=True)
    hi = hi.astype(np.int64, copy=True)
    if ts.size == 0:
        return lo
    if lo.size <= _FEW_RUNS:
        # A bisection step costs ~8 numpy calls; a handful of runs is cheaper one
        # by one.
        for i, (a, b) in enumerate(zip(lo.tolist(), hi.tolist(), strict=True)):
            lo[i] = a + int(ts[a:b].searchsorted(key, side=side))  # type: ignore[call-overload]
        return lo
    last = ts.size - 1
    active = np.flatnonzero(lo < hi)
    while active.size:
        a, b = lo[active], hi[active]
        mid = (a + b) >> 1
        probe = ts[np.minimum(mid, last)]
        right = probe < key if side == "left" else probe <= key
        lo[active] = np.where(right, mid + 1, a)
        hi[active] = np.where(right, b, mid)
        active = active[lo[active] < hi[active]]
    return lo


class BlockQuerier:
    """Storage `Querier` over one block. Not thread-safe; one per thread."""

    def __init__(self, block: Block, mint: int, maxt: int) -> None:
        self._block = block
        self.mint, self.maxt = mint, maxt
        self._closed = False

    def _candidates(self, matchers: Sequence[Matcher], mint: int, maxt: int) -> np.ndarray:
        idx = self._block.index
        ids = idx.select_ids(matchers)
        if ids.size:
            ids = ids[(idx.series_mint[ids] <= maxt) & (idx.series_maxt[ids] >= mint)]
        return ids

    def _read(self, ids: np.ndarray, mint: int, maxt: int) -> list[SeriesData]:
        """Decode the chunks holding `ids` (ascending) in [mint, maxt], then cut every
        series' in-range samples out of them with whole-array operations: per series
        only a slice and a `SeriesData` are made in Python. The work is proportional
        to the chunks touched, not to the block's size."""
        block, idx = self._block, self._block.index
        if ids.size == 0:
            return []
        if ids.size <= _FEW_SERIES:
            return self._read_few(ids, mint, maxt)
        cstart, ccount = block.chunk_start, block.chunk_count
        starts = idx.sample_starts
        lo = starts[ids].astype(np.int64)
        hi = starts[ids + 1].astype(np.int64)
        first = np.searchsorted(cstart, lo, side="right") - 1
        last = np.searchsorted(cstart, hi - 1, side="right") - 1
        # Every chunk in first..last of some chosen series, once, ascending, kept if
        # it overlaps the range (a chunk's time bounds cover every series in it, so
        # a chunk kept for one series may hold nothing in range for another: the
        # time cut below handles that).
        span = last - first + 1
        if int(span.max()) == 1:
            touched = np.unique(first)
        else:
            ends = np.cumsum(span)
            step = np.ones(int(ends[-1]), dtype=np.int64)
            step[0] = first[0]
            step[ends[:-1]] = first[1:] - last[:-1]
            touched = np.unique(np.cumsum(step))
        wanted = touched[(block.chunk_maxt[touched] >= mint) & (block.chunk_mint[touched] <= maxt)]
        if wanted.size == 0:
            return []
        parts = [block._chunk(c) for c in wanted.tolist()]
        ts = np.concatenate([t for t, _ in parts]) if len(parts) > 1 else parts[0][0]
        vs = np.concatenate([v for _, v in parts]) if len(parts) > 1 else parts[0][1]
        # Views of these are handed out (and may be the cache's own arrays).
        ts.flags.writeable = False
        vs.flags.writeable = False
        # Flat position of global sample position p: decoded samples before p. A
        # series' samples in skipped chunks are all out of range, so what is left
        # of it in the flat arrays is still one ascending run.
        before = np.zeros(wanted.size + 1, dtype=np.int64)
        np.cumsum(ccount[wanted], out=before[1:])

        def flat(p: np.ndarray) -> np.ndarray:
            c = np.searchsorted(cstart, p, side="right") - 1
            w = np.searchsorted(wanted, c)
            hit = wanted[np.minimum(w, wanted.size - 1)] == c
            return before[w] + np.where(hit, p - cstart[c], 0)

        fa, fb = flat(lo), flat(hi)
        if bool(((idx.series_mint[ids] >= mint) & (idx.series_maxt[ids] <= maxt)).all()):
            i0, i1 = fa, fb  # every chosen series lies wholly in the range
        else:
            i0, i1 = self._cut(ts, fa, fb, mint, maxt)
        labels = idx.labels
        return [
            SeriesData(labels(sid), ts[a:b], vs[a:b])
            for sid, a, b in zip(ids.tolist(), i0.tolist(), i1.tolist(), strict=True)
            if b > a
        ]

    def _read_few(self, ids: np.ndarray, mint: int, maxt: int) -> list[SeriesData]:
        """`_read` for a handful of series: one by one in Python, which beats the
        fixed cost of the whole-array path's two dozen numpy calls."""
        block, idx = self._block, self._block.index
        starts, rows, first_of = idx.sample_starts, block._chunk_rows, block._chunk_start_list
        out = []
        for sid in ids.tolist():
            lo, hi = int(starts[sid]), int(starts[sid + 1])
            if hi <= lo:
                continue
            t_parts, v_parts = [], []
            c = bisect.bisect_right(first_of, lo) - 1
            while c < len(rows) and rows[c][0] < hi:
                start, count, cmin, cmax = rows[c]
                if cmax >= mint and cmin <= maxt:
                    t, v = block._chunk(c)
                    a, b = max(lo, start) - start, min(hi, start + count) - start
                    t, v = t[a:b], v[a:b]
                    i0 = int(t.searchsorted(mint, side="left"))
                    i1 = int(t.searchsorted(maxt, side="right"))
                    if i1 > i0:
                        t_parts.append(t[i0:i1])
                        v_parts.append(v[i0:i1])
                c += 1
            if not t_parts:
                continue
            if len(t_parts) == 1:
                ts, vs = t_parts[0], v_parts[0]
            else:
                ts, vs = np.concatenate(t_parts), np.concatenate(v_parts)
            ts.flags.writeable = False  # as `_read`'s: callers must not write
            vs.flags.writeable = False
            out.append(SeriesData(idx.labels(sid), ts, vs))
        return out

    @staticmethod
    def _cut(
        ts: np.ndarray, fa: np.ndarray, fb: np.ndarray, mint: int, maxt: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per run [fa, fb) of ascending `ts`: the sub-run inside [mint, maxt].

        A binary search in every run at once: O(runs x log(run length)) work, so an
        instant query over a block's 5 minutes does not pay for its 2 hours."""
        i0 = segmented_search(ts, fa, fb, mint, side="left")
        i1 = segmented_search(ts, i0, fb, maxt, side="right")
        return i0, i1

    def select(
        self,
        matchers: Sequence[Matcher],
        mint: int,
        maxt: int,
        hints: SelectHints | None = None,
    ) -> list[SeriesData]:
        """Series matching all `matchers` with samples in [mint, maxt] (inclusive),
        sorted by labels; arrays are read-only views of decoded chunks (possibly
        shared with other queriers through the chunk cache)."""
        self._check()
        return self._read(self._candidates(matchers, mint, maxt), mint, maxt)

    def series(self, matchers: Sequence[Matcher], mint: int, maxt: int) -> list[Labels]:
        """Exact: series straddling the range are decoded to check for samples in it."""
        self._check()
        idx = self._block.index
        ids = self._candidates(matchers, mint, maxt)
        sm, sx = idx.series_mint[ids], idx.series_maxt[ids]
        # A series whose first or last sample is in range certainly has one in range.
        sure = ((sm >= mint) & (sm <= maxt)) | ((sx >= mint) & (sx <= maxt))
        labels = [idx.labels(i) for i in ids[sure].tolist()]
        labels += [d.labels for d in self._read(ids[~sure], mint, maxt)]
        labels.sort()
        return labels

    def label_names(
        self, matchers: Sequence[Matcher] = (), mint: int = 0, maxt: int = 0
    ) -> list[str]:
        """From the index alone; time bounds are ignored (the block overlaps the range)."""
        self._check()
        idx = self._block.index
        return idx.label_names(idx.select_ids(matchers) if matchers else None)

    def label_values(
        self, name: str, matchers: Sequence[Matcher] = (), mint: int = 0, maxt: int = 0
    ) -> list[str]:
        """From the index alone; time bounds are ignored (the block overlaps the range)."""
        self._check()
        idx = self._block.index
        return idx.label_values(name, idx.select_ids(matchers) if matchers else None)

    def _check(self) -> None:
        if self._closed:
            raise RuntimeError("querier used after close()")

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._block._release()
