"""The alert as the notification pipeline sees it.

Times are Unix seconds (float); ``ends_at == 0`` means "not set". An alert is
resolved at `now` when it has an end time not after `now`. The fingerprint is
Alertmanager's (FNV-1a 64 over sorted label names and values), so ids match.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace

from vigil.model.labels import Labels

_FNV_OFFSET = 14695981039346656037
_FNV_PRIME = 1099511628211
_MASK = (1 << 64) - 1
_SEP = 0xFF


def fingerprint(labels: Labels) -> int:
    """Prometheus's label-set fingerprint (FNV-1a 64, 0xff separators)."""
    h = _FNV_OFFSET
    for name, value in labels:
        for b in name.encode():
            h = ((h ^ b) * _FNV_PRIME) & _MASK
        h = ((h ^ _SEP) * _FNV_PRIME) & _MASK
        for b in value.encode():
            h = ((h ^ b) * _FNV_PRIME) & _MASK
        h = ((h ^ _SEP) * _FNV_PRIME) & _MASK
    return h


def fp_hex(fp: int) -> str:
    return f"{fp:016x}"


@dataclass(frozen=True)
class Alert:
    """An alert. `timeout` marks an end time set by resolve_timeout, not by the sender."""

    labels: Labels
    annotations: Labels = Labels.EMPTY
    starts_at: float = 0.0
    ends_at: float = 0.0
    generator_url: str = ""
    updated_at: float = 0.0
    timeout: bool = False
    fp: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        if not self.fp:
            object.__setattr__(self, "fp", fingerprint(self.labels))

    @property
    def fingerprint(self) -> str:
        return fp_hex(self.fp)

    def resolved(self, now: float) -> bool:
        return self.ends_at != 0 and self.ends_at <= now

    def status(self, now: float) -> str:
        return "resolved" if self.resolved(now) else "firing"

    def merge(self, older: Alert, now: float) -> Alert:
        """Combine with an earlier version of the same alert as Alertmanager does.

        The younger (by `updated_at`) wins, keeping the earliest start; an
        explicit end time from the older one is kept when it is later.
        """
        a, o = older, self
        if o.updated_at < a.updated_at:
            a, o = o, a
        res = o
        if a.starts_at < o.starts_at:
            res = replace(res, starts_at=a.starts_at)
        if o.resolved(now):
            if a.resolved(now) and a.ends_at > o.ends_at:
                res = replace(res, ends_at=a.ends_at)
        elif a.ends_at > o.ends_at and not a.timeout:
            res = replace(res, ends_at=a.ends_at)
        return res


def format_time(t: float) -> str:
    """Go's RFC3339Nano in UTC (``0001-01-01T00:00:00Z`` for zero)."""
    if t == 0:
        return "0001-01-01T00:00:00Z"
    d = dt.datetime.fromtimestamp(t, dt.UTC)
    s = d.strftime("%Y-%m-%dT%H:%M:%S")
    if d.microsecond:
        s += "." + f"{d.microsecond:06d}".rstrip("0")
    return s + "Z"


def parse_time(text: str) -> float:
    """Parse RFC3339 (any offset, fractional seconds) into Unix seconds."""
    s = text.strip()
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    # Python accepts at most 6 fractional digits; Go sends up to 9.
    if "." in s:
        head, _, rest = s.partition(".")
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        s = f"{head}.{(digits + '000000')[:6]}{rest}"
    d = dt.datetime.fromisoformat(s)
    if d.tzinfo is None:
        raise ValueError(f"time {text!r} has no time zone")
    if d.year <= 1:
        return 0.0
    return d.timestamp()
