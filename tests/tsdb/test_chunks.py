"""Chunk encoding round trips bitwise and rejects damaged payloads."""

from __future__ import annotations

import numpy as np
import pytest

from vigil.model.samples import STALE_NAN
from vigil.tsdb.chunks import VAL_DECIMAL, VAL_XOR, ChunkDecodeError, decode_chunk, encode_chunk

T0 = 1_700_000_000_000


def _roundtrip(ts: np.ndarray, vs: np.ndarray) -> bytes:
    payload = encode_chunk(ts, vs)
    t2, v2 = decode_chunk(payload, ts.size)
    assert np.array_equal(t2, ts)
    assert np.array_equal(v2.view(np.uint64), np.asarray(vs, dtype=np.float64).view(np.uint64))
    return payload


def _mode(payload: bytes) -> int:
    import zstandard

    return zstandard.ZstdDecompressor().decompress(payload)[1]


@pytest.mark.parametrize("seed", range(5))
def test_random_values_roundtrip_bitwise(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 3000))
    ts = np.cumsum(rng.integers(1, 100_000, n)) + T0
    vs = rng.normal(size=n) * 10.0 ** rng.integers(-300, 300, n)
    specials = [np.nan, STALE_NAN, np.inf, -np.inf, -0.0, 0.0, 5e-324, np.finfo(float).max]
    vs[rng.integers(0, n, 10)] = rng.choice(specials, 10)
    _roundtrip(ts, vs)


def test_nan_payloads_survive() -> None:
    bits = np.array(
        [0x7FF0000000000002, 0x7FF8000000000001, 0xFFF8000000000000, 0x7FF4000000000000],
        dtype=np.uint64,
    )
    vs = bits.view(np.float64)
    ts = np.arange(4, dtype=np.int64)
    _roundtrip(ts, vs)
    # Mostly integers with NaN exceptions: decimal mode must keep the NaN bits too.
    vs2 = np.arange(100, dtype=np.float64)
    vs2[[3, 50, 99]] = bits[:3].view(np.float64)
    payload = _roundtrip(np.arange(100, dtype=np.int64), vs2)
    assert _mode(payload) == VAL_DECIMAL


def test_single_sample_and_irregular_timestamps() -> None:
    _roundtrip(np.array([-5], dtype=np.int64), np.array([STALE_NAN]))
    ts = np.array([-(2**62), -1, 0, 1, 2**62], dtype=np.int64)
    _roundtrip(ts, np.array([1.5, np.nan, -np.inf, 0.1, 3.0]))


def test_decimal_mode_used_for_counters_and_rounded_gauges() -> None:
    rng = np.random.default_rng(1)
    ts = T0 + 15_000 * np.arange(2000) + rng.integers(0, 40, 2000)
    counter = np.cumsum(rng.poisson(60, 2000)).astype(np.float64)
    gauge = np.round(rng.uniform(0, 100, 2000), 2)
    for vs in (counter, gauge):
        payload = _roundtrip(ts, vs)
        assert _mode(payload) == VAL_DECIMAL
    assert len(encode_chunk(ts, counter)) / 2000 < 2.0
    noise = rng.normal(size=2000)
    assert _mode(_roundtrip(ts, noise)) == VAL_XOR


def test_damaged_payloads_raise() -> None:
    ts = np.arange(50, dtype=np.int64)
    payload = encode_chunk(ts, ts.astype(np.float64))
    with pytest.raises(ChunkDecodeError, match="index says"):
        decode_chunk(payload, 49)
    with pytest.raises(ChunkDecodeError, match="zstd"):
        decode_chunk(payload[:-3], 50)
    with pytest.raises(ValueError, match="non-zero"):
        encode_chunk(ts[:0], ts[:0].astype(np.float64))


def test_one_sample_chunks_decode_in_every_value_encoding() -> None:
    # A chunk of one sample once decoded into a read-only buffer view (xor mode).
    for value in (1.5, float("nan"), 3.0, 0.1 + 0.2):
        ts, vs = decode_chunk(encode_chunk(np.array([1000]), np.array([value])), 1)
        assert ts.tolist() == [1000]
        assert np.array_equal(vs.view(np.int64), np.array([value]).view(np.int64))
        assert ts.flags.writeable and vs.flags.writeable
