"""Encoding of WAL records (format: docs/format/wal.md).

A record on disk is a 10-byte header followed by its payload:

    u32 payload length | u32 CRC-32 (zlib) of type, flags and payload | u8 type | u8 flags

All integers are little-endian. Payloads are described per type below. Decoders
raise `RecordError` with a reason for any malformed payload; they never trust a
length they have not checked against the bytes available.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import zstandard

from vigil.model.labels import Labels

HEADER = struct.Struct("<IIBB")
HEADER_SIZE = HEADER.size
MAX_RECORD = 1 << 31

REC_SERIES = 1
REC_SAMPLES = 2
REC_META = 3

FLAG_ZSTD = 1

# Small payloads do not compress well enough to pay for the call.
_COMPRESS_MIN = 4096

_U32 = struct.Struct("<I")
_SERIES_HEAD = struct.Struct("<QH")
_zc = zstandard.ZstdCompressor(level=1)
_zd = zstandard.ZstdDecompressor()


class RecordError(ValueError):
    """A record's bytes do not decode; the message says why."""


@dataclass(slots=True)
class Record:
    type: int
    payload: bytes


def frame(rtype: int, payload: bytes, *, compress: bool = False) -> bytes:
    """Header + (optionally zstd-compressed) payload, ready to write."""
    flags = 0
    if compress and len(payload) >= _COMPRESS_MIN:
        packed = _zc.compress(payload)
        if len(packed) < len(payload):
            payload = packed
            flags |= FLAG_ZSTD
    tf = bytes((rtype, flags))
    crc = zlib.crc32(payload, zlib.crc32(tf))
    return HEADER.pack(len(payload), crc, rtype, flags) + payload


def unframe(buf: bytes | memoryview, off: int) -> tuple[int, bytes, int]:
    """Decode the record at `off`: returns (type, payload, next offset).

    Raises `RecordError` for a short header or body (torn write) or a CRC
    mismatch (corruption); the caller decides what to do with the tail.
    """
    if len(buf) - off < HEADER_SIZE:
        raise RecordError(f"torn record header ({len(buf) - off} of {HEADER_SIZE} bytes)")
    length, crc, rtype, flags = HEADER.unpack_from(buf, off)
    start = off + HEADER_SIZE
    end = start + length
    if end > len(buf):
        raise RecordError(f"torn record: header says {length} bytes, {len(buf) - start} left")
    body = bytes(buf[start:end])
    if zlib.crc32(body, zlib.crc32(bytes((rtype, flags)))) != crc:
        raise RecordError("checksum mismatch")
    if rtype not in (REC_SERIES, REC_SAMPLES, REC_META):
        raise RecordError(f"unknown record type {rtype}")
    if flags & FLAG_ZSTD:
        try:
            body = _zd.decompress(body)
        except zstandard.ZstdError as exc:
            raise RecordError(f"zstd payload does not decompress: {exc}") from None
    return rtype, body, end


def encode_series(series: list[tuple[int, Labels]]) -> bytes:
    """u32 count, then per series: u64 ref, u16 n, n x (u32 len, name, u32 len, value)."""
    parts = [_U32.pack(len(series))]
    for ref, labels in series:
        parts.append(_SERIES_HEAD.pack(ref, len(labels)))
        for name, value in labels:
            nb = name.encode()
            vb = value.encode()
            parts.append(_U32.pack(len(nb)))
            parts.append(nb)
            parts.append(_U32.pack(len(vb)))
            parts.append(vb)
    return b"".join(parts)


def decode_series(body: bytes) -> list[tuple[int, Labels]]:
    try:
        (count,) = _U32.unpack_from(body, 0)
        off = 4
        out: list[tuple[int, Labels]] = []
        for _ in range(count):
            ref, n = _SERIES_HEAD.unpack_from(body, off)
            off += _SERIES_HEAD.size
            pairs = []
            for _ in range(n):
                (ln,) = _U32.unpack_from(body, off)
                name = body[off + 4 : off + 4 + ln].decode()
                off += 4 + ln
                (lv,) = _U32.unpack_from(body, off)
                value = body[off + 4 : off + 4 + lv].decode()
                off += 4 + lv
                pairs.append((name, value))
            if off > len(body):
                raise RecordError("series record: label bytes run past the payload")
            out.append((ref, Labels.from_pairs(pairs)))
    except (struct.error, UnicodeDecodeError) as exc:
        raise RecordError(f"series record does not decode: {exc}") from None
    return out


def encode_samples(refs: np.ndarray, ts: np.ndarray, vs: np.ndarray) -> bytes:
    """u32 n, then n int64 refs, n int64 ms timestamps, n float64 values (raw bits)."""
    return b"".join(
        (
            _U32.pack(len(refs)),
            refs.astype("<i8", copy=False).tobytes(),
            ts.astype("<i8", copy=False).tobytes(),
            vs.astype("<f8", copy=False).tobytes(),
        )
    )


def decode_samples(body: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if len(body) < 4:
        raise RecordError("samples record shorter than its count")
    (n,) = _U32.unpack_from(body, 0)
    if len(body) != 4 + 24 * n:
        raise RecordError(f"samples record: {len(body)} bytes for {n} samples")
    refs = np.frombuffer(body, dtype="<i8", count=n, offset=4).astype(np.int64)
    ts = np.frombuffer(body, dtype="<i8", count=n, offset=4 + 8 * n).astype(np.int64)
    vs = np.frombuffer(body, dtype="<f8", count=n, offset=4 + 16 * n).astype(np.float64)
    return refs, ts, vs


def encode_meta(meta: Mapping[str, Any]) -> bytes:
    return json.dumps(meta, sort_keys=True).encode()


def decode_meta(body: bytes) -> dict[str, Any]:
    try:
        out = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RecordError(f"meta record is not JSON: {exc}") from None
    if not isinstance(out, dict):
        raise RecordError("meta record is not a JSON object")
    return out
