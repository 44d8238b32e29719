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

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

UNMATCHED_ROUTE = "<unmatched>"
DEFAULT_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip

# Labelled children cached per (method, route, status): ``.labels()`` costs more
# than the increment itself. Bounded, since ``method`` comes from the client.
_MAX_CACHED_SERIES = 10_000

_cache: dict[int, HttpMetrics] = {}
_cache_lock = threading.Lock()
_extra_collectors: list[Any] = []


class HttpMetrics:
    """The HTTP metric family objects, created once per registry.

    Use :func:`http_metrics` rather than constructing this directly: creating the
    same metric names twice on one registry is an error in prometheus_client.
    The labelled children are cached, so removing series from these families
    (``.remove()``, ``.clear()``) while requests are served is not supported.
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
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests handled, by method, route template and status code.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency in seconds, from first byte in to last byte out.",
            ["method", "route", "status"],
            buckets=buckets,
            registry=registry,
        )
        self.in_progress = Gauge(
            "http_requests_in_progress",
            "HTTP requests currently being handled.",
            ["method"],
            registry=registry,
            multiprocess_mode="livesum",
        )
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
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._in_progress: dict[str, Any] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Record one finished request. Thread-safe."""
        key = (method, route, status)
        series = self._series.get(key)
        if series is None:
            code = str(status)
            series = (
                self.requests.labels(method, route, code),
                self.duration.labels(method, route, code),
            )
            if len(self._series) < _MAX_CACHED_SERIES:
                self._series[key] = series
        series[0].inc()
        series[1].observe(seconds)

    def in_progress_for(self, method: str) -> Any:
        """Return the ``http_requests_in_progress`` child of ``method`` (cached)."""
        child = self._in_progress.get(method)
        if child is None:
            child = self.in_progress.labels(method)
            if len(self._in_progress) < _MAX_CACHED_SERIES:
                self._in_progress[method] = child
        return child


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
