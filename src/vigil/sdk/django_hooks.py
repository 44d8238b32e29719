"""Django support for :func:`vigil.sdk.instrument`: route templates and exceptions.

The WSGI middleware sees only the raw path. Django knows the matched pattern once
it resolved the URL (``request.resolver_match.route``, e.g. ``items/<int:pk>/``),
so the handler's ``get_response`` is wrapped to copy it into the WSGI environ,
which Django's request shares with the middleware. Unhandled exceptions never
reach the middleware either (Django turns them into 500 responses); the
``got_request_exception`` signal, sent while the exception is being handled,
records its type instead. Nothing has to be added to ``MIDDLEWARE``.
"""

from __future__ import annotations

import sys
from typing import Any

from vigil.sdk.metrics import HttpMetrics
from vigil.sdk.wsgi import EXCEPTION_KEY, ROUTE_KEY, VigilWSGIMiddleware


def instrument_django(
    handler: Any, middleware_kwargs: dict[str, Any], metrics: HttpMetrics
) -> VigilWSGIMiddleware:
    """Wrap Django's ``WSGIHandler``; use the returned object as the WSGI app."""
    from django.core.signals import got_request_exception

    get_response = handler.get_response

    def get_response_with_route(request: Any) -> Any:
        response = get_response(request)
        match = getattr(request, "resolver_match", None)
        route = getattr(match, "route", None)
        if isinstance(route, str):
            # Django patterns have no leading slash ("" is the root pattern); the
            # templates of the other frameworks do.
            request.environ[ROUTE_KEY] = "/" + route
        return response

    handler.get_response = get_response_with_route
    got_request_exception.connect(_record_exception, weak=False, dispatch_uid="vigil.sdk")
    return VigilWSGIMiddleware(handler, metrics, **middleware_kwargs)


def _record_exception(sender: Any, request: Any = None, **kwargs: Any) -> None:
    exc = sys.exc_info()[1]
    environ = getattr(request, "environ", None)
    if exc is not None and isinstance(environ, dict):
        environ[EXCEPTION_KEY] = type(exc).__name__
