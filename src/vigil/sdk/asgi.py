"""Pure ASGI middleware: metrics, request ids and the ``/metrics``, ``/health``
and ``/ready`` endpoints, for FastAPI, Starlette and any other ASGI app.

It is a plain ASGI callable, not Starlette's ``BaseHTTPMiddleware``, so it adds
no task or memory stream per request and streams responses untouched.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from vigil.sdk import context
from vigil.sdk.metrics import UNMATCHED_ROUTE, HttpMetrics, render

if TYPE_CHECKING:
    from vigil.sdk.health import HealthChecker

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def route_template(scope: Scope) -> str:
    """Return the route template Starlette/FastAPI matched, or ``<unmatched>``.

    Starlette's router stores the matched route in ``scope["route"]``; for routes
    inside a ``Mount`` the mount's concrete prefix (``root_path`` beyond the app's
    own) is prepended.
    """
    route = scope.get("route")
    path = getattr(route, "path", None)
    if not isinstance(path, str):
        return UNMATCHED_ROUTE
    prefix = scope.get("root_path", "")[len(scope.get("app_root_path", "")) :]
    return prefix + path if prefix and not path.startswith(prefix) else path


class VigilASGIMiddleware:
    """Measure every HTTP request and serve the observability endpoints.

    Args:
        app: the wrapped ASGI application.
        metrics: where to record (see :func:`vigil.sdk.metrics.http_metrics`).
        health: checker behind ``/health`` and ``/ready``; without one ``/health``
            answers ``{"status": "healthy"}`` while the process can serve.
        metrics_path, health_path, ready_path: endpoint paths; ``None`` disables.
        request_id_header: incoming header reused as request id (a fresh one is
            made otherwise) and echoed on the response.
    """

    def __init__(
        self,
        app: ASGIApp,
        metrics: HttpMetrics,
        *,
        health: HealthChecker | None = None,
        metrics_path: str | None = "/metrics",
        health_path: str | None = "/health",
        ready_path: str | None = "/ready",
        request_id_header: str = "x-request-id",
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.health = health
        self.endpoints: dict[str, Callable[[Scope], Awaitable[tuple[int, bytes, str]]]] = {}
        if metrics_path:
            self.endpoints[metrics_path] = self._metrics
        if health_path:
            self.endpoints[health_path] = self._health
        if ready_path:
            self.endpoints[ready_path] = self._ready
        self.header = request_id_header.lower().encode("latin-1")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        endpoint = self.endpoints.get(scope["path"])
        if endpoint is not None:
            status, body, ctype = await endpoint(scope)
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [(b"content-type", ctype.encode("latin-1"))],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return

        request_id = None
        for name, value in scope.get("headers", ()):
            if name == self.header:
                request_id = value.decode("latin-1")[:128]
                break
        if not request_id:
            request_id = context.new_request_id()
        token = context.request_id_var.set(request_id)
        rid_header = (self.header, request_id.encode("latin-1"))
        method = scope["method"]
        metrics = self.metrics
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), rid_header]
            await send(message)

        in_progress = metrics.in_progress.labels(method)
        in_progress.inc()
        start = time.perf_counter()
        try:
            await self.app(scope, receive, send_wrapper)
        except BaseException as exc:
            if isinstance(exc, Exception):
                metrics.exceptions.labels(method, route_template(scope), type(exc).__name__).inc()
            raise
        finally:
            metrics.observe(method, route_template(scope), status, time.perf_counter() - start)
            in_progress.dec()
            context.request_id_var.reset(token)

    async def _metrics(self, scope: Scope) -> tuple[int, bytes, str]:
        accept = ""
        for name, value in scope.get("headers", ()):
            if name == b"accept":
                accept = value.decode("latin-1")
        loop = asyncio.get_running_loop()
        # Merging multiprocess files is file I/O: keep it off the event loop.
        body, ctype = await loop.run_in_executor(None, render, self.metrics.registry, accept)
        return 200, body, ctype

    async def _health(self, scope: Scope) -> tuple[int, bytes, str]:
        if self.health is None:
            return 200, b'{"status": "healthy"}', "application/json"
        report = await self.health.run_async()
        code = 503 if report["status"] == "unhealthy" else 200
        return code, json.dumps(report).encode(), "application/json"

    async def _ready(self, scope: Scope) -> tuple[int, bytes, str]:
        if self.health is None:
            return 200, b'{"status": "ready"}', "application/json"
        report = await self.health.run_async(critical_only=True)
        ready = report["status"] != "unhealthy"
        body = {"status": "ready" if ready else "not ready", "checks": report["components"]}
        return (200 if ready else 503), json.dumps(body).encode(), "application/json"
