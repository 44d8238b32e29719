"""HTTP RED metrics on prometheus_client, and the exposition of ``/metrics``.

Metric names follow the seeds and common exporters:

* ``http_requests_total{method, route, status}``
* ``http_request_duration_seconds{method, route, status}`` (histogram)
* ``http_requests_in_progress{method}`` (the route is not known until routing ran)
* ``http_exceptions_total{method, route, exception}``
* ``vigil_app_info{service, version, environment}`` (always 1)

``route`` is the route *template* (``/items/{item_id}``), never the raw path, and
``<unmatched>`` for requests no route matched, so a scanner probing random URLs
cannot create unbounded series.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from vigil.sdk import multiprocess
from vigil.sdk.request_stats import (
    DURATION_HELP,
    IN_PROGRESS_HELP,
    REQUESTS_HELP,
    MultiProcessFlusher,
    RequestStats,
    RequestStatsCollector,
    flush_all,
)

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

UNMATCHED_ROUTE = "<unmatched>"
DEFAULT_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip

# Client-supplied methods outside this set are counted as "OTHER", so a client
# inventing methods cannot create unbounded series (as OpenTelemetry does).
KNOWN_METHODS = frozenset(
    ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")
)
OTHER_METHOD = "OTHER"

_cache: dict[int, HttpMetrics] = {}
_cache_lock = threading.Lock()
_extra_collectors: list[Any] = []


class HttpMetrics:
    """The HTTP metrics of one registry.

    Use :func:`http_metrics` rather than constructing this directly: one registry
    holds one set. Requests are counted in a lock-free per-thread accumulator
    (:mod:`vigil.sdk.request_stats`) that the registry reads at scrape time; in
    multiprocess mode its increments are flushed into prometheus_client metrics,
    whose values the other workers read from the shared directory.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        service: str,
        version: str = "",
        environment: str = "",
        buckets: Sequence[float] = DEFAULT_BUCKETS,
    ) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.registry = registry
        self.service = service
        self.stats = RequestStats(buckets)
        self.flusher: MultiProcessFlusher | None = None
        if multiprocess.multiprocess_dir():
            # The mmap-backed metrics other workers read; the exposition of this
            # registry is not used in multiprocess mode (see exposition_registry).
            labels = ["method", "route", "status"]
            self.flusher = MultiProcessFlusher(
                self.stats,
                Counter("http_requests_total", REQUESTS_HELP, labels, registry=registry),
                Histogram(
                    "http_request_duration_seconds",
                    DURATION_HELP,
                    labels,
                    buckets=buckets,
                    registry=registry,
                ),
                Gauge(
                    "http_requests_in_progress",
                    IN_PROGRESS_HELP,
                    ["method"],
                    registry=registry,
                    multiprocess_mode="livesum",
                ),
            )
            multiprocess.before_worker_exit(self.flusher.flush)
        else:
            registry.register(RequestStatsCollector(self.stats))
        self.exceptions = Counter(
            "http_exceptions_total",
            "Unhandled exceptions raised by request handlers, by exception type.",
            ["method", "route", "exception"],
            registry=registry,
        )
        info = Gauge(
            "vigil_app_info",
            "Static information about the instrumented service.",
            ["service", "version", "environment"],
            registry=registry,
            multiprocess_mode="max",
        )
        info.labels(service, version, environment).set(1)

    def begin(self, method: str) -> None:
        """Count a request as in progress; pair with :meth:`observe`. Thread-safe."""
        self.stats.begin(method if method in KNOWN_METHODS else OTHER_METHOD)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Record one finished request (and end its :meth:`begin`). Thread-safe."""
        self.stats.finish(
            method if method in KNOWN_METHODS else OTHER_METHOD, route, status, seconds
        )

    def count_exception(self, method: str, route: str, exception: str) -> None:
        """Count an unhandled exception of type name ``exception``."""
        method = method if method in KNOWN_METHODS else OTHER_METHOD
        self.exceptions.labels(method, route, exception).inc()


def http_metrics(
    registry: CollectorRegistry | None = None,
    *,
    service: str = "app",
    version: str = "",
    environment: str = "",
    buckets: Sequence[float] = DEFAULT_BUCKETS,
) -> HttpMetrics:
    """Return the :class:`HttpMetrics` of ``registry`` (default: the global one)."""
    from prometheus_client import REGISTRY

    reg = registry if registry is not None else REGISTRY
    with _cache_lock:
        found = _cache.get(id(reg))
        if found is None or found.registry is not reg:
            found = HttpMetrics(
                reg, service=service, version=version, environment=environment, buckets=buckets
            )
            _cache[id(reg)] = found
        return found


def register_collector(collector: Any) -> None:
    """Add a custom collector to what ``/metrics`` exposes, in every mode.

    In multiprocess mode prometheus_client cannot run custom collectors (they live
    in one process's memory); collectors registered here run in the worker that
    serves the scrape, which is right for values that are the same in every worker
    or come from outside (queue lengths, health checks, pool stats).
    """
    if collector not in _extra_collectors:
        _extra_collectors.append(collector)


def exposition_registry(registry: CollectorRegistry | None = None) -> CollectorRegistry:
    """Return the registry ``/metrics`` should render.

    Single-process: ``registry`` (default global) plus the custom collectors.
    Multiprocess: a fresh registry merging every worker's files (dead workers
    archived first) plus the custom collectors.
    """
    from prometheus_client import REGISTRY, CollectorRegistry

    path = multiprocess.multiprocess_dir()
    if path:
        flush_all()  # this worker's latest increments, before reading every worker's
        out = CollectorRegistry(auto_describe=False)
        out.register(multiprocess.VigilMultiProcessCollector(path))
    elif not _extra_collectors:
        return registry if registry is not None else REGISTRY
    else:
        out = CollectorRegistry(auto_describe=False)
        out.register(_Forward(registry if registry is not None else REGISTRY))
    for c in _extra_collectors:
        out.register(c)
    return out


class _Forward:
    """Expose another registry's metrics through a second registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Any:
        return self._registry.collect()


def render(
    registry: CollectorRegistry | None = None, accept: str | None = None
) -> tuple[bytes, str]:
    """Render ``/metrics``: returns ``(body, content_type)``.

    Honours an OpenMetrics ``Accept`` header. Collection errors are rendered as a
    ``vigil_sdk_scrape_error`` gauge rather than failing the scrape.
    """
    from prometheus_client import exposition

    try:
        reg = exposition_registry(registry)
        encoder, content_type = exposition.choose_encoder(accept or "")
        return encoder(reg), content_type
    except Exception as exc:  # misconfiguration must not take /metrics down
        reason = f"{type(exc).__name__}: {exc}".replace("\\", "\\\\").replace('"', '\\"')
        body = (
            "# HELP vigil_sdk_scrape_error 1 when collecting metrics failed.\n"
            "# TYPE vigil_sdk_scrape_error gauge\n"
            f'vigil_sdk_scrape_error{{reason="{reason}"}} 1\n'
        )
        return body.encode(), "text/plain; version=0.0.4; charset=utf-8"
