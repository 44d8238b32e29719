"""A vectorised reader for remote-write 1.0 `WriteRequest` bytes, for the usual encoding.

`scan` finds, for every series of a request, the byte range of its label fields
(the receiver's cache key) and decodes every sample into numpy arrays, without a
Python loop over series or samples: protobuf splits the request into its series
in C, then all series are walked field by field in lockstep with numpy (one
iteration per field, not per series).

It accepts only what it can decode exactly, and returns None for anything else:
the caller then decodes with protobuf, which gives the same result for a valid
request and the error for an invalid one. Accepted, per series: label fields
(tag 1) first, then samples (tag 2), exemplars (3) and histograms (4, both
skipped, as the protobuf path skips them), each at most 2**14 - 1 bytes long;
each sample encoded as protobuf encoders write it: ``value`` (field 1, omitted
when 0.0) then ``timestamp`` (field 2, omitted when 0) as a non-negative varint
of at most 9 bytes. The content of label fields is not checked here: the caller
parses and validates the labels of every key it has not validated before.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from google.protobuf.message import DecodeError

from .prompb import SplitWriteRequest

_LABEL, _SAMPLE, _EXEMPLAR, _HISTOGRAM = 0x0A, 0x12, 0x1A, 0x22
_PAD = bytes(16)  # reads past a field's end land here instead of out of bounds
_SHIFTS = (7 * np.arange(10, dtype=np.uint64)).astype(np.uint64)
_J10 = np.arange(10, dtype=np.int64)
_J8 = np.arange(8, dtype=np.int64)


@dataclass(slots=True)
class Scan:
    """One request's layout. `payload[key_start[i]:key_end[i]]` are series i's label
    fields; sample j belongs to series `sample_series[j]` (samples in series order,
    then in request order within a series)."""

    key_start: np.ndarray
    key_end: np.ndarray
    sample_series: np.ndarray
    timestamps: np.ndarray
    values: np.ndarray

    def keys(self, payload: bytes) -> list[bytes]:
        return [
            payload[a:b]
            for a, b in zip(self.key_start.tolist(), self.key_end.tolist(), strict=True)
        ]

    @property
    def one_sample_each(self) -> bool:
        """Whether series i has exactly sample i (the usual shape)."""
        n = len(self.key_start)
        return len(self.sample_series) == n and (
            n == 0 or bool((self.sample_series == np.arange(n)).all())
        )


def _varint_size(n: np.ndarray) -> np.ndarray:
    return (
        1
        + (n >= 1 << 7).astype(np.int64)
        + (n >= 1 << 14)
        + (n >= 1 << 21)
        + (n >= 1 << 28)
        + (n >= 1 << 35)
    )


def _series_bounds(payload: bytes, buf: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    try:
        msg = SplitWriteRequest.FromString(payload)
    except DecodeError:
        return None
    series = msg.timeseries
    lens = np.fromiter(map(len, series), dtype=np.int64, count=len(series))
    # Only series fields, each with the shortest length header: then the sizes add
    # up to the whole request, and the offsets follow from them.
    ends = np.cumsum(lens + 1 + _varint_size(lens))
    if len(lens) == 0 or int(ends[-1]) != len(payload):
        return None
    starts = ends - lens
    if not (buf[starts - _varint_size(lens) - 1] == _LABEL).all():
        return None
    return starts, ends


def scan(payload: bytes) -> Scan | None:
    """The layout of `payload`, or None when it is not in the encoding described in
    the module docstring (possibly because it is not valid protobuf)."""
    buf = np.frombuffer(payload + _PAD, dtype=np.uint8)
    bounds = _series_bounds(payload, buf)
    if bounds is None:
        return None
    starts, end = bounds
    n = len(starts)
    pos = starts.copy()
    key_end = starts.copy()
    past_labels = np.zeros(n, dtype=bool)
    s_series: list[np.ndarray] = []
    s_pos: list[np.ndarray] = []
    s_len: list[np.ndarray] = []
    idx = np.flatnonzero(pos < end)
    while idx.size:
        p = pos[idx]
        tag = buf[p]
        b1 = buf[p + 1].astype(np.int64)
        long = b1 >= 0x80
        if long.any():
            b2 = buf[p + 2].astype(np.int64)
            if (b2[long] >= 0x80).any():
                return None
            ln = np.where(long, (b1 & 0x7F) | (b2 << 7), b1)
            body = p + 2 + long
        else:
            ln = b1
            body = p + 2
        nxt = body + ln
        e = end[idx]
        if (nxt > e).any():
            return None
        is_label = tag == _LABEL
        if is_label.all():
            if past_labels[idx].any():
                return None
            key_end[idx] = nxt
        else:
            is_sample = tag == _SAMPLE
            if not (is_label | is_sample | (tag == _EXEMPLAR) | (tag == _HISTOGRAM)).all():
                return None
            li = idx[is_label]
            if past_labels[li].any():
                return None
            key_end[li] = nxt[is_label]
            past_labels[idx[~is_label]] = True
            if is_sample.any():
                s_series.append(idx[is_sample])
                s_pos.append(body[is_sample])
                s_len.append(ln[is_sample])
        pos[idx] = nxt
        idx = idx[nxt < e]
    if len(s_series) == 1:
        sser, sp, sl = s_series[0], s_pos[0], s_len[0]
    elif s_series:
        # Each round is in series order; a stable sort by series keeps every series'
        # samples in request order.
        sser = np.concatenate(s_series)
        order = np.argsort(sser, kind="stable")
        sser = sser[order]
        sp = np.concatenate(s_pos)[order]
        sl = np.concatenate(s_len)[order]
    else:
        sser = sp = sl = np.empty(0, dtype=np.int64)
    decoded = _samples(buf, sp, sl)
    if decoded is None:
        return None
    return Scan(starts, key_end, sser, decoded[0], decoded[1])


def _samples(
    buf: np.ndarray, sp: np.ndarray, sl: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """Timestamps and values of the `Sample` messages at `sp` (lengths `sl`)."""
    m = len(sp)
    if m == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
    has_v = (sl >= 9) & (buf[sp] == 0x09)
    all_v = bool(has_v.all())
    raw = buf[(sp + 1)[:, None] + _J8]
    values = np.ascontiguousarray(raw).view("<f8").reshape(m)
    if not all_v:
        values = np.where(has_v, values, 0.0)
    tp = sp + 9 * has_v
    rest = sl - 9 * has_v
    has_t = rest > 0
    vlen = rest - 1
    if not has_t.all():
        if (buf[tp[has_t]] != 0x10).any():
            return None
    elif (buf[tp] != 0x10).any():
        return None
    # 1..9 bytes: a non-negative int64. Longer (negative timestamps) goes to protobuf.
    if ((vlen > 9) | (has_t & (vlen < 1))).any():
        return None
    b = buf[(tp + 1)[:, None] + _J10]
    inside = vlen[:, None] > _J10
    cont = b >= 0x80
    # Every byte but the varint's last has the continuation bit, exactly.
    if not ((cont == ((vlen - 1)[:, None] > _J10)) | ~inside).all():
        return None
    ts = (((b & 0x7F).astype(np.uint64) << _SHIFTS) * inside).sum(axis=1, dtype=np.uint64)
    return ts.view(np.int64), values
