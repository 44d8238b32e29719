"""Sample encoding for blocks: many samples per chunk, encoded and decoded with numpy.

A chunk is a run of consecutive samples of the block's global sample arrays (series
sorted by labels, each series' samples contiguous and ascending in time), so one
chunk may hold the tail of one series and the heads of the next ones, or one slice
of a long series. Encoding works on whole arrays, never sample by sample:

- timestamps: deltas minus the chunk's median delta (the scrape interval), first
  entry absolute, zigzagged and byte-shuffled; scrape jitter then costs about
  log2(jitter) bits per sample and a perfectly regular series almost nothing;
- values, "decimal" mode: when most values are exactly ``i / 10**k`` for integers
  ``i`` (counters, histogram buckets, rounded gauges), the integers are stored
  delta-encoded, zigzagged and byte-shuffled; values that do not round-trip
  bitwise (NaN, the staleness marker, +-Inf, -0.0, ...) are stored verbatim as
  exceptions;
- values, "xor" mode otherwise: the uint64 bit patterns XORed with the previous
  one, byte-shuffled.

The raw payload is then zstd-compressed. Every NaN payload round-trips bitwise
because values are handled as uint64 wherever bits could be lost. The byte layout
is documented in docs/format/block.md.

Thread-safety: the functions are reentrant; zstd contexts are per thread.
"""

from __future__ import annotations

import struct
import threading

import numpy as np
import zstandard

TS_DELTA_STEP = 1
VAL_XOR = 0
VAL_DECIMAL = 1

MAX_DECIMAL_EXP = 9
# Above this share of exceptions the decimal mode stops paying off.
_MAX_EXCEPTION_SHARE = 1 / 16
_TWO53 = float(2**53)
_HEADER = struct.Struct("<BBBBIIq")  # ts enc, val enc, exponent, 0, n, n_exc, step
ZSTD_LEVEL = 1

_U64 = np.dtype("<u8")
_I64 = np.dtype("<i8")
_F64 = np.dtype("<f8")


class ChunkDecodeError(ValueError):
    """A chunk's bytes do not decode; the message says what is wrong."""


_tls = threading.local()


def _cctx() -> zstandard.ZstdCompressor:
    c = getattr(_tls, "cctx", None)
    if c is None:
        c = _tls.cctx = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_content_size=True)
    return c


def _dctx() -> zstandard.ZstdDecompressor:
    d = getattr(_tls, "dctx", None)
    if d is None:
        d = _tls.dctx = zstandard.ZstdDecompressor()
    return d


def _zigzag(x: np.ndarray) -> np.ndarray:
    """int64 -> uint64 with small magnitudes (either sign) mapped to small numbers."""
    return ((x << 1) ^ (x >> 63)).view(_U64)


def _unzigzag(u: np.ndarray) -> np.ndarray:
    return ((u >> np.uint64(1)) ^ (np.uint64(0) - (u & np.uint64(1)))).view(_I64)


def _shuffle(u: np.ndarray) -> bytes:
    """Byte planes: all first bytes, then all second bytes, ... (zstd loves the zero planes)."""
    return u.view(np.uint8).reshape(-1, 8).T.tobytes()


def _unshuffle(buf: bytes | memoryview, n: int) -> np.ndarray:
    planes = np.frombuffer(buf, dtype=np.uint8, count=8 * n).reshape(8, n)
    # Always a fresh, writable array: for n == 1 the transpose is contiguous
    # already and ascontiguousarray would return the read-only buffer view.
    return planes.T.copy(order="C").view(_U64).reshape(n)


def _delta_step(ts: np.ndarray) -> tuple[np.ndarray, int]:
    """Deltas (first entry absolute) minus the median delta, and that median."""
    d = np.diff(ts, prepend=np.int64(0))
    step = int(np.median(d[1:])) if d.size > 1 else 0
    d[1:] -= step
    return d, step


