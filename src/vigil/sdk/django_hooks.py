"""Django support for :func:`vigil.sdk.instrument`: route templates and exceptions,
under WSGI (``get_wsgi_application()``) and ASGI (``get_asgi_application()``).

The middleware sees only the raw path. Django knows the matched pattern once it
resolved the URL (``request.resolver_match.route``, e.g. ``items/<int:pk>/``), so
the handler's ``get_response`` (``get_response_async`` under ASGI) is wrapped to
copy it into the WSGI environ or the ASGI scope, which Django's request shares
with the middleware. Unhandled exceptions never reach the middleware either
(Django turns them into 500 responses); the ``got_request_exception`` signal, sent
while the exception is being handled, records its type instead. Nothing has to be
added to ``MIDDLEWARE``.
"""

from __future__ import annotations

import sys
from typing import Any

from vigil.sdk.asgi import Scope, VigilASGIMiddleware
from vigil.sdk.metrics import UNMATCHED_ROUTE, HttpMetrics
from vigil.sdk.wsgi import EXCEPTION_KEY, ROUTE_KEY, VigilWSGIMiddleware

# Under ASGI the middleware puts its metrics into the scope, so the exception
# signal (which only gets the request) can count into the right ones.
METRICS_KEY = "vigil.metrics"


def _route_of(request: Any) -> str | None:
    match = getattr(request, "resolver_match", None)
    route = getattr(match, "route", None)
    # Django patterns have no leading slash ("" is the root pattern); the templates
    # of the other frameworks do.
    return "/" + route if isinstance(route, str) else None


def instrument_django(
    handler: Any, middleware_kwargs: dict[str, Any], metrics: HttpMetrics
) -> VigilWSGIMiddleware:
    """Wrap Django's ``WSGIHandler``; use the returned object as the WSGI app."""
    get_response = handler.get_response

    def get_response_with_route(request: Any) -> Any:
        response = get_response(request)
        route = _route_of(request)
        if route is not None:
            request.environ[ROUTE_KEY] = route
        return response

    handler.get_response = get_response_with_route
    _connect_exception_signal()
    return VigilWSGIMiddleware(handler, metrics, **middleware_kwargs)


class DjangoASGIMiddleware(VigilASGIMiddleware):
    """:class:`VigilASGIMiddleware` taking the route from Django's resolver."""

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope[METRICS_KEY] = self.metrics
        await super().__call__(scope, receive, send)

    def _route(self, scope: Scope) -> str:
        route = scope.get(ROUTE_KEY)
        return route if isinstance(route, str) else UNMATCHED_ROUTE


def instrument_django_asgi(
    handler: Any, middleware_kwargs: dict[str, Any], metrics: HttpMetrics
) -> DjangoASGIMiddleware:
    """Wrap Django's ``ASGIHandler``; use the returned object as the ASGI app."""
    get_response_async = handler.get_response_async

    async def get_response_async_with_route(request: Any) -> Any:
        response = await get_response_async(request)
        route = _route_of(request)
        if route is not None:
            request.scope[ROUTE_KEY] = route
        return response

    handler.get_response_async = get_response_async_with_route
    _connect_exception_signal()
    return DjangoASGIMiddleware(handler, metrics, **middleware_kwargs)


def _connect_exception_signal() -> None:
    from django.core.signals import got_request_exception

    got_request_exception.connect(_record_exception, weak=False, dispatch_uid="vigil.sdk")


def _record_exception(sender: Any, request: Any = None, **kwargs: Any) -> None:
    exc = sys.exc_info()[1]
    if exc is None:
        return
    environ = getattr(request, "environ", None)
    scope = getattr(request, "scope", None)
    if isinstance(scope, dict):  # ASGI: count now, the middleware never sees it
        metrics = scope.get(METRICS_KEY)
        if isinstance(metrics, HttpMetrics):
            method = str(getattr(request, "method", "") or scope.get("method", ""))
            metrics.count_exception(method, _route_of(request) or UNMATCHED_ROUTE,
                                    type(exc).__name__)  # fmt: skip
    elif isinstance(environ, dict):  # WSGI: the middleware counts it when done
        environ[EXCEPTION_KEY] = type(exc).__name__
