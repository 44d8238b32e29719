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
from collections.abc import Callable, Sequence
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
    """Like `bulk_floats` for fast-path value tokens, each of which carries the one
    blank that separated it from its series (see `_bulk`); None when some value is not
    accepted (the caller then reparses carefully to report it)."""
    joined = "".join(vals)
    # Printable ASCII rules out every whitespace/unicode-digit leniency of float(),
    # and the blank count proves each token has just its one leading blank.
    if not (joined.isascii() and joined.isprintable() and "_" not in joined):
        return None
    if joined.count(" ") != len(vals):
        return None
    check = om_parse_float if openmetrics else go_parse_float
    got = decimal_tokens(joined, len(vals))
    if got is None:
        try:
            arr = np.array(vals, dtype=np.float64)
        except ValueError:
            return _careful_tokens(vals, check)
        careful = ~np.isfinite(arr)
    elif isinstance(got, tuple):
        arr, careful = got
    else:
        # a few tokens that are not plain decimals (NaN, Inf, hex): convert the rest
        # in bulk with a stand-in, those one by one
        others = list(vals)
        for i in got.tolist():
            others[i] = " 0"
        again = decimal_tokens("".join(others), len(vals))
        if not isinstance(again, tuple):
            return _careful_tokens(vals, check)
        arr, careful = again
        careful[got] = True
    for i in np.flatnonzero(careful).tolist():
        try:
            arr[i] = check(vals[i][1:])
        except ValueError:
            return None
    return arr


_POW10 = np.array([10.0**k for k in range(23)])  # all exact in float64
_POW10_INT = np.array([10**k for k in range(19)], dtype=np.int64)
_MAX_DIGITS = 15  # any 15-digit integer is exact in float64 (< 2**53)


def decimal_tokens(joined: str, n: int) -> tuple[np.ndarray, np.ndarray] | np.ndarray | None:
    """Convert `n` plain decimal numbers at once, exactly as float() would.

    `joined` is printable ASCII: each token is introduced by one blank and has the form
    ``[+-]digits[.digits][(e|E)[+-]digits]``. Digits (dot removed) and exponent are
    read as integers in bulk; with at most 15 significant digits and a power of ten
    of at most 22 the result is one correctly rounded IEEE multiplication or division,
    i.e. the correctly rounded value of the decimal (Clinger's fast path). Returns
    ``(values, careful)`` where `careful` marks tokens outside that range (convert
    them one by one); the indices of tokens holding other characters (NaN, Inf, hex)
    when only a few do; or None when the text is not of this shape at all.
    """
    parts = _decimal_parts(joined, n)
    if parts is None or isinstance(parts, np.ndarray):
        return parts
    mant, power, digits, neg = parts
    careful = (digits > _MAX_DIGITS) | (power > 22) | (power < -22)
    clipped = np.clip(power, -22, 22)
    scale = _POW10[np.abs(clipped)]
    fm = mant.astype(np.float64)
    values = np.where(clipped >= 0, fm * scale, fm / scale)
    np.negative(values, out=values, where=neg)
    return values, careful


def ms_tokens(tokens: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """OpenMetrics timestamp tokens (seconds, each with its leading blank) to int
    milliseconds truncated toward zero, exactly as `seconds_to_ms(parse_om_timestamp)`.

    Returns ``(ms, careful, truncated)``: `careful` marks tokens to convert one by one
    (more than 18 digits at the millisecond scale), `truncated` those with digits
    below the millisecond (equal milliseconds do not mean equal times there); or None
    when some token is not a plain finite decimal (the caller then goes careful).
    """
    joined = "".join(tokens)
    if not (joined.isascii() and joined.isprintable()) or joined.count(" ") != len(tokens):
        return None
    parts = _decimal_parts(joined, len(tokens))
    if parts is None or isinstance(parts, np.ndarray):
        return None
    mant, power, digits, neg = parts
    power = power + 3
    careful = (digits + np.maximum(power, 0) > 18) | (power < -18)
    up = np.clip(power, 0, 18)
    down = np.clip(-power, 0, 18)
    ms = np.where(power >= 0, mant * _POW10_INT[np.where(careful, 0, up)], mant // _POW10_INT[down])
    np.negative(ms, out=ms, where=neg)
    return ms, careful, power < 0


def _decimal_parts(
    joined: str, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | np.ndarray | None:
    """The shape checks and integer reading behind `decimal_tokens`: ``(mantissa
    without sign as int64, power of ten, digit count, negative)``, or the indices of
    odd tokens, or None. Mantissas of more than 18 digits saturate (callers mark
    them careful by their digit count)."""
    raw = np.frombuffer(joined.encode("ascii"), dtype=np.uint8)
    size = raw.size
    blank = raw == 32
    starts = np.flatnonzero(blank)
    if starts.size != n or n == 0 or starts[0] != 0:
        return None
    digit = (raw - 48) < 10
    dot = raw == 46
    expo = (raw | 32) == 101
    sign = (raw == 43) | (raw == 45)
    odd = ~(digit | dot | expo | sign | blank)
    if odd.any():
        tok = np.unique(np.searchsorted(starts, np.flatnonzero(odd), side="right") - 1)
        return tok if tok.size * 8 <= n else None
    ends = np.empty(n, dtype=np.int64)
    ends[:-1] = starts[1:]
    ends[-1] = size
    first = starts + 1
    if (first >= ends).any():
        return None  # an empty token
    spos = np.flatnonzero(sign)
    if spos.size:
        before = raw[spos - 1]
        if not ((before == 32) | ((before | 32) == 101)).all():
            return None
    mant_end = ends.copy()
    has_exp = np.zeros(n, dtype=bool)
    exp_at = np.flatnonzero(expo)
    if exp_at.size:
        etok = np.searchsorted(starts, exp_at, side="right") - 1
        if (np.diff(etok) == 0).any() or exp_at[-1] + 1 >= size:
            return None
        mant_end[etok] = exp_at
        has_exp[etok] = True
        exp_digits = ends[etok] - exp_at - 1 - sign[exp_at + 1]
        if ((exp_digits < 1) | (exp_digits > 4)).any():
            return None
    decimals = np.zeros(n, dtype=np.int64)
    has_dot = np.zeros(n, dtype=bool)
    dot_at = np.flatnonzero(dot)
    if dot_at.size:
        dtok = np.searchsorted(starts, dot_at, side="right") - 1
        if (np.diff(dtok) == 0).any() or (dot_at >= mant_end[dtok]).any():
            return None
        decimals[dtok] = mant_end[dtok] - dot_at - 1
        has_dot[dtok] = True
    lead = sign[first]
    digits = mant_end - first - lead - has_dot
    if (digits < 1).any():
        return None
    text = joined.replace(".", "")
    if exp_at.size:
        text = text.replace("e", " ").replace("E", " ")
    ints = np.fromstring(text, dtype=np.int64, sep=" ")
    n_exp = int(np.count_nonzero(has_exp))
    if ints.size != n + n_exp:
        return None  # pragma: no cover - the shape checks above rule this out
    at = np.arange(n)
    if n_exp:
        at += np.cumsum(has_exp) - has_exp
        power = np.where(has_exp, ints[np.minimum(at + 1, ints.size - 1)], 0) - decimals
    else:
        power = -decimals
    return np.abs(ints[at]), power, digits, raw[first] == 45


def _careful_tokens(vals: Sequence[str], check: Callable[[str], float]) -> np.ndarray | None:
    # Forms float() refuses but Go accepts (hex floats): one by one.
    out = np.empty(len(vals), dtype=np.float64)
    for i, s in enumerate(vals):
        try:
            out[i] = check(s[1:])
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
