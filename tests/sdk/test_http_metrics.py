from __future__ import annotations

import warnings

import pytest
from fastapi import FastAPI, HTTPException
from flask import Flask
from prometheus_client import CollectorRegistry

from vigil import sdk
from vigil.sdk.context import get_request_id
from vigil.sdk.health import HealthChecker

with warnings.catch_warnings():
    # Starlette deprecates its httpx-based TestClient in favour of httpx2; it still works.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


def value(reg: CollectorRegistry, name: str, **labels: str) -> float:
    return reg.get_sample_value(name, labels) or 0.0


def make_fastapi(reg: CollectorRegistry, health: HealthChecker | None = None) -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, object]:
        if item_id == 0:
            raise HTTPException(404)
        return {"id": item_id, "rid": get_request_id()}

    @app.get("/boom")
    async def boom() -> None:
        raise ZeroDivisionError("nope")

    @app.get("/sync")
    def sync() -> dict[str, object]:
        return {"rid": get_request_id()}

    return sdk.instrument(app, service="payments", version="1.2", registry=reg, health=health)


def test_fastapi_route_templates_status_and_exceptions() -> None:
    reg = CollectorRegistry()
    client = TestClient(make_fastapi(reg), raise_server_exceptions=False)
    for i in range(1, 4):
        assert client.get(f"/items/{i}").status_code == 200
    assert client.get("/items/0").status_code == 404
    assert client.get("/boom").status_code == 500
    for i in range(5):
        client.get(f"/random/{i}")
    ok = {"method": "GET", "route": "/items/{item_id}", "status": "200"}
    assert value(reg, "http_requests_total", **ok) == 3
    assert value(reg, "http_request_duration_seconds_count", **ok) == 3
    assert (
        value(reg, "http_requests_total", method="GET", route="/items/{item_id}", status="404") == 1
    )
    assert value(reg, "http_requests_total", method="GET", route="/boom", status="500") == 1
    assert (
        value(
            reg, "http_exceptions_total", method="GET", route="/boom", exception="ZeroDivisionError"
        )
        == 1
    )
    # Unknown paths collapse into one series: no cardinality blow-up.
    assert value(reg, "http_requests_total", method="GET", route="<unmatched>", status="404") == 5
    assert value(reg, "http_requests_in_progress", method="GET") == 0
    assert value(reg, "vigil_app_info", service="payments", version="1.2", environment="") == 1


def test_fastapi_request_id_propagates_to_handlers_and_response() -> None:
    reg = CollectorRegistry()
    client = TestClient(make_fastapi(reg))
    r = client.get("/items/7", headers={"X-Request-ID": "abc-123"})
    assert r.json()["rid"] == "abc-123" and r.headers["x-request-id"] == "abc-123"
    r = client.get("/sync")  # threadpool handler still sees the context
    assert r.json()["rid"] == r.headers["x-request-id"] and len(r.json()["rid"]) == 32


def test_fastapi_metrics_health_ready_endpoints() -> None:
    reg = CollectorRegistry()
    checker = HealthChecker().add("db", lambda: True).add("cache", lambda: False, critical=False)
    client = TestClient(make_fastapi(reg, checker))
    client.get("/items/1")
    r = client.get("/metrics")
    assert r.status_code == 200 and "text/plain" in r.headers["content-type"]
    assert 'http_requests_total{method="GET",route="/items/{item_id}",status="200"} 1.0' in r.text
    assert "/metrics" not in r.text  # the scrape itself is not measured
    om = client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert om.text.endswith("# EOF\n")
    h = client.get("/health")
    assert h.status_code == 200 and h.json()["status"] == "degraded"
    assert h.json()["components"]["cache"]["status"] == "unhealthy"
    assert client.get("/ready").json()["status"] == "ready"


