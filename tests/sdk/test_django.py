"""Django through ``sdk.instrument(get_wsgi_application())``: route templates from
Django's URL resolver, exceptions by type, request ids, the access log."""

from __future__ import annotations

import io
import json
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest

pytest.importorskip("django")

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.urls import include, path, re_path
from prometheus_client import CollectorRegistry

from vigil import sdk
from vigil.sdk.access_log import AccessLog
from vigil.sdk.context import get_request_id


def item(request: Any, item_id: int) -> JsonResponse:
    return JsonResponse({"id": item_id, "rid": get_request_id()})


def boom(request: Any) -> HttpResponse:
    raise ZeroDivisionError("nope")


def year(request: Any, y: str) -> HttpResponse:
    return HttpResponse(y)


api = [path("items/<int:item_id>/", item), path("boom/", boom)]
urlpatterns = [path("api/", include(api)), re_path(r"^archive/(?P<y>[0-9]{4})/$", year)]


@pytest.fixture(scope="module")
def django_app() -> Any:
    if not settings.configured:
        settings.configure(
            DEBUG=False, ROOT_URLCONF=__name__, ALLOWED_HOSTS=["*"], SECRET_KEY="t",
            MIDDLEWARE=[], INSTALLED_APPS=[], LOGGING_CONFIG=None,
        )  # fmt: skip
    import django
    from django.core.wsgi import get_wsgi_application

    django.setup()
    return get_wsgi_application()


def call(
    app: Any, path: str, headers: dict[str, str] | None = None
) -> tuple[str, dict[str, str], bytes]:
    environ: dict[str, Any] = {"PATH_INFO": path, "wsgi.errors": io.StringIO()}
    for name, value in (headers or {}).items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    setup_testing_defaults(environ)
    got: dict[str, Any] = {}

    def start_response(
        status: str, response_headers: list[tuple[str, str]], exc_info: Any = None
    ) -> None:
        got["status"], got["headers"] = status, dict(response_headers)

    body_iter = app(environ, start_response)
    try:
        body = b"".join(body_iter)
    finally:
        close = getattr(body_iter, "close", None)
        if close is not None:
            close()
    return got["status"], got["headers"], body


def sample_reader(reg: CollectorRegistry) -> Any:
    """value(name, **labels): a sample of `reg`, 0 when absent."""

    def value(name: str, **labels: str) -> float:
        return reg.get_sample_value(name, labels) or 0.0

    return value


def assert_errors_counted(value: Any) -> None:
    """The one /api/boom/ (500, ZeroDivisionError) and one unmatched 404 each test
    sends are counted, and nothing is left in progress."""
    assert value("http_requests_total", method="GET", route="/api/boom/", status="500") == 1
    assert value("http_requests_total", method="GET", route="<unmatched>", status="404") == 1
    assert (
        value(
            "http_exceptions_total", method="GET", route="/api/boom/", exception="ZeroDivisionError"
        )
        == 1
    )
    assert value("http_requests_in_progress", method="GET") == 0


def test_django_routes_exceptions_request_ids_and_access_log(django_app: Any) -> None:
    reg = CollectorRegistry()
    stream = io.StringIO()
    log = AccessLog(stream, flush_interval=60)
    app = sdk.instrument(django_app, service="dj", registry=reg, access_log=log)
    status, headers, body = call(app, "/api/items/5/", {"x-request-id": "r-9"})
    assert status.startswith("200") and json.loads(body) == {"id": 5, "rid": "r-9"}
    assert headers["x-request-id"] == "r-9"
    call(app, "/api/items/6/")
    status, _, _ = call(app, "/api/boom/")
    assert status.startswith("500")
    assert call(app, "/nowhere/")[0].startswith("404")
    assert call(app, "/archive/2024/")[0].startswith("200")

    value = sample_reader(reg)

    assert (
        value("http_requests_total", method="GET", route="/api/items/<int:item_id>/", status="200")
        == 2
    )
    assert_errors_counted(value)
    assert (
        value(
            "http_requests_total", method="GET", route="/^archive/(?P<y>[0-9]{4})/$", status="200"
        )
        == 1
    )
    status, _, body = call(app, "/metrics")
    assert status.startswith("200") and b'route="/api/items/<int:item_id>/"' in body
    log.close()
    lines = [json.loads(x) for x in stream.getvalue().splitlines()]
    assert [x["route"] for x in lines][:2] == ["/api/items/<int:item_id>/"] * 2
    assert lines[0]["request_id"] == "r-9" and lines[0]["path"] == "/api/items/5/"


async def aitem(request: Any, item_id: int) -> JsonResponse:
    return JsonResponse({"id": item_id, "rid": get_request_id(), "async": True})


api.append(path("aitems/<int:item_id>/", aitem))


def test_django_asgi_routes_exceptions_and_request_ids(django_app: Any) -> None:
    """The same project under ``get_asgi_application()``: route templates from the
    resolver (sync and async views), exceptions counted by type, request ids."""
    import asyncio

    import httpx
    from django.core.asgi import get_asgi_application

    reg = CollectorRegistry()
    stream = io.StringIO()
    log = AccessLog(stream, flush_interval=60)
    app = sdk.instrument(get_asgi_application(), service="dj", registry=reg, access_log=log)

    async def drive() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return [
                await client.get("/api/items/5/", headers={"x-request-id": "a-1"}),
                await client.get("/api/aitems/7/"),
                await client.get("/api/boom/"),
                await client.get("/nowhere/"),
                await client.get("/metrics"),
            ]

    sync_view, async_view, boom_, missing, metrics = asyncio.run(drive())
    assert sync_view.json() == {"id": 5, "rid": "a-1"}
    assert sync_view.headers["x-request-id"] == "a-1"
    assert async_view.json()["id"] == 7 and async_view.json()["rid"]
    assert async_view.json()["rid"] == async_view.headers["x-request-id"]
    assert boom_.status_code == 500 and missing.status_code == 404

    value = sample_reader(reg)

    ok = {"method": "GET", "status": "200"}
    assert value("http_requests_total", route="/api/items/<int:item_id>/", **ok) == 1
    assert value("http_requests_total", route="/api/aitems/<int:item_id>/", **ok) == 1
    assert_errors_counted(value)
    assert b'route="/api/aitems/<int:item_id>/"' in metrics.content
    log.close()
    lines = [json.loads(x) for x in stream.getvalue().splitlines()]
    assert [x["route"] for x in lines[:2]] == [
        "/api/items/<int:item_id>/",
        "/api/aitems/<int:item_id>/",
    ]
    assert lines[0]["request_id"] == "a-1" and lines[0]["path"] == "/api/items/5/"
