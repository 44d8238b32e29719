"""Prometheus durations (`1h30m`, `5m`, `1d`, `500ms`) in int milliseconds.

The one implementation of Prometheus's `model.ParseDuration` / `Duration.String`
that config, PromQL, rules, scraping and the HTTP API share.
"""

from __future__ import annotations

import re

_DURATION_RE = re.compile(
    r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$"
)
_UNITS = (
    ("y", 365 * 86_400_000),
    ("w", 7 * 86_400_000),
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1000),
    ("ms", 1),
)
_UNIT_NAMES = frozenset(name for name, _ in _UNITS)
_PART_RE = re.compile(r"\d+([a-zA-Z]+)")
# A Go time.Duration is int64 nanoseconds; Prometheus refuses longer spans.
MAX_DURATION_MS = (1 << 63) // 1_000_000


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_duration(text: str) -> int:
    """Milliseconds of `text`. Units go largest first, each at most once; `0` alone
    needs no unit. Raises ValueError with Prometheus's message when invalid."""
    if text == "":
        raise ValueError("empty duration string")
    if text == "0":
        return 0
    m = _DURATION_RE.match(text)
    if m is None or not any(m.groups()):
        for unit in _PART_RE.findall(text):
            if unit not in _UNIT_NAMES:
                raise ValueError(f"unknown unit {_quote(unit)} in duration {_quote(text)}")
        raise ValueError(f"not a valid duration string: {_quote(text)}")
    total = sum(int(g) * mult for g, (_, mult) in zip(m.groups(), _UNITS, strict=True) if g)
    if total >= MAX_DURATION_MS:
        raise ValueError("duration out of range")
    return total


def format_duration(ms: int) -> str:
    """Prometheus's canonical text for `ms` >= 0: `1h30m`, `90d`, `0s`.

    Years and weeks are used only when they divide exactly (`90d`, not `12w6d`)."""
    if ms == 0:
        return "0s"
    out = []
    for name, mult in _UNITS:
        if name in ("y", "w") and ms % mult:
            continue
        n, ms = divmod(ms, mult)
        if n:
            out.append(f"{n}{name}")
    return "".join(out)
