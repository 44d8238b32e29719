"""Request parameters as Prometheus parses them, and the API error type.

Times are Unix seconds (decimal, rounded to milliseconds) or RFC 3339; durations
are decimal seconds or a Prometheus duration (``1h30m``, ``15s``, ``100ms``).
Everything returns int milliseconds, except `parse_duration_s` (float seconds).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta, timezone

from starlette.datastructures import FormData, QueryParams

from vigil.model.duration import parse_duration

ERROR_STATUS = {
    "bad_data": 400,
    "execution": 422,
    "canceled": 499,
    "timeout": 503,
    "unavailable": 503,
    "internal": 500,
    "not_found": 404,
    "not_acceptable": 406,
}
"""HTTP status per `errorType`, as Prometheus 3 answers (canceled is nginx's 499)."""


class ApiError(Exception):
    """An error answered as ``{"status":"error","errorType":...,"error":...}``."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message

    @property
    def status_code(self) -> int:
        return ERROR_STATUS.get(self.error_type, 500)


def bad_data(message: str) -> ApiError:
    return ApiError("bad_data", message)


def invalid_param(name: str, message: str) -> ApiError:
    return ApiError("bad_data", f'invalid parameter "{name}": {message}')


# Go's ParseFloat syntax (decimal only; Inf/NaN are refused later for times).
_FLOAT_RE = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
_RFC3339_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)
# Prometheus's MinTime/MaxTime: the defaults for open time ranges, and the two
# out-of-range RFC 3339 strings its Go client sends for them.
MIN_TIME_MS = (-(2**63) // 1000 + 62135596801) * 1000
MAX_TIME_MS = ((2**63 - 1) // 1000 - 62135596801) * 1000 + 999
_MIN_TIME_TEXT = "-292273086-05-16T16:47:06Z"
_MAX_TIME_TEXT = "292277025-08-17T07:12:54.999999999Z"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_time_ms(s: str) -> int:
    """Unix seconds or RFC 3339 -> int ms. Raises ValueError naming the text."""
    if _FLOAT_RE.match(s):
        f = float(s)
        if math.isfinite(f) and abs(f) < 9.2e15:
            whole = math.trunc(f)
            return whole * 1000 + round((f - whole) * 1000)
    m = _RFC3339_RE.match(s)
    if m:
        try:
            return _rfc3339_ms(m)
        except ValueError:
            pass
    if s == _MIN_TIME_TEXT:
        return MIN_TIME_MS
    if s == _MAX_TIME_TEXT:
        return MAX_TIME_MS
    raise ValueError(f'cannot parse "{s}" to a valid timestamp')


def _rfc3339_ms(m: re.Match[str]) -> int:
    y, mo, d, h, mi, sec = (int(m.group(i)) for i in range(1, 7))
    frac, zone = m.group(7), m.group(8)
    offset = timedelta(0)
    if zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        offset = sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    dt = datetime(y, mo, d, h, mi, sec, tzinfo=timezone(offset))
    delta = dt - _EPOCH
    ms = (delta.days * 86_400 + delta.seconds) * 1000
    if frac:
        ms += int((frac[1:] + "000")[:3])  # truncated to ms, as Go's timestamp.FromTime
    return ms


def parse_duration_ms(s: str) -> int:
    """Decimal seconds or a Prometheus duration -> int ms (may be <= 0 for floats)."""
    if _FLOAT_RE.match(s):
        f = float(s)
        ns = f * 1e9
        if not math.isfinite(ns) or abs(ns) > 2**63 - 1:
            raise ValueError(f'cannot parse "{s}" to a valid duration. It overflows int64')
        return math.trunc(math.trunc(ns) / 1_000_000)
    try:
        return parse_duration(s)
    except ValueError:
        raise ValueError(f'cannot parse "{s}" to a valid duration') from None


def parse_duration_s(s: str) -> float:
    return parse_duration_ms(s) / 1000.0


def parse_limit(s: str | None) -> int:
    """The `limit` parameter: 0 (absent) means unlimited; negative is refused."""
    if not s:
        return 0
    try:
        n = int(s, 10)
    except ValueError:
        raise invalid_param("limit", f'strconv.Atoi: parsing "{s}": invalid syntax') from None
    if n < 0:
        raise invalid_param("limit", "limit must be non-negative")
    return n


class Params:
    """URL query parameters merged with a POST form body (form values first, as Go's
    `FormValue` reads the body before the URL)."""

    def __init__(self, query: QueryParams, form: FormData | None = None) -> None:
        self._query = query
        self._form = form

    def get(self, name: str) -> str:
        if self._form is not None:
            v = self._form.get(name)
            if isinstance(v, str):
                return v
        return self._query.get(name) or ""

    def getlist(self, name: str) -> list[str]:
        out: list[str] = []
        if self._form is not None:
            out.extend(v for v in self._form.getlist(name) if isinstance(v, str))
        out.extend(self._query.getlist(name))
        return out

    def time_ms(self, name: str, default: int) -> int:
        s = self.get(name)
        if not s:
            return default
        try:
            return parse_time_ms(s)
        except ValueError as exc:
            raise invalid_param(name, f"invalid time value for '{name}': {exc}") from None
