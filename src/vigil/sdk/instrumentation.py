"""``instrument(app, service=...)``: one call to make a web app observable."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from vigil.sdk import multiprocess
from vigil.sdk.metrics import DEFAULT_BUCKETS, http_metrics

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from vigil.sdk.access_log import AccessLog
    from vigil.sdk.health import HealthChecker

App = TypeVar("App")


def instrument(
    app: App,
    *,
    service: str,
    version: str = "",
    environment: str = "",
    registry: CollectorRegistry | None = None,
    health: HealthChecker | None = None,
    buckets: Sequence[float] = DEFAULT_BUCKETS,
    metrics_path: str | None = "/metrics",
    health_path: str | None = "/health",
    ready_path: str | None = "/ready",
    request_id_header: str = "x-request-id",
    route_resolver: Callable[[dict[str, Any]], str | None] | None = None,
    access_log: bool | AccessLog = False,
) -> App:
    """Add HTTP metrics, request ids and ``/metrics``, ``/health``, ``/ready``.

    Works with FastAPI and Starlette (middleware added in place), Flask (hooks plus
    a ``wsgi_app`` wrapper, in place), Django (the ``get_wsgi_application()`` or
    ``get_asgi_application()`` handler, wrapped: route templates from the URL
    resolver, nothing to add to ``MIDDLEWARE``) and any other ASGI or WSGI callable (wrapped: use the return
    value). Always use the returned object as your app.

    Args:
        app: the application.
        service, version, environment: exported as ``vigil_app_info``.
        registry: prometheus_client registry for the HTTP metrics (default global).
        health: a :class:`vigil.sdk.health.HealthChecker` behind ``/health`` (full
            report, 503 when unhealthy) and ``/ready`` (critical checks only).
        buckets: latency histogram buckets in seconds.
        metrics_path, health_path, ready_path: endpoint paths; ``None`` disables one.
        request_id_header: header read for an incoming request id and echoed back.
        route_resolver: for plain WSGI apps, maps an environ to a route template.
        access_log: ``True`` writes one JSON line per request through the access log
            made by :func:`vigil.sdk.setup_access_log` (or a new one on stderr);
            an :class:`vigil.sdk.access_log.AccessLog` is used as is. Much cheaper
            than a stdlib log call per request: no ``LogRecord``, buffered writes.

    In multiprocess mode (``PROMETHEUS_MULTIPROC_DIR`` set), the worker also
    registers an exit hook that archives its metric files (see
    :mod:`vigil.sdk.multiprocess`).
    """
    metrics = http_metrics(
        registry, service=service, version=version, environment=environment, buckets=buckets
    )
    if multiprocess.multiprocess_dir():
        multiprocess.register_worker_exit()
    common: dict[str, Any] = {
        "health": health,
        "metrics_path": metrics_path,
        "health_path": health_path,
        "ready_path": ready_path,
        "request_id_header": request_id_header,
    }
    if access_log:
        from vigil.sdk.access_log import resolve_access_log

        common["access_log"] = resolve_access_log(access_log, service)
    kind = _kind(app)
    if kind == "starlette":
        from vigil.sdk.asgi import VigilASGIMiddleware

        app.add_middleware(VigilASGIMiddleware, metrics=metrics, **common)  # type: ignore[attr-defined]
        return app
    if kind == "flask":
        from vigil.sdk.wsgi import instrument_flask

        return instrument_flask(app, common, metrics)  # type: ignore[no-any-return]
    if kind == "django":
        from vigil.sdk.django_hooks import instrument_django

        return instrument_django(app, common, metrics)  # type: ignore[return-value]
    if kind == "django-asgi":
        from vigil.sdk.django_hooks import instrument_django_asgi

        return instrument_django_asgi(app, common, metrics)  # type: ignore[return-value]
    if kind == "asgi":
        from vigil.sdk.asgi import VigilASGIMiddleware

        return VigilASGIMiddleware(app, metrics, **common)  # type: ignore[arg-type,return-value]
    if kind == "wsgi":
        from vigil.sdk.wsgi import VigilWSGIMiddleware

        return VigilWSGIMiddleware(app, metrics, route_resolver=route_resolver, **common)  # type: ignore[arg-type,return-value]
    raise TypeError(f"instrument() needs an ASGI or WSGI application, got {type(app).__name__}")


def _kind(app: Any) -> str:
    for cls in type(app).__mro__:
        mod = cls.__module__
        if cls.__name__ == "Starlette" and mod.startswith("starlette"):
            return "starlette"
        if cls.__name__ == "Flask" and mod.startswith("flask"):
            return "flask"
        if cls.__name__ == "WSGIHandler" and mod.startswith("django."):
            return "django"
        if cls.__name__ == "ASGIHandler" and mod.startswith("django."):
            return "django-asgi"
    if not callable(app):
        return "unknown"
    import inspect

    call = app if inspect.isfunction(app) or inspect.ismethod(app) else type(app).__call__
    if inspect.iscoroutinefunction(call):
        return "asgi"
    return "wsgi"
