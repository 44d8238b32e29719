"""Vigil's HTTP layer: the Prometheus API v1, remote write, federation, import,
lifecycle endpoints and self-metrics, as one Starlette application.

`create_app(ctx)` is the only entry point; `ctx` (a `WebContext`) carries every
dependency as a protocol or callable, so this package imports no other subsystem.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import admin, federate, prom_api, query_api, remote_write, self_metrics
from .context import MetricTuple, WebContext

__all__ = ["WebContext", "create_app"]


class AccessMiddleware:
    """The single place every request passes: request metrics now, and the hook
    where authentication and roles will be enforced (read / write / admin)."""

    def __init__(self, app: ASGIApp, stats: self_metrics.HttpStats) -> None:
        self.app = app
        self.stats = stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            handler = getattr(route, "path", None) or "other"
            self.stats.observe(handler, status, time.perf_counter() - t0)


def create_app(ctx: WebContext, extra_routes: Sequence[BaseRoute] = ()) -> Starlette:
    """The ASGI app serving every endpoint listed in docs/http-api.md.

    `extra_routes` are other subsystems' endpoints (e.g. /api/v1/rules) served
    behind the same middleware."""
    q = query_api.make_handlers(ctx)
    p = prom_api.make_handlers(ctx)
    a = admin.make_handlers(ctx)
    receiver = remote_write.RemoteWriteReceiver(ctx.storage)
    http_stats = self_metrics.HttpStats()

    def rw_metrics() -> list[MetricTuple]:
        return [
            (
                "vigil_remote_write_requests_total",
                {},
                float(receiver.requests_total),
                "counter",
                "Remote-write requests stored.",
            ),
            (
                "vigil_remote_write_samples_total",
                {},
                float(receiver.samples_total),
                "counter",
                "Samples stored from remote-write requests.",
            ),
            (
                "vigil_remote_write_rejected_samples_total",
                {},
                float(receiver.rejected_total),
                "counter",
                "Remote-write samples the store refused (out of order, duplicate, ...).",
            ),
        ]

    get_post = ["GET", "POST"]
    v1 = "/api/v1"
    routes = [
        Route(f"{v1}/query", q["query"], methods=get_post),
        Route(f"{v1}/query_range", q["query_range"], methods=get_post),
        Route(f"{v1}/query_exemplars", q["query_exemplars"], methods=get_post),
        Route(f"{v1}/format_query", q["format_query"], methods=get_post),
        Route(f"{v1}/series", p["series"], methods=get_post),
        Route(f"{v1}/labels", p["labels"], methods=get_post),
        Route(f"{v1}/label/{{name:str}}/values", p["label_values"], methods=["GET"]),
        Route(f"{v1}/metadata", p["metadata"], methods=["GET"]),
        Route(f"{v1}/targets", p["targets"], methods=["GET"]),
        Route(f"{v1}/status/config", p["status_config"], methods=["GET"]),
        Route(f"{v1}/status/flags", p["status_flags"], methods=["GET"]),
        Route(f"{v1}/status/buildinfo", p["status_buildinfo"], methods=["GET"]),
        Route(f"{v1}/status/runtimeinfo", p["status_runtimeinfo"], methods=["GET"]),
        Route(f"{v1}/status/tsdb", p["status_tsdb"], methods=["GET"]),
        Route(f"{v1}/status/walreplay", p["status_walreplay"], methods=["GET"]),
        Route(f"{v1}/write", remote_write.make_handler(ctx, receiver), methods=["POST"]),
        Route(f"{v1}/import", a["import"], methods=["POST"]),
        Route("/federate", federate.make_handler(ctx), methods=["GET", "POST"]),
        Route(
            "/metrics",
            self_metrics.make_handler(ctx, [http_stats.samples, rw_metrics]),
            methods=["GET"],
        ),
        Route("/-/healthy", a["healthy"], methods=["GET", "HEAD"]),
        Route("/-/ready", a["ready"], methods=["GET", "HEAD"]),
        Route("/-/reload", a["reload"], methods=["POST", "PUT"]),
        *extra_routes,
    ]
    app = Starlette(routes=routes, middleware=[Middleware(AccessMiddleware, stats=http_stats)])
    app.state.vigil = ctx
    app.state.remote_write = receiver
    return app
