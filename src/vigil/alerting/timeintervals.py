"""Time intervals (``time_intervals:``) used to mute or activate routes.

An interval spec matches an instant when every field it sets matches (unset
fields match anything): ``times`` (``HH:MM`` start inclusive, end exclusive,
``24:00`` allowed as an end), ``weekdays``, ``days_of_month`` (negative counts
from the month's end), ``months``, ``years``, all evaluated in ``location``
(default UTC). Ranges are written ``a:b`` and are inclusive.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_WEEKDAYS = {
    d: i
    for i, d in enumerate(
        ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"]
    )
}
_MONTHS = {m.lower(): i for i, m in enumerate(calendar.month_name) if m}
_TIME_RE = re.compile(r"^(\d{2}):(\d{2})$")


class TimeIntervalError(ValueError):
    """A time interval field is malformed; the message names the field and value."""


@dataclass(frozen=True)
class TimeInterval:
    """One spec. Ranges are inclusive ``(lo, hi)`` pairs; times are minutes [start, end)."""

    times: tuple[tuple[int, int], ...] = ()
    weekdays: tuple[tuple[int, int], ...] = ()
    days_of_month: tuple[tuple[int, int], ...] = ()
    months: tuple[tuple[int, int], ...] = ()
    years: tuple[tuple[int, int], ...] = ()
    location: str = "UTC"

    def contains(self, t: float) -> bool:
        """Whether the instant `t` (Unix seconds) falls inside this spec."""
        when = dt.datetime.fromtimestamp(t, ZoneInfo(self.location))
        if self.times:
            minute = when.hour * 60 + when.minute
            if not any(s <= minute < e for s, e in self.times):
                return False
        if self.weekdays:
            wd = (when.weekday() + 1) % 7  # Python: Monday=0; Go: Sunday=0
            if not any(lo <= wd <= hi for lo, hi in self.weekdays):
                return False
        if self.days_of_month:
            last = calendar.monthrange(when.year, when.month)[1]

            def norm(d: int) -> int:
                return d if d > 0 else last + d + 1

            if not any(norm(lo) <= when.day <= norm(hi) for lo, hi in self.days_of_month):
                return False
        if self.months and not any(lo <= when.month <= hi for lo, hi in self.months):
            return False
        return not (self.years and not any(lo <= when.year <= hi for lo, hi in self.years))


def _range(text: Any, parse_one: Any, what: str) -> tuple[int, int]:
    if isinstance(text, int) and not isinstance(text, bool) and text > 31 and what != "year":
        # YAML 1.1 reads an unquoted ``1:5`` as the base-60 integer 65.
        text = f"{text // 60}:{text % 60}"
    s = str(text).strip().lower()
    parts = s.split(":")
    if len(parts) > 2:
        raise TimeIntervalError(f"invalid {what} range {text!r}")
    lo = parse_one(parts[0])
    hi = parse_one(parts[1]) if len(parts) == 2 else lo
    if what != "day of month" and lo > hi:
        raise TimeIntervalError(f"{what} range {text!r}: start must not be after end")
    return lo, hi


def _weekday(s: str) -> int:
    if s not in _WEEKDAYS:
        raise TimeIntervalError(f"{s!r} is not a weekday name")
    return _WEEKDAYS[s]


def _month(s: str) -> int:
    if s in _MONTHS:
        return _MONTHS[s]
    if s.isdigit() and 1 <= int(s) <= 12:
        return int(s)
    raise TimeIntervalError(f"{s!r} is not a month")


def _dom(s: str) -> int:
    try:
        d = int(s)
    except ValueError:
        raise TimeIntervalError(f"{s!r} is not a day of month") from None
    if d == 0 or not -31 <= d <= 31:
        raise TimeIntervalError(f"day of month {d} out of range (1..31 or -31..-1)")
    return d


def _year(s: str) -> int:
    if not s.isdigit():
        raise TimeIntervalError(f"{s!r} is not a year")
    return int(s)


def _minutes(s: Any, end: bool) -> int:
    if isinstance(s, int) and not isinstance(s, bool):
        # YAML 1.1 reads an unquoted ``09:30`` as the base-60 integer 570 (minutes).
        s = f"{s // 60:02d}:{s % 60:02d}"
    m = _TIME_RE.match(str(s))
    if not m:
        raise TimeIntervalError(f"invalid time {s!r}: use HH:MM")
    h, mi = int(m.group(1)), int(m.group(2))
    if mi > 59 or h > 24 or (h == 24 and (mi or not end)):
        raise TimeIntervalError(f"time {s!r} out of range")
    return h * 60 + mi


def parse_time_interval(data: Any) -> TimeInterval:
    """Build one spec from its YAML mapping; raise `TimeIntervalError` on bad fields."""
    if not isinstance(data, dict):
        raise TimeIntervalError("a time interval must be a mapping")
    known = {"times", "weekdays", "days_of_month", "months", "years", "location"}
    for k in data:
        if k not in known:
            raise TimeIntervalError(f"unknown field {k!r} (expected one of {sorted(known)})")
    times = []
    for t in data.get("times") or []:
        if not isinstance(t, dict) or "start_time" not in t or "end_time" not in t:
            raise TimeIntervalError("each entry of times needs start_time and end_time")
        s, e = _minutes(t["start_time"], False), _minutes(t["end_time"], True)
        if s >= e:
            raise TimeIntervalError(f"start_time {t['start_time']} must be before end_time")
        times.append((s, e))
    loc = str(data.get("location") or "UTC")
    if loc.lower() == "local":
        loc = "UTC"
    try:
        ZoneInfo(loc)
    except (ZoneInfoNotFoundError, ValueError):
        raise TimeIntervalError(f"unknown location {loc!r}") from None
    return TimeInterval(
        times=tuple(times),
        weekdays=tuple(_range(x, _weekday, "weekday") for x in data.get("weekdays") or []),
        days_of_month=tuple(
            _range(x, _dom, "day of month") for x in data.get("days_of_month") or []
        ),
        months=tuple(_range(x, _month, "month") for x in data.get("months") or []),
        years=tuple(_range(x, _year, "year") for x in data.get("years") or []),
        location=loc,
    )


def any_contains(intervals: tuple[TimeInterval, ...] | list[TimeInterval], t: float) -> bool:
    """True when any of the specs contains `t`."""
    return any(i.contains(t) for i in intervals)
