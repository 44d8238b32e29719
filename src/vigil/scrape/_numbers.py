"""Number syntax of the two exposition formats.

Prometheus text values follow Go's ``strconv.ParseFloat``; OpenMetrics values follow
the spec's ABNF (decimal only, case-insensitive Inf/Infinity/NaN). Python's `float()`
accepts more than either (underscores, surrounding whitespace, non-ASCII digits,
signed NaN), so the bulk converters check the cheap necessary conditions on all
values at once and look at individual strings only when something unusual shows up.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation

import numpy as np

from vigil.scrape._expo_common import INT64_MAX, NO_TIMESTAMP

_GO_DEC = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# Go hex floats need the 'p' exponent; underscores may only separate digits (and
# follow the base prefix), which the check below enforces.
_GO_HEX = re.compile(r"([+-]?)0[xX]((?:_?[0-9a-fA-F])*\.?(?:[0-9a-fA-F]_?)*)[pP]([+-]?[0-9_]+)")
_GO_SPECIAL = re.compile(r"(?i:[+-]?(?:inf|infinity)|nan)")
_OM_NUMBER = re.compile(
    r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|(?i:[+-]?(?:inf|infinity)|nan)"
)


def go_parse_float(s: str) -> float:
    """Parse `s` as Go's strconv.ParseFloat(s, 64) would; ValueError otherwise
    (including out-of-range values, which Go reports as an error)."""
    if _GO_DEC.fullmatch(s):
        f = float(s)
        if math.isinf(f):
            raise ValueError(f"value {s!r} is out of float64 range")
        return f
    if _GO_SPECIAL.fullmatch(s):
        return float(s)
    m = _GO_HEX.fullmatch(s)
    if m:
        mant = m.group(2)
        if "_" in mant and not _hex_underscores_ok(mant):
            raise ValueError(f"invalid underscore placement in {s!r}")
        exp = m.group(3)
        if "_" in exp:
            raise ValueError(f"invalid underscore placement in {s!r}")
        mant = mant.replace("_", "")
        if not mant.strip("."):
            raise ValueError(f"hexadecimal mantissa has no digits in {s!r}")
        f = float.fromhex(f"{m.group(1)}0x{mant}p{exp}")
        if math.isinf(f):
            raise ValueError(f"value {s!r} is out of float64 range")
        return f
    raise ValueError(f"{s!r} is not a number")


def _hex_underscores_ok(mant: str) -> bool:
    # Go allows '_' right after the base prefix and between digits only.
    digits = "0123456789abcdefABCDEF"
    for i, c in enumerate(mant):
        if c == "_":
            nxt = mant[i + 1 : i + 2]
            prev = mant[i - 1 : i] if i else "x"
            if nxt not in digits or not nxt or (prev not in digits and prev != "x"):
                return False
    return True


def om_parse_float(s: str) -> float:
    """Parse an OpenMetrics number (spec ABNF); ValueError otherwise."""
    if not _OM_NUMBER.fullmatch(s) or (s[0] in "+-" and s[1:2] in ("n", "N")):
        raise ValueError(f"{s!r} is not an OpenMetrics number")
    return float(s)


def bulk_floats(vals: Sequence[str], openmetrics: bool) -> tuple[np.ndarray, int]:
    """Convert value strings to float64 in one go.

    Returns ``(array, -1)`` on success or ``(empty, i)`` where ``vals[i]`` is the first
    string the format does not accept.
    """
    joined = " ".join(vals)
    # Values never contain spaces (they were split on them), so a printable ASCII join
    # rules out every whitespace/unicode-digit leniency of float(); '_' and signed NaN
    # are the remaining differences, checked below.
    if joined.isascii() and joined.isprintable() and "_" not in joined:
        try:
            arr = np.array(vals, dtype=np.float64)
        except ValueError:
            arr = None
        if arr is not None:
            bad = ~np.isfinite(arr)
            if not bad.any():
                return arr, -1
            check = om_parse_float if openmetrics else go_parse_float
            for i in np.flatnonzero(bad).tolist():
                try:
                    check(vals[i])
                except ValueError:
                    return np.empty(0), i
            return arr, -1
    check = om_parse_float if openmetrics else go_parse_float
    out = np.empty(len(vals), dtype=np.float64)
    for i, s in enumerate(vals):
        try:
            out[i] = check(s)
        except ValueError:
            return np.empty(0), i
    return out, -1


def bulk_float_tokens(vals: Sequence[str], openmetrics: bool) -> np.ndarray | None:
    """Like `bulk_floats` for fast-path value tokens, each of which may carry the one
    blank that separated it from its series (see `_bulk`); None when some value is not
    accepted (the caller then reparses carefully to report it)."""
    joined = "".join(vals)
    # Printable ASCII rules out every whitespace/unicode-digit leniency of float(),
    # and the blank count proves each token has at most its one leading blank.
    if not (joined.isascii() and joined.isprintable() and "_" not in joined):
        return None
    if joined.count(" ") > len(vals):
        return None
    try:
        arr = np.array(vals, dtype=np.float64)
    except ValueError:
        return _careful_tokens(vals, openmetrics)
    bad = ~np.isfinite(arr)
    if bad.any():
        check = om_parse_float if openmetrics else go_parse_float
        for i in np.flatnonzero(bad).tolist():
            try:
                check(vals[i].removeprefix(" "))
            except ValueError:
                return None
    return arr


def _careful_tokens(vals: Sequence[str], openmetrics: bool) -> np.ndarray | None:
    # Forms float() refuses but Go accepts (hex floats): one by one.
    check = om_parse_float if openmetrics else go_parse_float
    out = np.empty(len(vals), dtype=np.float64)
    for i, s in enumerate(vals):
        try:
            out[i] = check(s.removeprefix(" "))
        except ValueError:
            return None
    return out


def parse_prom_timestamp(s: str) -> int:
    """A Prometheus text timestamp: a base-10 int64 of milliseconds (Go ParseInt)."""
    body = s[1:] if s[:1] in ("+", "-") else s
    if not (body.isascii() and body.isdigit()):
        raise ValueError(f"timestamp {s!r} is not an integer number of milliseconds")
    v = int(s)
    if not (NO_TIMESTAMP < v <= INT64_MAX):
        raise ValueError(f"timestamp {s!r} is out of int64 range")
    return v


def parse_om_timestamp(s: str) -> Decimal:
    """An OpenMetrics timestamp (seconds, decimal, finite) as an exact Decimal."""
    if not _OM_NUMBER.fullmatch(s) or s.lstrip("+-")[:1] in ("i", "I", "n", "N"):
        raise ValueError(f"timestamp {s!r} is not a finite decimal number of seconds")
    try:
        return Decimal(s)
    except InvalidOperation:  # pragma: no cover - the regex admits only valid decimals
        raise ValueError(f"timestamp {s!r} is not a number") from None


def seconds_to_ms(d: Decimal) -> int:
    """Seconds to int milliseconds, truncating toward zero and clamping to int64."""
    ms = int(d * 1000)
    if ms > INT64_MAX:
        return INT64_MAX
    if ms <= NO_TIMESTAMP:
        return NO_TIMESTAMP + 1
    return ms
