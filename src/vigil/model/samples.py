"""Sample values and the staleness marker.

Timestamps everywhere in Vigil are int milliseconds since the Unix epoch. A staleness
marker is a NaN with a specific bit pattern (the one Prometheus writes), so it
survives storage and is told apart from an ordinary NaN sample by its bits.
"""

from __future__ import annotations

import struct

import numpy as np

STALE_NAN_BITS = 0x7FF0000000000002
STALE_NAN: float = struct.unpack("<d", struct.pack("<Q", STALE_NAN_BITS))[0]


def is_stale(v: float) -> bool:
    """True when `v` is exactly the staleness marker (not any NaN)."""
    return v != v and struct.pack("<d", v) == _STALE_BYTES


_STALE_BYTES = struct.pack("<Q", STALE_NAN_BITS)


def stale_mask(values: np.ndarray) -> np.ndarray:
    """Boolean mask of staleness markers in a float64 array."""
    return values.view(np.uint64) == np.uint64(STALE_NAN_BITS)
