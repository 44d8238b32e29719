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
from typing import Any

import numpy as np

from vigil.model.labels import Labels
from vigil.model.matchers import Matcher
from vigil.storage.interface import FlatSeries, SelectHints, SeriesData
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
# Samples are grouped in time bands of this width (ms) inside a block, so a query
# over the last minutes of a long block reads one band, not the whole block.
BAND_MS = 30 * 60 * 1000
MAX_BANDS = 128
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


def band_edges_for(mint: int, maxt: int) -> np.ndarray:
    """Time band edges of a block over [mint, maxt]: `BAND_MS` wide (wider for long
    blocks, so there are at most `MAX_BANDS`), aligned to multiples of the width so
    blocks of the same width band alike."""
    span = maxt - mint + 1
    width = max(BAND_MS, -(-span // MAX_BANDS))
    width = -(-width // BAND_MS) * BAND_MS
    while True:
        first = (mint // width) * width
        last = (maxt // width + 1) * width
        # Aligning the first edge down can add one band: widen until it fits.
        if (last - first) // width <= MAX_BANDS:
            return np.arange(first, last + 1, width, dtype=np.int64)
        width += BAND_MS


class _BandSpool:
    """Chunk payloads of one time band, in a spool file until the block is done."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: Any = None
        self.size = 0
        self.written = 0  # samples already in chunks
        # (start, count, crc, offset, length, mint, maxt), start/offset band-local
        self.chunks: list[tuple[int, int, int, int, int, int, int]] = []
        self._pend_t: list[np.ndarray] = []
        self._pend_v: list[np.ndarray] = []
        self._pending = 0

    def add(self, ts: np.ndarray, vs: np.ndarray) -> None:
        n = int(ts.size)
        if self._pending and self._pending + n > CHUNK_TARGET_SAMPLES:
            self._flush(self._pending)
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
        if self._fh is None:
            self._fh = open(self.path, "wb")  # noqa: SIM115 - closed in finish()/close()
        self._fh.write(payload)
        crc = zlib.crc32(payload)
        row = (self.written, count, crc, self.size, len(payload), int(ct.min()), int(ct.max()))
        self.chunks.append(row)
        self.size += len(payload)
        self.written += count
        rest = self._pending - count
        self._pend_t = [ts[count:]] if rest else []
        self._pend_v = [vs[count:]] if rest else []
        self._pending = rest

    def finish(self) -> None:
        if self._pending:
            self._flush(self._pending)
        self.close()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class _ChunkWriter:
    """Streams series into chunk payloads, band by band; keeps only labels and
    tables in memory (plus one pending chunk per band)."""

    def __init__(self, path: Path, mint: int, maxt: int) -> None:
        self.path = path
        self.mint, self.maxt = mint, maxt
        self.edges = band_edges_for(mint, maxt)
        nb = self.edges.size - 1
        self._bands = [_BandSpool(path.with_name(f"{path.name}.band{b}")) for b in range(nb)]
        self.labels: list[Labels] = []
        self._counts: list[np.ndarray] = []  # per series: samples in each band
        self.smint: list[int] = []
        self.smaxt: list[int] = []
        self.chunks: list[tuple[int, int, int, int, int, int, int]] = []
        self.starts = np.zeros(1, dtype=np.uint64)

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
        self.labels.append(s.labels)
        self.smint.append(int(ts[0]))
        self.smaxt.append(int(ts[-1]))
        cuts = np.searchsorted(ts, self.edges, side="left")
        counts = np.diff(cuts)
        self._counts.append(counts)
        for b in np.flatnonzero(counts).tolist():
            a, z = int(cuts[b]), int(cuts[b + 1])
            self._bands[b].add(ts[a:z], vs[a:z])

    def finish(self) -> None:
        """Write the chunks file: header, then every band's spool in band order."""
        base_pos = base_off = 0
        with open(self.path, "wb") as out:
            out.write(_CHUNKS_HEADER)
            base_off = len(_CHUNKS_HEADER)
            for band in self._bands:
                band.finish()
                for start, count, crc, off, length, cmin, cmax in band.chunks:
                    self.chunks.append(
                        (start + base_pos, count, crc, off + base_off, length, cmin, cmax)
                    )
                if band.size:
                    with open(band.path, "rb") as spool:
                        shutil.copyfileobj(spool, out, 1 << 20)
                    band.path.unlink()
                base_pos += band.written
                base_off += band.size
            out.flush()
            os.fsync(out.fileno())
        nb, n = len(self._bands), len(self.labels)
        counts = (
            np.stack(self._counts, axis=1) if n else np.zeros((nb, 0), dtype=np.int64)
        )  # [band, series]
        self.starts = np.zeros(nb * n + 1, dtype=np.uint64)
        np.cumsum(counts.ravel(), out=self.starts[1:])

    def abort(self) -> None:
        for band in self._bands:
            band.close()
            band.path.unlink(missing_ok=True)


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
            writer.starts,
            np.asarray(writer.smint, dtype=np.int64),
            np.asarray(writer.smaxt, dtype=np.int64),
            chunks,
            writer.edges,
        )
        meta = BlockMeta(
            ulid=ulid,
            mint=mint,
            maxt=maxt,
            num_series=len(writer.labels),
            num_samples=int(writer.starts[-1]),
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
        # Time bands: band b holds the samples in [band_edges[b], band_edges[b+1]).
        edges = index.band_edges
        if edges is None:  # a version-1 block: one band
            edges = np.array([meta.mint, meta.maxt + 1], dtype=np.int64)
        self.band_edges = edges.astype(np.int64)
        self.num_bands = int(self.band_edges.size) - 1
        # Decoded chunks land in one per-block arena when the cache can hold the
        # whole block (see `_chunk`); positions there are the block's own.
        self._arena: tuple[np.ndarray, np.ndarray] | None = None
        self._arena_lock = threading.Lock()
        total = int(index.sample_starts[-1]) if index.num_series else 0
        self._arena_samples = total
        self._use_arena = (
            self._cache is not None
            and 0 < total * ARENA_BYTES_PER_SAMPLE <= self._cache.max_bytes // 2
        )

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
        must hold the block open (a querier).

        With an arena, a decoded chunk is copied into its slot of two block-sized
        arrays and the cache keeps views of that slot, so a read touching many
        chunks finds them already side by side (`arena_of`) instead of
        concatenating them. The cache evicts an arena's chunks together and then
        drops the arena (`_drop_arena`); views handed out keep it alive until
        their readers are done."""
        cache = self._cache
        if cache is None:
            return self.read_chunk(i)
        hit = cache.get(self._cache_owner, i)
        if hit is not None:
            return hit
        ts, vs = self.read_chunk(i)
        if not self._use_arena:
            cache.put(self._cache_owner, i, ts, vs)
            return ts, vs
        with self._arena_lock:
            arena = self._arena
            if arena is None:
                arena = self._arena = _new_arena(self._arena_samples)
        a = self._chunk_start_list[i]
        b = a + ts.size
        # Another reader may be copying the same chunk into the same slot: both
        # write the same bytes.
        arena[0][a:b] = ts
        arena[1][a:b] = vs
        ts, vs = arena[0][a:b], arena[1][a:b]
        cache.put(self._cache_owner, i, ts, vs, on_evict=self._drop_arena)
        return ts, vs

    def _drop_arena(self) -> None:
        with self._arena_lock:
            self._arena = None

    def arena_of(
        self, parts: Sequence[tuple[np.ndarray, np.ndarray]]
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """The arena all of `parts` (from `_chunk`) are views of, as read-only
        block-sized arrays; None when they are not all from one arena."""
        if not parts:
            return None
        ts0, vs0 = parts[0][0].base, parts[0][1].base
        if ts0 is None or vs0 is None or ts0.size != self._arena_samples:
            return None
        for t, v in parts:
            if t.base is not ts0 or v.base is not vs0:
                return None
        ts, vs = ts0.view(), vs0.view()
        ts.flags.writeable = False
        vs.flags.writeable = False
        return ts, vs

    def verify(self) -> None:
        """Read every chunk, raising CorruptBlockError at the first damaged one."""
        for i in range(self.index.chunks.size):
            self.read_chunk(i)

    def iter_series(self) -> Iterator[SeriesData]:
        """All series in label order, decoding chunk by chunk (bounded memory: one
        chunk per time band)."""
        self._acquire()
        try:
            idx = self.index
            n, starts = idx.num_series, idx.sample_starts.astype(np.int64)
            counts = np.diff(starts).reshape(self.num_bands, n)  # [band, series]
            cursors: dict[int, _RunCursor] = {}
            for sid in range(n):
                t_parts, v_parts = [], []
                for b in np.flatnonzero(counts[:, sid]).tolist():
                    cursor = cursors.get(b)
                    if cursor is None:
                        cursor = cursors[b] = _RunCursor(self)
                    lo = int(starts[b * n + sid])
                    t, v = cursor.run(lo, lo + int(counts[b, sid]))
                    t_parts.append(t)
                    v_parts.append(v)
                if len(t_parts) == 1:
                    yield SeriesData(idx.labels(sid), t_parts[0], v_parts[0])
                elif t_parts:
                    ts, vs = np.concatenate(t_parts), np.concatenate(v_parts)
                    yield SeriesData(idx.labels(sid), ts, vs)
        finally:
            self._release()

    def querier(self, mint: int, maxt: int) -> BlockQuerier:
        """A Querier over this block; close it to let the block close."""
        self._acquire()
        return BlockQuerier(self, mint, maxt)


_FEW_RUNS = 48
# Selections of at most this many series are read series by series.
_FEW_SERIES = 16
# Series per batch when joining runs across bands.
_JOIN_BATCH = 1024
# A block's arena (timestamps + values) costs this per sample.
ARENA_BYTES_PER_SAMPLE = 16


def _new_arena(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Two block-sized arrays in anonymous memory that is committed only where
    chunks are written, and without transparent huge pages: a 2 MiB page per
    touched chunk would make a sparsely filled arena cost far more than the cache
    counts for it. Unmapped when the last view of it is gone."""
    arrays = []
    for dtype in (np.int64, np.float64):
        mem = mmap.mmap(-1, max(1, n) * 8)
        if hasattr(mmap, "MADV_NOHUGEPAGE"):
            mem.madvise(mmap.MADV_NOHUGEPAGE)
        arrays.append(np.frombuffer(mem, dtype=dtype, count=n))
    return arrays[0], arrays[1]


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


class _RunCursor:
    """Reads ascending runs of sample positions, decoding each chunk once (fresh
    arrays, no cache): one per time band while a block streams out in series
    order."""

    def __init__(self, block: Block) -> None:
        self._block = block
        self._t, self._v = _EMPTY_T, _EMPTY_V
        self._start = 0  # block position of self._t[0]

    def run(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """Samples at positions [lo, hi) (hi > lo)."""
        block, first_of = self._block, self._block._chunk_start_list
        end = self._start + self._t.size
        if lo < self._start or lo >= end:  # nothing buffered is needed
            c = bisect.bisect_right(first_of, lo) - 1
            self._t, self._v = block.read_chunk(c)
            self._start = first_of[c]
        elif lo > self._start:
            keep = lo - self._start
            self._t, self._v, self._start = self._t[keep:], self._v[keep:], lo
        while self._start + self._t.size < hi:
            # The buffer ends where a chunk starts: append that chunk.
            c = bisect.bisect_right(first_of, self._start + self._t.size) - 1
            t, v = block.read_chunk(c)
            self._t = np.concatenate((self._t, t))
            self._v = np.concatenate((self._v, v))
        a, b = lo - self._start, hi - self._start
        return self._t[a:b], self._v[a:b]


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

    def _bands(self, mint: int, maxt: int) -> range:
        """The time bands overlapping [mint, maxt]."""
        edges, nb = self._block.band_edges, self._block.num_bands
        b0 = max(0, int(np.searchsorted(edges, mint, side="right")) - 1)
        b1 = min(nb - 1, int(np.searchsorted(edges, maxt, side="right")) - 1)
        return range(b0, b1 + 1)

    def _read(self, ids: np.ndarray, mint: int, maxt: int) -> list[SeriesData]:
        got = self._read_flat(ids, mint, maxt)
        return got.series_list() if isinstance(got, FlatSeries) else got

    def _read_flat(self, ids: np.ndarray, mint: int, maxt: int) -> FlatSeries | list[SeriesData]:
        """Decode the chunks holding `ids` (ascending) in [mint, maxt], then cut every
        series' in-range samples out of them with whole-array operations: per series
        only a slice and a `SeriesData` are made in Python, and not even those when
        the samples end up back to back (a `FlatSeries`). Only the time bands
        overlapping the range are read, and the work is proportional to the chunks
        touched, not to the block's size."""
        block, idx = self._block, self._block.index
        if ids.size == 0:
            return []
        if ids.size <= _FEW_SERIES:
            return self._read_few(ids, mint, maxt)
        bands = self._bands(mint, maxt)
        if len(bands) == 0:
            return []
        n, m = idx.num_series, ids.size
        starts = idx.sample_starts
        # One run per (band, series), band-major: ascending block positions.
        run_ids = (np.arange(bands.start, bands.stop, dtype=np.int64)[:, None] * n + ids).ravel()
        lo = starts[run_ids].astype(np.int64)
        hi = starts[run_ids + 1].astype(np.int64)
        nonempty = hi > lo
        if not nonempty.any():
            return []
        cstart = block.chunk_start
        first = np.searchsorted(cstart, lo[nonempty], side="right") - 1
        last = np.searchsorted(cstart, hi[nonempty] - 1, side="right") - 1
        # Every chunk in first..last of some run, once, ascending, kept if it
        # overlaps the range (a chunk's time bounds cover every run in it, so a
        # chunk kept for one run may hold nothing in range for another: the time
        # cut below handles that).
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
        arena = block.arena_of(parts) if wanted.size == touched.size else None
        # Every chosen series lies wholly in the range: no time cut (and every
        # touched chunk overlaps the range, so all of them are wanted).
        whole = bool(((idx.series_mint[ids] >= mint) & (idx.series_maxt[ids] <= maxt)).all())
        if arena is not None:
            # Every chunk of every run is in the arena: the block's own positions
            # index it, nothing is copied.
            ts, vs = arena
            fa, fb = lo, hi
        elif whole and len(bands) > 1 and m > _JOIN_BATCH and wanted.size == touched.size:
            return self._join_from_chunks(ids, lo, hi, wanted, parts, len(bands))
        else:
            fa, fb, ts, vs = self._concatenated(parts, wanted, lo, hi)
        if whole:
            i0, i1 = fa, fb
        else:
            i0, i1 = self._cut(ts, fa, fb, mint, maxt)
        labels = idx.labels
        if len(bands) == 1:
            keep = i1 > i0
            if not keep.any():
                return []
            a0, a1 = i0[keep], i1[keep]
            if bool(np.all(a0[1:] == a1[:-1])):  # back to back: say so
                base, end = int(a0[0]), int(a1[-1])
                offsets = np.append(a0, end) - base
                rows = [labels(sid) for sid in ids[keep].tolist()]
                return FlatSeries(rows, ts[base:end], vs[base:end], offsets)
            return [
                SeriesData(labels(sid), ts[a:b], vs[a:b])
                for sid, a, b in zip(ids.tolist(), i0.tolist(), i1.tolist(), strict=True)
                if b > a
            ]
        return self._join_bands(ids, ts, vs, i0.reshape(len(bands), m), i1.reshape(len(bands), m))

    def _join_bands(
        self, ids: np.ndarray, ts: np.ndarray, vs: np.ndarray, i0: np.ndarray, i1: np.ndarray
    ) -> FlatSeries | list[SeriesData]:
        """Series whose samples are runs [i0[k, j], i1[k, j]) in bands k = 0, 1, ...,
        gathered band after band into two new flat arrays (series-major), a batch
        of series at a time so the index temporaries stay small."""
        labels = self._block.index.labels
        lens = i1 - i0
        per_series = lens.sum(axis=0)
        present = np.flatnonzero(per_series > 0)
        if present.size == 0:
            return []
        lens, starts = lens[:, present], i0[:, present]
        offsets = np.zeros(present.size + 1, dtype=np.int64)
        np.cumsum(per_series[present], out=offsets[1:])
        out_t = np.empty(int(offsets[-1]), dtype=ts.dtype)
        out_v = np.empty(int(offsets[-1]), dtype=vs.dtype)
        for a in range(0, present.size, _JOIN_BATCH):
            b = min(present.size, a + _JOIN_BATCH)
            seg_len = lens[:, a:b].T.ravel()  # series-major
            seg_start = starts[:, a:b].T.ravel()
            total = int(offsets[b] - offsets[a])
            before = np.cumsum(seg_len) - seg_len
            gather = np.repeat(seg_start - before, seg_len)
            gather += np.arange(total, dtype=np.int64)
            np.take(ts, gather, out=out_t[offsets[a] : offsets[b]])
            np.take(vs, gather, out=out_v[offsets[a] : offsets[b]])
        out_t.flags.writeable = False
        out_v.flags.writeable = False
        return FlatSeries([labels(sid) for sid in ids[present].tolist()], out_t, out_v, offsets)

    def _join_from_chunks(
        self,
        ids: np.ndarray,
        lo: np.ndarray,
        hi: np.ndarray,
        chunks: np.ndarray,
        parts: list[tuple[np.ndarray, np.ndarray]],
        num_bands: int,
    ) -> FlatSeries | list[SeriesData]:
        """`_join_bands` for whole runs [lo, hi) (block positions, band-major) when the
        chunks are not side by side in an arena: a batch of series at a time, only
        the chunks holding that batch's runs are put together, so the temporaries
        stay a batch's size instead of the whole selection's (a long range over a
        large block would otherwise copy every sample twice)."""
        m = ids.size
        lo2, hi2 = lo.reshape(num_bands, m), hi.reshape(num_bands, m)
        per_series = (hi2 - lo2).sum(axis=0)
        present = np.flatnonzero(per_series > 0)
        if present.size == 0:
            return []
        offsets = np.zeros(present.size + 1, dtype=np.int64)
        np.cumsum(per_series[present], out=offsets[1:])
        out_t = np.empty(int(offsets[-1]), dtype=np.int64)
        out_v = np.empty(int(offsets[-1]), dtype=np.float64)
        first_of = self._block._chunk_start_list
        for a in range(0, present.size, _JOIN_BATCH):
            b = min(present.size, a + _JOIN_BATCH)
            cols = present[a:b]
            blo, bhi = lo2[:, cols], hi2[:, cols]
            # Within a band, runs ascend with the series: the batch's runs there
            # lie between its first non-empty run's start and its last one's end.
            ranges = []
            for band in range(num_bands):
                some = np.flatnonzero(bhi[band] > blo[band])
                if some.size:
                    p0, p1 = int(blo[band, some[0]]), int(bhi[band, some[-1]])
                    c0 = bisect.bisect_right(first_of, p0) - 1
                    c1 = bisect.bisect_right(first_of, p1 - 1) - 1
                    ranges.append(np.arange(c0, c1 + 1, dtype=np.int64))
            # Chunks in between that hold only series not chosen were never read
            # (not in `chunks`); none of the batch's samples are in them.
            sub = np.unique(np.concatenate(ranges))
            picked = np.searchsorted(chunks, sub)
            inside = picked < chunks.size
            inside[inside] = chunks[picked[inside]] == sub[inside]
            sub, picked = sub[inside], picked[inside]
            fa, fb, ts, vs = self._concatenated(
                [parts[i] for i in picked.tolist()], sub, blo.ravel(), bhi.ravel()
            )
            # Series-major: each series' runs band after band.
            seg_len = (fb - fa).reshape(num_bands, b - a).T.ravel()
            seg_start = fa.reshape(num_bands, b - a).T.ravel()
            total = int(offsets[b] - offsets[a])
            gather = np.repeat(seg_start - (np.cumsum(seg_len) - seg_len), seg_len)
            gather += np.arange(total, dtype=np.int64)
            np.take(ts, gather, out=out_t[offsets[a] : offsets[b]])
            np.take(vs, gather, out=out_v[offsets[a] : offsets[b]])
        out_t.flags.writeable = False
        out_v.flags.writeable = False
        labels = self._block.index.labels
        return FlatSeries([labels(sid) for sid in ids[present].tolist()], out_t, out_v, offsets)

    def _concatenated(
        self,
        parts: list[tuple[np.ndarray, np.ndarray]],
        wanted: np.ndarray,
        lo: np.ndarray,
        hi: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The `wanted` chunks' samples back to back, and every series' run in them."""
        block = self._block
        cstart = block.chunk_start
        ts = np.concatenate([t for t, _ in parts]) if len(parts) > 1 else parts[0][0]
        vs = np.concatenate([v for _, v in parts]) if len(parts) > 1 else parts[0][1]
        # Views of these are handed out (and may be the cache's own arrays).
        ts.flags.writeable = False
        vs.flags.writeable = False
        # Flat position of global sample position p: decoded samples before p. A
        # series' samples in skipped chunks are all out of range, so what is left
        # of it in the flat arrays is still one ascending run.
        before = np.zeros(wanted.size + 1, dtype=np.int64)
        np.cumsum(block.chunk_count[wanted], out=before[1:])

        def flat(p: np.ndarray) -> np.ndarray:
            c = np.searchsorted(cstart, p, side="right") - 1
            w = np.searchsorted(wanted, c)
            hit = wanted[np.minimum(w, wanted.size - 1)] == c
            return before[w] + np.where(hit, p - cstart[c], 0)

        return flat(lo), flat(hi), ts, vs

    def _read_few(self, ids: np.ndarray, mint: int, maxt: int) -> list[SeriesData]:
        """`_read` for a handful of series: one by one in Python, which beats the
        fixed cost of the whole-array path's two dozen numpy calls."""
        block, idx = self._block, self._block.index
        starts, rows, first_of = idx.sample_starts, block._chunk_rows, block._chunk_start_list
        n = idx.num_series
        bands = self._bands(mint, maxt)
        out = []
        for sid in ids.tolist():
            t_parts, v_parts = [], []
            for band in bands:
                lo, hi = int(starts[band * n + sid]), int(starts[band * n + sid + 1])
                if hi <= lo:
                    continue
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

    def select_flat(
        self,
        matchers: Sequence[Matcher],
        mint: int,
        maxt: int,
        hints: SelectHints | None = None,
    ) -> FlatSeries | list[SeriesData]:
        """`select`, as a `FlatSeries` when the samples lie back to back (no
        `SeriesData` made), else as `select` answers."""
        self._check()
        return self._read_flat(self._candidates(matchers, mint, maxt), mint, maxt)

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
