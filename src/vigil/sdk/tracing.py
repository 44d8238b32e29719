"""OpenTelemetry tracing set up for Vigil's OTLP/HTTP endpoint in one call.

Requires the ``sdk`` extra (``opentelemetry-sdk`` and
``opentelemetry-exporter-otlp-proto-http``). Library instrumentations (FastAPI,
requests, httpx, SQLAlchemy, Redis, psycopg) are enabled when their
``opentelemetry-instrumentation-*`` package is installed and skipped otherwise.

Pre-fork servers (gunicorn, ``uvicorn --workers``): a ``BatchSpanProcessor``'s
export thread does not survive ``fork``, so spans recorded in a worker would
silently never leave it. :func:`setup_tracing` therefore registers an
``os.register_at_fork`` hook that builds a fresh provider in every child; calling
it in the master (e.g. a gunicorn config file or with ``--preload``) is safe.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from typing import Any

_state: dict[str, Any] = {}
_lock = threading.Lock()

# (module providing the instrumentor, class name, what it needs importable)
_INSTRUMENTORS: tuple[tuple[str, str, str], ...] = (
    ("opentelemetry.instrumentation.requests", "RequestsInstrumentor", "requests"),
    ("opentelemetry.instrumentation.httpx", "HTTPXClientInstrumentor", "httpx"),
    ("opentelemetry.instrumentation.sqlalchemy", "SQLAlchemyInstrumentor", "sqlalchemy"),
    ("opentelemetry.instrumentation.redis", "RedisInstrumentor", "redis"),
    ("opentelemetry.instrumentation.psycopg", "PsycopgInstrumentor", "psycopg"),
    ("opentelemetry.instrumentation.psycopg2", "Psycopg2Instrumentor", "psycopg2"),
)


def setup_tracing(
    service: str,
    *,
    endpoint: str = "http://127.0.0.1:9090/v1/traces",
    version: str = "",
    environment: str = "",
    app: Any = None,
    headers: dict[str, str] | None = None,
    sample_ratio: float = 1.0,
    instrument_libraries: bool = True,
    resource_attributes: dict[str, Any] | None = None,
    max_export_batch_size: int = 512,
    schedule_delay_ms: int = 1000,
) -> Any:
    """Install a global ``TracerProvider`` exporting OTLP/HTTP protobuf to Vigil.

    Args:
        service, version, environment: the resource attributes ``service.name``,
            ``service.version`` and ``deployment.environment``.
        endpoint: full OTLP traces URL.
        app: a FastAPI app to trace: FastAPI's native telemetry when it has one
            (see :func:`instrument_app`), else the contrib instrumentor
            (``opentelemetry-instrumentation-fastapi``).
        headers: extra HTTP headers for the exporter.
        sample_ratio: parent-based ratio sampling; 1.0 keeps every trace.
        instrument_libraries: auto-instrument the installed client libraries.
        resource_attributes: more resource attributes.
        max_export_batch_size, schedule_delay_ms: ``BatchSpanProcessor`` tuning.

    Returns the provider. Raises ``ImportError`` with the extra to install when the
    OpenTelemetry SDK is missing.
    """
    try:
        from opentelemetry import trace  # noqa: F401
        from opentelemetry.sdk.trace import TracerProvider  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "vigil.sdk.setup_tracing needs OpenTelemetry: pip install 'vigil[sdk]'"
        ) from exc
    config = {
        "service": service,
        "endpoint": endpoint,
        "version": version,
        "environment": environment,
        "headers": dict(headers or {}),
        "sample_ratio": sample_ratio,
        "resource_attributes": dict(resource_attributes or {}),
        "max_export_batch_size": max_export_batch_size,
        "schedule_delay_ms": schedule_delay_ms,
    }
    with _lock:
        _state["config"] = config
        provider = _install_provider(config)
        if not _state.get("fork_hook"):
            os.register_at_fork(after_in_child=_after_fork)
            _state["fork_hook"] = True
    if instrument_libraries:
        instrument_installed_libraries()
    if app is not None:
        instrument_app(app)
    return provider


def _build_provider(config: dict[str, Any]) -> Any:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    attrs: dict[str, Any] = {"service.name": config["service"]}
    if config["version"]:
        attrs["service.version"] = config["version"]
    if config["environment"]:
        attrs["deployment.environment"] = config["environment"]
    attrs.update(config["resource_attributes"])
    provider = TracerProvider(
        resource=Resource.create(attrs),
        sampler=ParentBased(TraceIdRatioBased(config["sample_ratio"])),
    )
    exporter = OTLPSpanExporter(endpoint=config["endpoint"], headers=config["headers"])
    provider.add_span_processor(
        BatchSpanProcessor(
            exporter,
            max_export_batch_size=config["max_export_batch_size"],
            schedule_delay_millis=config["schedule_delay_ms"],
        )
    )
    return provider


def _install_provider(config: dict[str, Any]) -> Any:
    from opentelemetry import trace

    provider = _build_provider(config)
    _state["provider"] = provider
    # The global provider can be set only once per process; route through a proxy
    # we own so a post-fork rebuild can swap the real provider underneath.
    proxy = _state.get("proxy")
    if proxy is None:
        proxy = _SwappableProvider(provider)
        _state["proxy"] = proxy
        trace.set_tracer_provider(proxy)  # type: ignore[arg-type]  # a TracerProvider proxy
    else:
        proxy.swap(provider)
    return provider


def _after_fork() -> None:
    config = _state.get("config")
    if config is None:
        return
    try:
        _install_provider(config)
    except Exception:
        pass  # a worker must boot even if tracing cannot


def get_provider() -> Any:
    """Return this process's SDK ``TracerProvider`` (``None`` before setup)."""
    return _state.get("provider")


