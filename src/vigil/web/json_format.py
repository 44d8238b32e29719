"""Prometheus's JSON response shapes and its exact number formatting.

Sample values are strings formatted like Go's ``strconv.FormatFloat(v, 'f', -1, 64)``
(shortest round-trip digits, never an exponent) with ``+Inf``, ``-Inf`` and ``NaN``.
Timestamps are JSON numbers in seconds written from int milliseconds as Prometheus
writes them: the integer part, then ``.`` and exactly three fraction digits when the
millisecond part is not zero (``1.500``, ``-0.250``).

Responses are assembled as bytes: label maps and strings go through orjson, sample
lists are joined from pre-formatted pieces, which is what keeps large matrices fast.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import numpy as np
import orjson

from vigil.promql.result import QueryResult, Scalar, Series, String
from vigil.promql.result import Sample as VSample


def format_value(v: float) -> str:
    """A float as Go's FormatFloat(v, 'f', -1, 64), with Prometheus's Inf/NaN names."""
    if v != v:
        return "NaN"
    if v == math.inf:
        return "+Inf"
    if v == -math.inf:
        return "-Inf"
    if v.is_integer() and -1e15 < v < 1e15:
        # Exact for every integer below 2**53, and by far the most common case.
        return "-0" if v == 0 and math.copysign(1.0, v) < 0 else str(int(v))
    r = repr(v)
    if "e" not in r:
        return r[:-2] if r.endswith(".0") else r
    # repr() gives the shortest round-trip digits; only the exponent must go.
    s = format(Decimal(r), "f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s


def format_timestamp(t_ms: int) -> str:
    """Int ms as Prometheus writes a JSON timestamp (seconds, 0 or 3 decimals)."""
    sign = ""
    if t_ms < 0:
        sign = "-"
        t_ms = -t_ms
    sec, frac = divmod(t_ms, 1000)
    if frac:
        return f"{sign}{sec}.{frac:03d}"
    return f"{sign}{sec}"


def _labels_json(labels: Iterable[tuple[str, str]]) -> bytes:
    return orjson.dumps(dict(labels))


def _pair(t_ms: int, v: float) -> bytes:
    return f'[{format_timestamp(t_ms)},"{format_value(v)}"]'.encode()


# orjson writes floats with the shortest round-trip digits, as Go and repr() do; it
# differs from Go's 'f' format only by a trailing ".0", exponents and null for
# NaN/Inf, so those few tokens are fixed up and the rest is never touched by Python.
_NP = orjson.OPT_SERIALIZE_NUMPY


def _value_tokens(vs: np.ndarray) -> list[bytes]:
    """Each value formatted as `format_value` does, as bytes (vs non-empty)."""
    vs = np.ascontiguousarray(vs, dtype=np.float64)
    body = orjson.dumps(vs, option=_NP)[1:-1].replace(b".0,", b",")
    if body.endswith(b".0"):
        body = body[:-2]
    toks = body.split(b",")
    if b"e" in body or b"n" in body:  # an exponent, or null (NaN/Inf)
        for i, tok in enumerate(toks):
            if b"e" in tok or b"n" in tok:
                toks[i] = format_value(float(vs[i])).encode()
    return toks


def _point_prefixes(ts: np.ndarray) -> list[bytes]:
    """Per point: `"],[<ts>,"` (the first one `[<ts>,"`), to interleave with values."""
    ts = np.ascontiguousarray(ts, dtype=np.int64)
    if ts[0] >= 0 and not (ts % 1000).any():
        secs = orjson.dumps(ts // 1000, option=_NP)[1:-1]
    else:
        secs = ",".join(format_timestamp(t) for t in ts.tolist()).encode()
    toks = (b'"],[' + secs.replace(b",", b',"\x00"],[') + b',"').split(b"\x00")
    toks[0] = toks[0][3:]
    return toks


_PrefixCache = dict[tuple[int, int, int], tuple[np.ndarray, list[bytes]]]


def _series_json(s: Series, cache: _PrefixCache | None = None) -> bytes:
    """One matrix series; `cache` shares the timestamp pieces between series with
    the same timestamps (in a range query most series have a value at every step)."""
    head = b'{"metric":' + _labels_json(s.labels) + b',"values":['
    ts = s.timestamps
    n = len(ts)
    if n == 0:
        return head + b"]}"
    key = (n, int(ts[0]), int(ts[-1]))
    hit = cache.get(key) if cache is not None else None
    if hit is not None and np.array_equal(hit[0], ts):
        prefixes = hit[1]
    else:
        prefixes = _point_prefixes(ts)
        if cache is not None:
            cache[key] = (ts, prefixes)
    parts: list[bytes] = [b""] * (2 * n)
    parts[0::2] = prefixes
    parts[1::2] = _value_tokens(s.values)
    return head + b"".join(parts) + b'"]]}'


def result_json(result: QueryResult) -> bytes:
    """The `result` member for a query result (vector, matrix, scalar or string)."""
    rt = result.result_type
    val = result.value
    if rt == "vector":
        assert isinstance(val, list)
        parts = [
            b'{"metric":' + _labels_json(s.labels) + b',"value":' + _pair(s.t, s.v) + b"}"
            for s in val
            if isinstance(s, VSample)
        ]
        return b"[" + b",".join(parts) + b"]"
    if rt == "matrix":
        assert isinstance(val, list)
        cache: _PrefixCache = {}
        return b"[" + b",".join(_series_json(s, cache) for s in val if isinstance(s, Series)) + b"]"
    if rt == "scalar":
        assert isinstance(val, Scalar)
        return _pair(val.t, val.v)
    assert isinstance(val, String)
    return b"[" + format_timestamp(val.t).encode() + b"," + orjson.dumps(val.v) + b"]"


def query_data_json(result: QueryResult, stats: dict[str, Any] | None = None) -> bytes:
    """The `data` member of a /query or /query_range success response."""
    out = b'{"resultType":"' + result.result_type.encode() + b'","result":' + result_json(result)
    if stats is not None:
        out += b',"stats":' + orjson.dumps(stats)
    return out + b"}"


def success_body(
    data_json: bytes, warnings: list[str] | None = None, infos: list[str] | None = None
) -> bytes:
    """``{"status":"success","data":...}`` with `warnings`/`infos` only when non-empty."""
    out = b'{"status":"success","data":' + data_json
    if warnings:
        out += b',"warnings":' + orjson.dumps(warnings)
    if infos:
        out += b',"infos":' + orjson.dumps(infos)
    return out + b"}"


def error_body(error_type: str, message: str, data: Any = None) -> bytes:
    body: dict[str, Any] = {"status": "error", "errorType": error_type, "error": message}
    if data is not None:
        body["data"] = data
    return orjson.dumps(body)


def dumps(data: Any) -> bytes:
    """orjson with the options the API needs (non-str dict keys allowed)."""
    return orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS)