def _pick_exponent(vs: np.ndarray) -> int | None:
    """Smallest k whose scaling makes a probe of finite values exact integers, or None."""
    finite = vs[np.isfinite(vs)]
    if finite.size == 0:
        return 0
    probe = finite[:: max(1, finite.size // 16)][:16]
    pbits = probe.view(_U64)
    for k in range(MAX_DECIMAL_EXP + 1):
        scale = 10.0**k
        ints = np.rint(probe * scale)
        if np.any(np.abs(ints) >= _TWO53):
            return None
        if np.array_equal((ints / scale).view(_U64), pbits):
            return k
    return None


def _decimal(vs: np.ndarray, bits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(integers with exceptions filled, exception positions) or None if not worth it."""
    scale = 10.0**k
    with np.errstate(invalid="ignore", over="ignore"):
        ints_f = np.rint(vs * scale)
        ok = np.abs(ints_f) < _TWO53  # False for NaN and +-Inf
    ints = np.where(ok, ints_f, 0.0).astype(_I64)
    exact = ok & ((ints.astype(_F64) / scale).view(_U64) == bits)
    exc = np.flatnonzero(~exact)
    if exc.size > max(2, int(vs.size * _MAX_EXCEPTION_SHARE)):
        return None
    if exc.size:
        # Repeat the previous integer at an exception so its delta costs nothing.
        idx = np.where(exact, np.arange(vs.size), 0)
        np.maximum.accumulate(idx, out=idx)
        ints = ints[idx]
    return ints, exc.astype("<u4")


def encode_chunk(ts: np.ndarray, vs: np.ndarray) -> bytes:
    """Encode n >= 1 samples (int64 ms, float64) into a compressed chunk payload.

    Timestamps need not be ascending across series boundaries inside the chunk
    (delta-of-delta handles any int64 sequence); values are kept bitwise.
    """
    ts = np.ascontiguousarray(ts, dtype=_I64)
    vs = np.ascontiguousarray(vs, dtype=_F64)
    n = int(ts.size)
    if n == 0 or vs.size != n:
        raise ValueError(f"encode_chunk needs equal, non-zero lengths (got {n} and {vs.size})")
    bits = vs.view(_U64)
    deltas, step = _delta_step(ts)
    parts = [b"", _shuffle(_zigzag(deltas))]
    mode, k, exc = VAL_XOR, 0, np.empty(0, dtype="<u4")
    exp = _pick_exponent(vs)
    dec = _decimal(vs, bits, exp) if exp is not None else None
    if dec is not None:
        ints, exc = dec
        mode, k = VAL_DECIMAL, int(exp or 0)
        parts.append(_shuffle(_zigzag(np.diff(ints, prepend=np.int64(0)))))
        parts.append(exc.tobytes())
        parts.append(bits[exc].tobytes())
    else:
        x = bits.copy()
        x[1:] ^= bits[:-1]
        parts.append(_shuffle(x))
    parts[0] = _HEADER.pack(TS_DELTA_STEP, mode, k, 0, n, int(exc.size), step)
    return _cctx().compress(b"".join(parts))


def decode_chunk(payload: bytes | memoryview, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Decode a payload written by `encode_chunk` holding `n` samples.

    Returns fresh (writable, caller-owned) int64 timestamps and float64 values.
    Raises ChunkDecodeError when the payload is malformed or holds another count.
    """
    try:
        raw = _dctx().decompress(payload)
    except zstandard.ZstdError as exc:
        raise ChunkDecodeError(f"zstd: {exc}") from None
    if len(raw) < _HEADER.size:
        raise ChunkDecodeError("payload shorter than its header")
    tenc, venc, k, _, cnt, n_exc, step = _HEADER.unpack_from(raw)
    if cnt != n:
        raise ChunkDecodeError(f"chunk holds {cnt} samples, index says {n}")
    if tenc != TS_DELTA_STEP or venc not in (VAL_XOR, VAL_DECIMAL) or k > MAX_DECIMAL_EXP:
        raise ChunkDecodeError(f"unknown encoding (ts={tenc}, values={venc}, exponent={k})")
    want = _HEADER.size + 16 * n + (12 * n_exc if venc == VAL_DECIMAL else 0)
    if len(raw) != want:
        raise ChunkDecodeError(f"payload is {len(raw)} bytes, expected {want}")
    mv = memoryview(raw)
    off = _HEADER.size
    d = _unzigzag(_unshuffle(mv[off : off + 8 * n], n))
    d[1:] += step
    ts = np.cumsum(d)
    off += 8 * n
    u = _unshuffle(mv[off : off + 8 * n], n)
    off += 8 * n
    if venc == VAL_XOR:
        np.bitwise_xor.accumulate(u, out=u)
        return ts, u.view(_F64)
    ints = np.cumsum(_unzigzag(u))
    vs = ints.astype(_F64)
    if k:
        vs /= 10.0**k
    if n_exc:
        pos = np.frombuffer(mv[off : off + 4 * n_exc], dtype="<u4")
        if pos.size and int(pos.max()) >= n:
            raise ChunkDecodeError("exception position out of range")
        ebits = np.frombuffer(mv[off + 4 * n_exc : off + 12 * n_exc], dtype=_U64)
        vs.view(_U64)[pos] = ebits
    return ts, vs
