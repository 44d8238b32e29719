"""/metrics: Vigil's own metrics in the Prometheus text format.

prometheus_client supplies the process, platform and GC collectors; the
`WebContext.self_metrics` callables and the HTTP layer's own counters are
published through one custom collector, evaluated at scrape time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    UnknownMetricFamily,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from .context import MetricTuple, WebContext

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class HttpStats:
    """Request counts and durations per (route, code). Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count: dict[tuple[str, str], int] = {}
        self._seconds: dict[str, float] = {}

    def observe(self, handler: str, code: int, seconds: float) -> None:
        with self._lock:
            key = (handler, str(code))
            self._count[key] = self._count.get(key, 0) + 1
            self._seconds[handler] = self._seconds.get(handler, 0.0) + seconds

    def samples(self) -> list[MetricTuple]:
        with self._lock:
            out: list[MetricTuple] = [
                (
                    "prometheus_http_requests_total",
                    {"handler": h, "code": c},
                    float(n),
                    "counter",
                    "Counter of HTTP requests.",
                )
                for (h, c), n in sorted(self._count.items())
            ]
            out += [
                (
                    "vigil_http_request_duration_seconds_total",
                    {"handler": h},
                    s,
                    "counter",
                    "Total time spent answering HTTP requests.",
                )
                for h, s in sorted(self._seconds.items())
            ]
        return out


class _TupleCollector:
    def __init__(self, sources: Sequence[Callable[[], Sequence[MetricTuple]]]) -> None:
        self._sources = sources

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Any] = {}
        for source in self._sources:
            for name, labels, value, mtype, help_text in source():
                fam = families.get(name)
                if fam is None:
                    fam = _family(name, mtype, help_text, sorted(labels))
                    families[name] = fam
                fam.add_metric([labels.get(k, "") for k in fam._label_names], float(value))
        yield from families.values()


def _family(name: str, mtype: str, help_text: str, label_names: list[str]) -> Any:
    if mtype == "counter":
        fam: Any = CounterMetricFamily(name, help_text, labels=label_names)
    elif mtype == "gauge":
        fam = GaugeMetricFamily(name, help_text, labels=label_names)
    else:
        fam = UnknownMetricFamily(name, help_text, labels=label_names)
    fam._label_names = label_names
    return fam


def build_registry(sources: Sequence[Callable[[], Sequence[MetricTuple]]]) -> CollectorRegistry:
    """A private registry: process/platform/GC metrics plus the given sources."""
    reg = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=reg)
    PlatformCollector(registry=reg)
    GCCollector(registry=reg)
    reg.register(_TupleCollector(sources))  # type: ignore[arg-type]
    return reg


def make_handler(ctx: WebContext, extra: Sequence[Callable[[], Sequence[MetricTuple]]]) -> Any:
    registry = build_registry([*ctx.self_metrics, *extra])

    async def metrics(request: Request) -> Response:
        body = await run_in_threadpool(generate_latest, registry)
        return Response(body, media_type=CONTENT_TYPE)

    return metrics
