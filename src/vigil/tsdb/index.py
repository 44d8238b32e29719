"""A block's index: symbols, series label sets, postings and the chunk table.

The index file is a few numpy arrays grouped in zstd-compressed, CRC-checked
sections (layout in docs/format/block.md). Opening reads and checks the whole file
(it is small next to the chunks) and keeps the arrays; `Labels` objects are built
lazily, per series, the first time a query returns that series.

Postings (label name -> value -> ascending series ids) let matchers select series
without scanning label sets: an equality matcher is a dictionary lookup, any other
matcher runs once per distinct value of its label, and matcher results combine
with numpy set operations.

Thread-safety: an `IndexReader` is immutable after opening except for its lazily
filled caches, whose races only ever compute the same value twice.
"""

from __future__ import annotations

import bisect
import itertools
import os
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import zstandard

from vigil.model.labels import Labels
from vigil.model.matchers import Matcher, MatchType
from vigil.tsdb.postings import intersect_sorted, subtract_sorted

INDEX_MAGIC = b"VGLINDEX"
INDEX_VERSION = 2
# Version 1 is version 2 without time bands: one band covering the block.
_READABLE_VERSIONS = (1, 2)

SEC_SYMBOLS = 1
SEC_SERIES = 2
SEC_POSTINGS = 3
SEC_CHUNKS = 4
_SECTIONS = (SEC_SYMBOLS, SEC_SERIES, SEC_POSTINGS, SEC_CHUNKS)

_FILE_HEADER = struct.Struct("<8sII")  # magic, version, section count
_SECTION_ENTRY = struct.Struct("<IQQQI")  # id, offset, stored len, raw len, crc32 of stored

CHUNK_DTYPE = np.dtype(
    [
        ("start", "<u8"),  # position of the chunk's first sample in the block
        ("count", "<u4"),  # samples in the chunk
        ("crc", "<u4"),  # crc32 of the stored payload
        ("offset", "<u8"),  # payload offset in the chunks file
        ("length", "<u8"),  # payload length in bytes
        ("mint", "<i8"),  # smallest timestamp in the chunk (ms)
        ("maxt", "<i8"),  # largest timestamp in the chunk (ms)
    ]
)
_ALLOWED_DTYPES = {"<u4", "<u8", "<i8", "|u1", CHUNK_DTYPE.descr.__repr__()}

_EMPTY_IDS = np.empty(0, dtype=np.int64)
# Below this many candidate series, matchers are checked series by series.
_FEW_CANDIDATES = 64


class IndexFormatError(ValueError):
    """The index bytes are malformed; the message says which part."""


def _pack_arrays(arrays: Sequence[np.ndarray]) -> bytes:
    """Arrays as: u32 count, then per array: dtype tag, u64 length, 8-aligned data."""
    out = bytearray(struct.pack("<I", len(arrays)))
    for a in arrays:
        tag = (repr(a.dtype.descr) if a.dtype.names else a.dtype.str).encode()
        out += struct.pack("<H", len(tag)) + tag + struct.pack("<Q", a.size)
        out += b"\0" * (-len(out) % 8)
        out += np.ascontiguousarray(a).tobytes()
    return bytes(out)


def _unpack_arrays(buf: bytes, what: str) -> list[np.ndarray]:
    try:
        (count,) = struct.unpack_from("<I", buf, 0)
        pos = 4
        arrays = []
        for _ in range(count):
            (tlen,) = struct.unpack_from("<H", buf, pos)
            tag = buf[pos + 2 : pos + 2 + tlen].decode()
            pos += 2 + tlen
            (size,) = struct.unpack_from("<Q", buf, pos)
            pos += 8
            pos += -pos % 8
            if tag not in _ALLOWED_DTYPES:
                raise IndexFormatError(f"{what}: unexpected array type {tag!r}")
            dt = CHUNK_DTYPE if tag.startswith("[") else np.dtype(tag)
            nbytes = size * dt.itemsize
            if pos + nbytes > len(buf):
                raise IndexFormatError(f"{what}: array runs past the section end")
            arrays.append(np.frombuffer(buf, dtype=dt, count=size, offset=pos))
            pos += nbytes
    except (struct.error, UnicodeDecodeError) as exc:
        raise IndexFormatError(f"{what}: truncated or garbled ({exc})") from None
    return arrays