def shutdown_tracing(timeout_ms: int = 5000) -> None:
    """Flush pending spans and stop the exporter of this process."""
    provider = _state.get("provider")
    if provider is not None:
        provider.force_flush(timeout_ms)
        provider.shutdown()


def instrument_installed_libraries() -> list[str]:
    """Enable each known OpenTelemetry instrumentation whose packages are installed.

    Returns the names of the instrumentors enabled. Missing packages are skipped
    silently; a failing instrumentor is skipped too (tracing must not break boot).
    """
    enabled = []
    for module, cls_name, target in _INSTRUMENTORS:
        try:
            importlib.import_module(target)
            instrumentor = getattr(importlib.import_module(module), cls_name)()
            if not instrumentor.is_instrumented_by_opentelemetry:
                instrumentor.instrument()
            enabled.append(cls_name)
        except Exception:
            continue
    return enabled


def instrument_app(app: Any) -> bool:
    """Make sure a FastAPI app records server spans; ``False`` if that is not possible.

    FastAPI versions with native OpenTelemetry support (``fastapi.telemetry``) trace
    every request on their own once a global tracer provider is set, so nothing is
    added: the contrib ``FastAPIInstrumentor`` would insert a second ASGI layer that
    replaces the native spans and costs more per request. Older FastAPI versions get
    the contrib instrumentor (``opentelemetry-instrumentation-fastapi``) when it is
    installed.
    """
    if has_native_telemetry(app):
        return True
    try:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    except ImportError:
        return False
    try:
        FastAPIInstrumentor.instrument_app(app)
    except Exception:
        return False
    return True


def has_native_telemetry(app: Any) -> bool:
    """Whether ``app`` is a FastAPI app that creates its own OpenTelemetry spans."""
    return hasattr(app, "_native_telemetry") and "fastapi.telemetry" in sys.modules


class _SwappableProvider:
    """A ``TracerProvider`` facade whose target can be replaced after ``fork``.

    Tracers handed out before a swap keep working: they ask the facade for the
    current real tracer on every span.
    """

    def __init__(self, provider: Any) -> None:
        self._provider = provider

    def swap(self, provider: Any) -> None:
        self._provider = provider

    def get_tracer(self, *args: Any, **kwargs: Any) -> Any:
        return _SwappableTracer(self, args, kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._provider, name)


class _SwappableTracer:
    def __init__(self, owner: _SwappableProvider, args: Any, kwargs: Any) -> None:
        self._owner = owner
        self._args = args
        self._kwargs = kwargs
        self._cache: tuple[Any, Any] | None = None

    def _tracer(self) -> Any:
        provider = self._owner._provider
        if self._cache is None or self._cache[0] is not provider:
            self._cache = (provider, provider.get_tracer(*self._args, **self._kwargs))
        return self._cache[1]

    def start_span(self, *args: Any, **kwargs: Any) -> Any:
        return self._tracer().start_span(*args, **kwargs)

    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Any:
        return self._tracer().start_as_current_span(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tracer(), name)
