"""The scrape manager's own metrics, with Prometheus' names (`prometheus_target_*`).

Counters are plain ints under one lock: they are bumped once per scrape, not per
sample, so contention is negligible. `samples()` renders them as
``(name, labels, value, type, help)`` tuples for the self-monitoring exporter, whose
types are gauge/counter/untyped: the interval-length summary (a summary in
Prometheus) is published as untyped quantile, _sum and _count series.
"""

from __future__ import annotations

import threading
from collections import defaultdict, deque

import numpy as np

MetricSample = tuple[str, dict[str, str], float, str, str]

_COUNTERS: dict[str, str] = {
    "prometheus_target_scrapes_exceeded_sample_limit_total": "Total number of scrapes that hit the sample limit and were rejected.",
    "prometheus_target_scrapes_exceeded_body_size_limit_total": "Total number of scrapes that hit the body size limit.",
    "prometheus_target_scrapes_sample_duplicate_timestamp_total": "Total number of samples rejected due to duplicate timestamps but different values.",
    "prometheus_target_scrapes_sample_out_of_order_total": "Total number of samples rejected due to not being out of the expected order.",
    "prometheus_target_scrapes_sample_out_of_bounds_total": "Total number of samples rejected due to timestamp falling outside of the time bounds.",
    "prometheus_target_scrape_pool_exceeded_label_limits_total": "Total number of times scrape pools hit the label limits, during sync or config reload.",
    "prometheus_target_scrape_pool_exceeded_target_limit_total": "Total number of times scrape pools hit the target limit, during sync or config reload.",
    "prometheus_target_scrape_pool_reloads_total": "Total number of scrape pool reloads.",
    "prometheus_target_scrape_pool_reloads_failed_total": "Total number of failed scrape pool reloads.",
    "prometheus_target_sync_failed_total": "Total number of target sync failures.",
}

_QUANTILES = (0.01, 0.05, 0.5, 0.9, 0.99)
_WINDOW = 1024  # recent observations kept per interval for the quantiles


class ScrapeMetrics:
    """Thread-safe counters and the interval-length summary."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, float] = dict.fromkeys(_COUNTERS, 0.0)
        self._intervals: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=_WINDOW))
        self._interval_sum: dict[str, float] = defaultdict(float)
        self._interval_count: dict[str, int] = defaultdict(int)

    def inc(self, name: str, by: float = 1.0) -> None:
        if by:
            with self._lock:
                self._counts[name] = self._counts.get(name, 0.0) + by

    def get(self, name: str) -> float:
        with self._lock:
            return self._counts.get(name, 0.0)

    def observe_interval(self, interval: str, seconds: float) -> None:
        """Record the actual time between two scrapes of a target (seconds)."""
        with self._lock:
            self._intervals[interval].append(seconds)
            self._interval_sum[interval] += seconds
            self._interval_count[interval] += 1

    def samples(self, pool_targets: dict[str, int] | None = None) -> list[MetricSample]:
        out: list[MetricSample] = []
        with self._lock:
            for name, value in self._counts.items():
                out.append((name, {}, value, "counter", _COUNTERS.get(name, name)))
            help_ = "Actual intervals between scrapes."
            for interval, window in self._intervals.items():
                arr = np.fromiter(window, dtype=np.float64, count=len(window))
                for q in _QUANTILES:
                    v = float(np.quantile(arr, q)) if len(arr) else float("nan")
                    out.append(
                        (
                            "prometheus_target_interval_length_seconds",
                            {"interval": interval, "quantile": str(q)},
                            v,
                            "untyped",
                            help_,
                        )
                    )
                out.append(
                    (
                        "prometheus_target_interval_length_seconds_sum",
                        {"interval": interval},
                        self._interval_sum[interval],
                        "untyped",
                        help_,
                    )
                )
                out.append(
                    (
                        "prometheus_target_interval_length_seconds_count",
                        {"interval": interval},
                        float(self._interval_count[interval]),
                        "untyped",
                        help_,
                    )
                )
        for pool, n in sorted((pool_targets or {}).items()):
            out.append(
                (
                    "prometheus_target_scrape_pool_targets",
                    {"scrape_job": pool},
                    float(n),
                    "gauge",
                    "Current number of targets in this scrape pool.",
                )
            )
        return out
