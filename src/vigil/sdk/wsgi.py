"""WSGI middleware (Flask, Django, any WSGI app): metrics, request ids and the
``/metrics``, ``/health`` and ``/ready`` endpoints.

WSGI middleware sees only the raw path, so the route template comes from the
framework: Flask's ``url_rule`` is put into ``environ["vigil.route"]`` by a
``before_request`` hook (:func:`instrument_flask`); other frameworks can pass a
``route_resolver(environ) -> str | None``. Anything unresolved is ``<unmatched>``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from vigil.sdk import context
from vigil.sdk.metrics import UNMATCHED_ROUTE, HttpMetrics, render

if TYPE_CHECKING:
    from vigil.sdk.access_log import AccessLog
    from vigil.sdk.health import HealthChecker

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]

ROUTE_KEY = "vigil.route"
EXCEPTION_KEY = "vigil.exception"
REQUEST_ID_KEY = "vigil.request_id"


class VigilWSGIMiddleware:
    """Measure every request of a WSGI app and serve the observability endpoints.

    Arguments mirror :class:`vigil.sdk.asgi.VigilASGIMiddleware`; ``route_resolver``
    maps an environ to a route template when the framework did not set
    ``environ["vigil.route"]``.
    """

    def __init__(
        self,
        app: WSGIApp,
        metrics: HttpMetrics,
        *,
        health: HealthChecker | None = None,
        route_resolver: Callable[[Environ], str | None] | None = None,
        metrics_path: str | None = "/metrics",
        health_path: str | None = "/health",
        ready_path: str | None = "/ready",
        request_id_header: str = "x-request-id",
        access_log: AccessLog | None = None,
    ) -> None:
        self.app = app
        self.access_log = access_log
        self.metrics = metrics
        self.health = health
        self.route_resolver = route_resolver
        self.endpoints: dict[str, Callable[[Environ], tuple[int, bytes, str]]] = {}
        if metrics_path:
            self.endpoints[metrics_path] = self._metrics
        if health_path:
            self.endpoints[health_path] = self._health
        if ready_path:
            self.endpoints[ready_path] = self._ready
        self.header = request_id_header
        self.environ_key = "HTTP_" + request_id_header.upper().replace("-", "_")

    def _route(self, environ: Environ) -> str:
        route = environ.get(ROUTE_KEY)
        if route is None and self.route_resolver is not None:
            try:
                route = self.route_resolver(environ)
            except Exception:
                route = None
        return route or UNMATCHED_ROUTE

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        endpoint = self.endpoints.get(environ.get("PATH_INFO", ""))
        if endpoint is not None:
            status, body, ctype = endpoint(environ)
            start_response(
                f"{status} {'OK' if status == 200 else 'Service Unavailable'}",
                [("Content-Type", ctype), ("Content-Length", str(len(body)))],
            )
            return [body]

        request_id = (environ.get(self.environ_key) or "")[:128] or context.new_request_id()
        token = context.request_id_var.set(request_id)
        environ[REQUEST_ID_KEY] = request_id
        method = environ.get("REQUEST_METHOD", "GET")
        status_box = [500]

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status_box[0] = int(status.split(" ", 1)[0])
            headers.append((self.header, request_id))
            return start_response(status, headers, exc_info)

        self.metrics.begin(method)
        started = time.perf_counter()
        try:
            result = self.app(environ, start)
        except Exception as exc:
            self._finish(environ, method, status_box[0], started, type(exc).__name__)
            context.request_id_var.reset(token)
            raise
        # The request id stays set until the body is consumed: streaming bodies log too.
        return _Closing(result, lambda: self._done(environ, method, status_box, started, token))

    def _done(
        self, environ: Environ, method: str, status_box: list[int], started: float, token: Any
    ) -> None:
        self._finish(environ, method, status_box[0], started, environ.get(EXCEPTION_KEY))
        try:
            context.request_id_var.reset(token)
        except ValueError:
            pass  # closed from another context (some servers close in a new thread)

    def _finish(
        self, environ: Environ, method: str, status: int, started: float, exc: str | None
    ) -> None:
        route = self._route(environ)
        if exc:
            self.metrics.count_exception(method, route, exc)
        elapsed = time.perf_counter() - started
        self.metrics.observe(method, route, status, elapsed)
        if self.access_log is not None:
            path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
            request_id = environ.get(REQUEST_ID_KEY)
            self.access_log.log(method, route, path, status, elapsed, request_id)

    def _metrics(self, environ: Environ) -> tuple[int, bytes, str]:
        body, ctype = render(self.metrics.registry, environ.get("HTTP_ACCEPT"))
        return 200, body, ctype

    def _health(self, environ: Environ) -> tuple[int, bytes, str]:
        if self.health is None:
            return 200, b'{"status": "healthy"}', "application/json"
        report = self.health.run()
        code = 503 if report["status"] == "unhealthy" else 200
        return code, json.dumps(report).encode(), "application/json"

    def _ready(self, environ: Environ) -> tuple[int, bytes, str]:
        if self.health is None:
            return 200, b'{"status": "ready"}', "application/json"
        report = self.health.run(critical_only=True)
        ready = report["status"] != "unhealthy"
        body = {"status": "ready" if ready else "not ready", "checks": report["components"]}
        return (200 if ready else 503), json.dumps(body).encode(), "application/json"


class _Closing:
    """Wrap a WSGI body so the request is recorded once it is fully sent: when
    the body is exhausted or when the server closes it, whichever comes first."""

    def __init__(self, body: Iterable[bytes], on_close: Callable[[], None]) -> None:
        self._body = body
        self._on_close = on_close
        self._recorded = False

    def __iter__(self) -> Iterator[bytes]:
        yield from self._body
        self._record()

    def _record(self) -> None:
        if not self._recorded:
            self._recorded = True
            self._on_close()

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._record()


def instrument_flask(app: Any, middleware_kwargs: dict[str, Any], metrics: HttpMetrics) -> Any:
    """Hook a Flask app: route templates from ``url_rule``, exceptions by type."""
    from flask import request

    @app.before_request
    def _vigil_route() -> None:
        rule = request.url_rule
        if rule is not None:
            request.environ[ROUTE_KEY] = rule.rule

    @app.teardown_request
    def _vigil_exception(exc: BaseException | None) -> None:
        if exc is not None:
            request.environ[EXCEPTION_KEY] = type(exc).__name__

    app.wsgi_app = VigilWSGIMiddleware(app.wsgi_app, metrics, **middleware_kwargs)
    return app
