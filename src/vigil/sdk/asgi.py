"""Pure ASGI middleware: metrics, request ids and the ``/metrics``, ``/health``
and ``/ready`` endpoints, for FastAPI, Starlette and any other ASGI app.

It is a plain ASGI callable, not Starlette's ``BaseHTTPMiddleware``, so it adds
no task or memory stream per request and streams responses untouched.
"""

from __future__ import annotations

import asyncio
import json
from bisect import bisect_left as _bisect
from collections.abc import Awaitable, Callable, MutableMapping
from time import perf_counter
from typing import TYPE_CHECKING, Any

from vigil.sdk import context
from vigil.sdk.context import take_request_id
from vigil.sdk.metrics import KNOWN_METHODS, OTHER_METHOD, UNMATCHED_ROUTE, HttpMetrics, render

if TYPE_CHECKING:
    from vigil.sdk.access_log import AccessLog
    from vigil.sdk.health import HealthChecker

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Bounds the route-template cache: (route, root_path) pairs are few in practice.
_MAX_CACHED_ROUTES = 4096
_set_request_id = context.request_id_var.set
_reset_request_id = context.request_id_var.reset


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
        access_log: a :class:`vigil.sdk.access_log.AccessLog` to write one JSON
            line per request to (not for the observability endpoints).
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
        access_log: AccessLog | None = None,
    ) -> None:
        self.app = app
        self.access_log = access_log
        self.metrics = metrics
        self.stats = metrics.stats
        self.health = health
        self.endpoints: dict[str, Callable[[Scope], Awaitable[tuple[int, bytes, str]]]] = {}
        if metrics_path:
            self.endpoints[metrics_path] = self._metrics
        if health_path:
            self.endpoints[health_path] = self._health
        if ready_path:
            self.endpoints[ready_path] = self._ready
        self.header = request_id_header.lower().encode("latin-1")
        self._templates: dict[int, tuple[Any, tuple[str, str], str]] = {}

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

        # The hot path, in the fewest Python-level operations: no dict copies, the
        # header bytes reused as they came, ids from a pool, the route template
        # cached, the counts in the lock-free accumulator (one call each way).
        header = self.header
        raw_id = b""
        for name, value in scope.get("headers", ()):
            if name == header:
                raw_id = value[:128]
                break
        if raw_id:
            request_id = raw_id.decode("latin-1")
        else:
            request_id, raw_id = take_request_id()
        token = _set_request_id(request_id)
        rid_header = (header, raw_id)
        method = scope["method"]
        counted_method = method if method in KNOWN_METHODS else OTHER_METHOD
        path = scope["path"]  # before routing: a Mount rewrites the scope
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), rid_header]
            await send(message)

        # RequestStats.begin and .finish, inlined: the whole request runs on this
        # (the event loop's) thread, so the shard is this thread's throughout.
        stats = self.stats
        shard = stats.shard()
        begun = shard.begun
        begun[counted_method] = begun.get(counted_method, 0) + 1
        start = perf_counter()
        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            self.metrics.count_exception(method, self._route(scope), type(exc).__name__)
            raise
        finally:
            elapsed = perf_counter() - start
            route = self._route(scope)
            key = (counted_method, route, status)
            counts = shard.series.get(key)
            if counts is None:
                counts = stats.new_series(shard, key)
            counts[_bisect(stats.bounds, elapsed)] += 1
            counts[-1] += elapsed
            access_log = self.access_log
            if access_log is not None:
                access_log.log(method, route, path, status, elapsed, request_id)
            _reset_request_id(token)

    def _route(self, scope: Scope) -> str:
        route = scope.get("route")
        if route is None:
            return UNMATCHED_ROUTE
        # Keyed by identity (Starlette routes define __eq__ and are unhashable); the
        # route is kept in the value so a recycled id() cannot alias another route,
        # and the root paths it was seen under, since one router can be mounted at
        # several prefixes.
        found = self._templates.get(id(route))
        if found is not None and found[0] is route:
            prefixes = (scope.get("root_path", ""), scope.get("app_root_path", ""))
            if found[1] == prefixes:
                return found[2]
        template = route_template(scope)
        if len(self._templates) < _MAX_CACHED_ROUTES:
            prefixes = (scope.get("root_path", ""), scope.get("app_root_path", ""))
            self._templates[id(route)] = (route, prefixes, template)
        return template

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
