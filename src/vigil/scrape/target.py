"""Scrape targets: label computation from discovery, the scrape URL, health state.

A target's identity is its full label set after target relabeling (internal `__`
labels included), so two targets with equal labels are the same target. Follows
Prometheus' `scrape/target.go` semantics:

1. discovered labels = target labels, then group labels not already set, then
   `job`, `__scrape_interval__`, `__scrape_timeout__`, `__metrics_path__`,
   `__scheme__` and `__param_<name>` (first value) where not already set;
2. `relabel_configs` run on them; a drop makes the target *dropped* (not an error);
3. `__address__` must be present and not contain "/", interval and timeout labels
   must parse, be non-zero and timeout <= interval;
4. `__meta_*` labels are removed; `instance` defaults to `__address__`.

The public labels (those attached to scraped series) are the ones not starting
with `__`.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from vigil.model.duration import format_duration, parse_duration
from vigil.model.labels import Labels

ADDRESS_LABEL = "__address__"
SCHEME_LABEL = "__scheme__"
METRICS_PATH_LABEL = "__metrics_path__"
SCRAPE_INTERVAL_LABEL = "__scrape_interval__"
SCRAPE_TIMEOUT_LABEL = "__scrape_timeout__"
PARAM_PREFIX = "__param_"
META_PREFIX = "__meta_"
RESERVED_PREFIX = "__"
JOB_LABEL = "job"
INSTANCE_LABEL = "instance"

HEALTH_UNKNOWN = "unknown"
HEALTH_UP = "up"
HEALTH_DOWN = "down"


class TargetError(ValueError):
    """A discovered target that cannot be scraped (bad address, interval, ...)."""


# --- durations -----------------------------------------------------------------


def duration_ms(value: Any) -> int:
    """Milliseconds of a config duration (config object, timedelta, int ms, or text)."""
    if value is None:
        return 0
    if isinstance(value, bool):
        raise TypeError(f"not a duration: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, timedelta):
        return round(value.total_seconds() * 1000)
    if isinstance(value, str):
        return parse_duration(value)
    for attr in ("ms", "milliseconds", "total_ms"):
        v = getattr(value, attr, None)
        if v is not None:
            return int(v() if callable(v) else v)
    v = getattr(value, "seconds", None)
    if v is not None:
        return round(float(v() if callable(v) else v) * 1000)
    raise TypeError(f"not a duration: {value!r}")


# --- labels --------------------------------------------------------------------


def _params(cfg: Any) -> dict[str, list[str]]:
    params = getattr(cfg, "params", None) or {}
    out: dict[str, list[str]] = {}
    for k, v in params.items():
        out[str(k)] = [v] if isinstance(v, str) else [str(x) for x in v]
    return out


def discovered_labels(cfg: Any, target: Labels, group: Labels) -> Labels:
    """The target's labels before relabeling, as shown in `discoveredLabels`."""
    d = dict(group)
    d.update(target)
    defaults = (
        (JOB_LABEL, cfg.job_name),
        (SCRAPE_INTERVAL_LABEL, format_duration(duration_ms(cfg.scrape_interval))),
        (SCRAPE_TIMEOUT_LABEL, format_duration(duration_ms(cfg.scrape_timeout))),
        (METRICS_PATH_LABEL, cfg.metrics_path),
        (SCHEME_LABEL, cfg.scheme),
    )
    for name, value in defaults:
        if not d.get(name):
            d[name] = value
    for k, vs in _params(cfg).items():
        name = PARAM_PREFIX + k
        if vs and not d.get(name):
            d[name] = vs[0]
    return Labels.from_dict(d)


def _relabel(labels: Labels, configs: Sequence[Any]) -> Labels | None:
    if not configs:
        return labels
    from vigil.model.relabel import relabel  # lazy: written in parallel

    return relabel(labels, configs)


def populate_labels(cfg: Any, discovered: Labels) -> Labels | None:
    """Final target labels from `discovered` (see `discovered_labels`).

    Returns None when relabeling drops the target; raises `TargetError` when the
    remaining labels do not describe a scrapable target.
    """
    labels = _relabel(discovered, getattr(cfg, "relabel_configs", None) or ())
    if labels is None:
        return None
    d = dict(labels)
    addr = d.get(ADDRESS_LABEL, "")
    if not addr:
        raise TargetError("no address")
    if "/" in addr:
        raise TargetError(f'"{addr}" is not a valid hostname')
    interval_text = d.get(SCRAPE_INTERVAL_LABEL, "")
    try:
        interval = parse_duration(interval_text)
    except ValueError as exc:
        raise TargetError(f"error parsing scrape interval: {exc}") from None
    if interval == 0:
        raise TargetError("scrape interval cannot be 0")
    timeout_text = d.get(SCRAPE_TIMEOUT_LABEL, "")
    try:
        timeout = parse_duration(timeout_text)
    except ValueError as exc:
        raise TargetError(f"error parsing scrape timeout: {exc}") from None
    if timeout == 0:
        raise TargetError("scrape timeout cannot be 0")
    if timeout > interval:
        raise TargetError(
            f'scrape timeout cannot be greater than scrape interval ("{timeout_text}" > "{interval_text}")'
        )
    for name in [n for n in d if n.startswith(META_PREFIX)]:
        del d[name]
    if not d.get(INSTANCE_LABEL):
        d[INSTANCE_LABEL] = addr
    return Labels.from_dict(d)