def write_index(
    path: Path,
    labels: Sequence[Labels],
    sample_starts: np.ndarray,
    series_mint: np.ndarray,
    series_maxt: np.ndarray,
    chunks: np.ndarray,
    band_edges: np.ndarray | None = None,
) -> None:
    """Write and fsync the index for series `labels` (sorted, unique).

    The block's samples are ordered by time band, then series, then time:
    `band_edges` (nb+1 ascending ms; band b is [edges[b], edges[b+1])) and
    `sample_starts` with nb*len(labels)+1 entries, where series i's samples in band
    b are positions [sample_starts[b*n+i], sample_starts[b*n+i+1]). Without
    `band_edges` there is one band (the whole block). `series_mint`/`series_maxt`
    are the per-series time bounds, `chunks` a CHUNK_DTYPE array in sample order.
    """
    symset: set[str] = set()
    for ls in labels:
        for k, v in ls:
            symset.add(k)
            symset.add(v)
    symbols = sorted(symset)
    sym_id = {s: i for i, s in enumerate(symbols)}
    encoded = [s.encode() for s in symbols]
    sym_off = np.zeros(len(encoded) + 1, dtype="<u8")
    np.cumsum([len(e) for e in encoded], out=sym_off[1:])
    blob = np.frombuffer(b"".join(encoded), dtype=np.uint8)

    label_start = np.zeros(len(labels) + 1, dtype="<u8")
    np.cumsum([len(ls) for ls in labels], out=label_start[1:])
    pairs = np.fromiter(
        (sym_id[x] for ls in labels for pair in ls for x in pair),
        dtype="<u4",
        count=2 * int(label_start[-1]),
    )
    # Postings: sort (name, value, series) triples once; symbol ids sort like strings.
    names, values = pairs[0::2], pairs[1::2]
    owner = np.repeat(np.arange(len(labels), dtype="<u4"), np.diff(label_start).astype(np.int64))
    order = np.lexsort((owner, values, names))
    p_names, p_values, p_ids = names[order], values[order], owner[order]
    if p_ids.size:
        new = np.ones(p_ids.size, dtype=bool)
        new[1:] = (p_names[1:] != p_names[:-1]) | (p_values[1:] != p_values[:-1])
        heads = np.flatnonzero(new)
    else:
        heads = np.empty(0, dtype=np.int64)
    p_start = np.append(heads, p_ids.size).astype("<u8")

    sections = {
        SEC_SYMBOLS: _pack_arrays([sym_off, blob]),
        SEC_SERIES: _pack_arrays(
            [
                label_start,
                pairs,
                np.asarray(sample_starts, dtype="<u8"),
                np.asarray(series_mint, dtype="<i8"),
                np.asarray(series_maxt, dtype="<i8"),
                *([] if band_edges is None else [np.asarray(band_edges, dtype="<i8")]),
            ]
        ),
        SEC_POSTINGS: _pack_arrays([p_names[heads], p_values[heads], p_start, p_ids]),
        SEC_CHUNKS: _pack_arrays([np.asarray(chunks, dtype=CHUNK_DTYPE)]),
    }
    cctx = zstandard.ZstdCompressor(level=3)
    stored = {sid: cctx.compress(raw) for sid, raw in sections.items()}
    table_size = _FILE_HEADER.size + _SECTION_ENTRY.size * len(stored) + 4
    head = bytearray(_FILE_HEADER.pack(INDEX_MAGIC, INDEX_VERSION, len(stored)))
    offset = table_size
    for sid in _SECTIONS:
        head += _SECTION_ENTRY.pack(
            sid, offset, len(stored[sid]), len(sections[sid]), zlib.crc32(stored[sid])
        )
        offset += len(stored[sid])
    head += struct.pack("<I", zlib.crc32(head))
    with open(path, "wb") as fh:
        fh.write(head)
        for sid in _SECTIONS:
            fh.write(stored[sid])
        fh.flush()
        os.fsync(fh.fileno())