def test_flask_routes_exceptions_and_endpoints() -> None:
    reg = CollectorRegistry()
    app = Flask(__name__)

    @app.get("/users/<int:uid>")
    def user(uid: int) -> dict[str, object]:
        return {"uid": uid, "rid": get_request_id()}

    @app.get("/fail")
    def fail() -> str:
        raise KeyError("x")

    sdk.instrument(app, service="flaskapp", registry=reg)
    client = app.test_client()
    for i in range(4):
        r = client.get(f"/users/{i}", headers={"X-Request-ID": f"r{i}"})
        assert r.json == {"uid": i, "rid": f"r{i}"}
        assert r.headers["x-request-id"] == f"r{i}"
    # Metrics are recorded once the body was sent (a real server closes it).
    for path, code in (("/fail", 500), ("/nope/1", 404)):
        r = client.get(path)
        assert r.status_code == code
        r.close()
    assert (
        value(reg, "http_requests_total", method="GET", route="/users/<int:uid>", status="200") == 4
    )
    assert (
        value(reg, "http_exceptions_total", method="GET", route="/fail", exception="KeyError") == 1
    )
    assert value(reg, "http_requests_total", method="GET", route="<unmatched>", status="404") == 1
    body = client.get("/metrics").get_data(as_text=True)
    assert 'route="/users/<int:uid>"' in body
    assert client.get("/health").json == {"status": "healthy"}


def test_plain_wsgi_and_asgi_apps_are_wrapped() -> None:
    reg = CollectorRegistry()

    def wsgi(environ: dict[str, object], start_response: object) -> list[bytes]:
        start_response("201 Created", [])  # type: ignore[operator]
        return [b"ok"]

    wrapped = sdk.instrument(wsgi, service="w", registry=reg, route_resolver=lambda e: "/fixed")
    from werkzeug.test import Client

    r = Client(wrapped).get("/anything")
    assert r.status_code == 201
    r.close()
    assert value(reg, "http_requests_total", method="GET", route="/fixed", status="201") == 1

    with pytest.raises(TypeError):
        sdk.instrument(42, service="x", registry=CollectorRegistry())


def test_mounted_routes_keep_their_prefix_per_mount() -> None:
    # One route object under two mounts: the cached template must differ per prefix.
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Mount, Route

    async def hello(request: object) -> PlainTextResponse:
        return PlainTextResponse("hi")

    inner = [Route("/hello/{name}", hello)]
    reg = CollectorRegistry()
    app = Starlette(routes=[Mount("/v1", routes=inner), Mount("/v2", routes=inner)])
    client = TestClient(sdk.instrument(app, service="m", registry=reg))
    for _ in range(2):
        assert client.get("/v1/hello/a").status_code == 200
        assert client.get("/v2/hello/b").status_code == 200
    for prefix in ("/v1", "/v2"):
        route = prefix + "/hello/{name}"
        assert value(reg, "http_requests_total", method="GET", route=route, status="200") == 2


def test_many_statuses_and_methods_are_each_counted() -> None:
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    async def status(request: object) -> Response:
        return Response(status_code=int(request.path_params["code"]))  # type: ignore[attr-defined]

    reg = CollectorRegistry()
    app = Starlette(routes=[Route("/s/{code}", status, methods=["GET", "POST"])])
    client = TestClient(sdk.instrument(app, service="s", registry=reg))
    for code in (200, 201, 404, 200, 503):
        client.get(f"/s/{code}")
        client.post(f"/s/{code}")
    for method in ("GET", "POST"):
        for code, n in (("200", 2), ("201", 1), ("404", 1), ("503", 1)):
            labels = {"method": method, "route": "/s/{code}", "status": code}
            assert value(reg, "http_requests_total", **labels) == n
            assert value(reg, "http_request_duration_seconds_count", **labels) == n
        assert value(reg, "http_requests_in_progress", method=method) == 0


def test_generated_request_ids_are_unique_hex() -> None:
    from vigil.sdk.context import new_request_id

    ids = {new_request_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(i) == 32 and int(i, 16) >= 0 and i == i.lower() for i in ids)