@dataclass(frozen=True, slots=True)
class ScrapeResult:
    """What one scrape reported about its target (times in ms / seconds)."""

    start_ms: int
    duration_s: float
    error: str | None


class Target:
    """One scrapable endpoint and its last-scrape health.

    Identity (`key`) and labels are immutable; the health fields are updated by the
    scrape loop and read by the API under an internal lock (thread-safe).
    """

    __slots__ = (
        "_lock",
        "_result",
        "discovered",
        "interval_ms",
        "key",
        "labels",
        "params",
        "public_labels",
        "timeout_ms",
        "url",
    )

    def __init__(self, labels: Labels, discovered: Labels, params: Mapping[str, list[str]]) -> None:
        self.labels = labels
        self.discovered = discovered
        self.public_labels = Labels.from_sorted(
            p for p in labels if not p[0].startswith(RESERVED_PREFIX)
        )
        self.params = {k: list(v) for k, v in params.items()}
        self.url = build_url(labels, self.params)
        self.interval_ms = parse_duration(labels.get(SCRAPE_INTERVAL_LABEL))
        self.timeout_ms = parse_duration(labels.get(SCRAPE_TIMEOUT_LABEL))
        # Stable across processes (unlike hash()), so scrape offsets survive restarts.
        self.key = int.from_bytes(
            hashlib.blake2b(
                repr(tuple(labels)).encode() + b"\xff" + self.url.encode(), digest_size=8
            ).digest(),
            "little",
        )
        self._lock = threading.Lock()
        self._result: ScrapeResult | None = None

    def offset_ms(self, now_ms: int, offset_seed: int = 0) -> int:
        """Milliseconds from `now_ms` to this target's next slot on its interval grid.

        The slot within the interval is fixed by the target's identity, so a fleet of
        targets spreads evenly and each is scraped at the same phase after restarts.
        """
        interval = self.interval_ms
        base = interval - now_ms % interval
        nxt = base + (self.key ^ offset_seed) % interval
        if nxt > interval:
            nxt -= interval
        return nxt

    def report(self, start_ms: int, duration_s: float, error: str | None) -> None:
        with self._lock:
            self._result = ScrapeResult(start_ms, duration_s, error)

    @property
    def last_result(self) -> ScrapeResult | None:
        with self._lock:
            return self._result

    @property
    def health(self) -> str:
        r = self.last_result
        if r is None:
            return HEALTH_UNKNOWN
        return HEALTH_UP if r.error is None else HEALTH_DOWN

    def __repr__(self) -> str:
        return f"Target({self.url})"


def build_url(labels: Labels, params: Mapping[str, list[str]]) -> str:
    """The scrape URL: scheme://address/path?params, `__param_*` labels overriding
    the first value of the configured parameter of that name."""
    merged = {k: list(v) for k, v in params.items()}
    for name, value in labels:
        if name.startswith(PARAM_PREFIX):
            k = name[len(PARAM_PREFIX) :]
            if merged.get(k):
                merged[k][0] = value
            else:
                merged[k] = [value]
    path = labels.get(METRICS_PATH_LABEL)
    if path and not path.startswith("/"):
        path = "/" + path
    url = f"{labels.get(SCHEME_LABEL)}://{labels.get(ADDRESS_LABEL)}{path}"
    if merged:
        url += "?" + urlencode(sorted(merged.items()), doseq=True)
    return url


@dataclass(slots=True)
class GroupTargets:
    """A target group resolved: scrapable targets, dropped ones, and failures."""

    active: list[Target]
    dropped: list[Labels]  # discovered labels of targets relabeling dropped
    failures: list[str]


def targets_from_group(
    cfg: Any, source: str, targets: Iterable[Labels], group_labels: Labels
) -> GroupTargets:
    """Resolve one discovery group. Never raises for a bad target: it is reported."""
    out = GroupTargets([], [], [])
    params = _params(cfg)
    for i, t in enumerate(targets):
        disc = discovered_labels(cfg, t, group_labels)
        try:
            final = populate_labels(cfg, disc)
        except TargetError as exc:
            out.failures.append(f"instance {i} in group {source}: {exc}")
            continue
        if final is None:
            out.dropped.append(disc)
        else:
            out.active.append(Target(final, disc, params))
    return out