class IndexReader:
    """Read-only view of a block's index; raises IndexFormatError on any damage."""

    def __init__(self, data: bytes) -> None:
        raw = self._sections(data)
        sym_off, blob = _unpack_arrays(raw[SEC_SYMBOLS], "symbols")
        series = _unpack_arrays(raw[SEC_SERIES], "series")
        if len(series) not in (5, 6):
            raise IndexFormatError(f"series: {len(series)} arrays, expected 5 or 6")
        self.label_start, self.pairs, self.sample_starts, self.series_mint, self.series_maxt = (
            series[:5]
        )
        # Time bands (see write_index); None: one band, the whole block.
        self.band_edges: np.ndarray | None = series[5] if len(series) == 6 else None
        self.num_bands = 1 if self.band_edges is None else int(self.band_edges.size) - 1
        self._pnames, self._pvalues, self._pstart, self._pids = _unpack_arrays(
            raw[SEC_POSTINGS], "postings"
        )
        (self.chunks,) = _unpack_arrays(raw[SEC_CHUNKS], "chunks")
        b = blob.tobytes()
        try:
            offs = sym_off.tolist()
            self.symbols = [b[s:e].decode() for s, e in itertools.pairwise(offs)]
        except UnicodeDecodeError:
            raise IndexFormatError("symbols: not valid UTF-8") from None
        self.num_series = int(self.label_start.size) - 1
        self._validate()
        # name -> (first, stop) rows of the postings table; values per name sorted.
        self._by_name: dict[str, tuple[int, int]] = {}
        if self._pnames.size:
            bounds = np.flatnonzero(np.diff(self._pnames.astype(np.int64))) + 1
            firsts = np.concatenate(([0], bounds))
            stops = np.concatenate((bounds, [self._pnames.size]))
            for f, s in zip(firsts.tolist(), stops.tolist(), strict=True):
                self._by_name[self.symbols[int(self._pnames[f])]] = (f, s)
        self._labels_cache: list[Labels | None] = [None] * self.num_series
        self._pair_owner: np.ndarray | None = None

    @staticmethod
    def _sections(data: bytes) -> dict[int, bytes]:
        if len(data) < _FILE_HEADER.size:
            raise IndexFormatError("file shorter than its header")
        magic, version, count = _FILE_HEADER.unpack_from(data)
        if magic != INDEX_MAGIC:
            raise IndexFormatError(f"bad magic {magic!r} (not a Vigil index)")
        if version not in _READABLE_VERSIONS:
            raise IndexFormatError(f"unsupported index version {version}")
        table_end = _FILE_HEADER.size + _SECTION_ENTRY.size * count
        if count > 64 or len(data) < table_end + 4:
            raise IndexFormatError("section table truncated")
        (crc,) = struct.unpack_from("<I", data, table_end)
        if zlib.crc32(data[:table_end]) != crc:
            raise IndexFormatError("section table checksum mismatch")
        out: dict[int, bytes] = {}
        dctx = zstandard.ZstdDecompressor()
        for i in range(count):
            sid, off, length, raw_len, scrc = _SECTION_ENTRY.unpack_from(
                data, _FILE_HEADER.size + i * _SECTION_ENTRY.size
            )
            stored = data[off : off + length]
            if len(stored) != length or zlib.crc32(stored) != scrc:
                raise IndexFormatError(f"section {sid} checksum mismatch")
            try:
                out[sid] = dctx.decompress(stored, max_output_size=raw_len)
            except zstandard.ZstdError as exc:
                raise IndexFormatError(f"section {sid}: {exc}") from None
        missing = [s for s in _SECTIONS if s not in out]
        if missing:
            raise IndexFormatError(f"sections {missing} missing")
        return out

    def _validate(self) -> None:
        n, nsym = self.num_series, len(self.symbols)
        if self.num_bands < 1:
            raise IndexFormatError("series: no time bands")
        if self.band_edges is not None and bool(np.any(np.diff(self.band_edges) <= 0)):
            raise IndexFormatError("series: time band edges not ascending")
        runs = self.num_bands * n + 1
        if n < 0 or self.sample_starts.size != runs or self.series_mint.size != n:
            raise IndexFormatError("series: table sizes disagree")
        if bool(np.any(self.sample_starts[1:] < self.sample_starts[:-1])):
            raise IndexFormatError("series: sample offsets not ascending")
        if self.series_maxt.size != n or int(self.label_start[-1]) * 2 != self.pairs.size:
            raise IndexFormatError("series: label table sizes disagree")
        if self.pairs.size and int(self.pairs.max()) >= nsym:
            raise IndexFormatError("series: symbol reference out of range")
        if self._pnames.size and max(int(self._pnames.max()), int(self._pvalues.max())) >= nsym:
            raise IndexFormatError("postings: symbol reference out of range")
        if self._pids.size and int(self._pids.max()) >= n:
            raise IndexFormatError("postings: series id out of range")
        if self._pstart.size != self._pnames.size + 1 or int(self._pstart[-1]) != self._pids.size:
            raise IndexFormatError("postings: offsets disagree with ids")
        c = self.chunks
        total = int(self.sample_starts[-1]) if n else 0
        if c.size:
            ends = c["start"].astype(np.int64) + c["count"].astype(np.int64)
            if int(c["start"][0]) != 0 or not np.array_equal(c["start"][1:], ends[:-1]):
                raise IndexFormatError("chunks: not contiguous in sample order")
            if int(ends[-1]) != total:
                raise IndexFormatError("chunks: sample count disagrees with series table")
        elif total:
            raise IndexFormatError("chunks: missing for a non-empty block")

    # -- series -----------------------------------------------------------

    def labels(self, sid: int) -> Labels:
        ls = self._labels_cache[sid]
        if ls is None:
            a, b = int(self.label_start[sid]), int(self.label_start[sid + 1])
            p = self.pairs[2 * a : 2 * b].tolist()
            sy = self.symbols
            ls = Labels.from_sorted([(sy[p[i]], sy[p[i + 1]]) for i in range(0, len(p), 2)])
            self._labels_cache[sid] = ls
        return ls

    def _owner(self) -> np.ndarray:
        if self._pair_owner is None:
            counts = np.diff(self.label_start.astype(np.int64)).astype(np.int64)
            self._pair_owner = np.repeat(np.arange(self.num_series), counts)
        return self._pair_owner

    # -- postings ---------------------------------------------------------

    def _postings(self, row: int) -> np.ndarray:
        return self._pids[int(self._pstart[row]) : int(self._pstart[row + 1])]

    def _union_rows(self, first: int, stop: int, take: np.ndarray) -> np.ndarray:
        """Ascending union of the postings of rows first..stop where `take` is set."""
        if not take.any():
            return _EMPTY_IDS
        lo, hi = int(self._pstart[first]), int(self._pstart[stop])
        lengths = np.diff(self._pstart[first : stop + 1].astype(np.int64)).astype(np.int64)
        ids = self._pids[lo:hi][np.repeat(take, lengths)].astype(np.int64)
        if int(take.sum()) > 1:
            # A series has one value per name: the rows' postings are disjoint.
            ids.sort()
        return ids

    def _matcher_ids(self, m: Matcher) -> tuple[bool, np.ndarray]:
        """(positive, ids): the series matching `m`, or if not positive, those excluded."""
        first, stop = self._by_name.get(m.name, (0, 0))
        value_syms = self._pvalues[first:stop]
        if m.type is MatchType.EQUAL and m.value != "":
            # Symbols sort like strings, so the value's row is found by bisection.
            sy = self.symbols
            lo = bisect.bisect_left(self._pvalues, m.value, first, stop, key=lambda s: sy[int(s)])
            if lo < stop and sy[int(self._pvalues[lo])] == m.value:
                return True, self._postings(lo).astype(np.int64)
            return True, _EMPTY_IDS
        hits = np.fromiter(
            (m.matches(self.symbols[int(s)]) for s in value_syms), dtype=bool, count=stop - first
        )
        if m.matches(""):
            # Series without the label match too: exclude those whose value fails.
            return False, self._union_rows(first, stop, ~hits)
        return True, self._union_rows(first, stop, hits)

    def select_ids(self, matchers: Sequence[Matcher]) -> np.ndarray:
        """Ascending int64 ids of series matching every matcher (all series if none).

        Equality matchers go first (one bisection each); once the candidates are
        few, the remaining matchers are checked against each candidate's own label
        value instead of through the postings of every value they accept."""
        pos: np.ndarray | None = None
        negs = []
        ordered = sorted(matchers, key=lambda m: not (m.type is MatchType.EQUAL and m.value != ""))
        for k, m in enumerate(ordered):
            if pos is not None and pos.size <= _FEW_CANDIDATES:
                rest = ordered[k:]
                labels = self.labels
                keep = [
                    sid
                    for sid in pos.tolist()
                    if all(r.matches(labels(sid).get(r.name)) for r in rest)
                ]
                pos = np.array(keep, dtype=np.int64)
                break
            positive, ids = self._matcher_ids(m)
            if positive:
                pos = ids if pos is None else intersect_sorted(pos, ids)
                if pos.size == 0:
                    return _EMPTY_IDS
            else:
                negs.append(ids)
        if pos is None:
            pos = np.arange(self.num_series, dtype=np.int64)
        for ids in negs:
            if ids.size:
                pos = subtract_sorted(pos, ids)
        return pos

    # -- label names and values ------------------------------------------

    def label_names(self, ids: np.ndarray | None = None) -> list[str]:
        """Sorted label names used by series `ids` (all series when None)."""
        if ids is None:
            return [self.symbols[int(self._pnames[f])] for f, _ in self._by_name.values()]
        mask = np.zeros(self.num_series, dtype=bool)
        mask[ids] = True
        used = np.unique(self.pairs[0::2][mask[self._owner()]])
        return [self.symbols[int(s)] for s in used]

    def label_values(self, name: str, ids: np.ndarray | None = None) -> list[str]:
        """Sorted values of label `name` among series `ids` (all series when None)."""
        first, stop = self._by_name.get(name, (0, 0))
        if ids is None:
            return [self.symbols[int(s)] for s in self._pvalues[first:stop]]
        if stop == first:
            return []
        sym = int(self._pnames[first])
        mask = np.zeros(self.num_series, dtype=bool)
        mask[ids] = True
        names = self.pairs[0::2]
        sel = (names == sym) & mask[self._owner()]
        used = np.unique(self.pairs[1::2][sel])
        return [self.symbols[int(s)] for s in used]


def read_index(path: Path) -> IndexReader:
    """Open and check an index file; IndexFormatError names what is damaged."""
    return IndexReader(Path(path).read_bytes())
