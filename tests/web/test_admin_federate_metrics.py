from __future__ import annotations

import io
from typing import Any

from test_query_api import err

from vigil.model.labels import Labels
from vigil.model.samples import STALE_NAN
from vigil.web import WebContext

from web_fixtures import NOW_MS, make_client


def test_health_ready_reload(storage: Any) -> None:
    state = {"ready": False, "config": "old"}

    def reload() -> None:
        raise ValueError("vigil.yml:2: scrape_interval: bad duration")

    ctx = WebContext(
        storage=storage,
        ready=lambda: state["ready"],
        reload=reload,
        config_yaml=lambda: state["config"],
    )
    with make_client(ctx) as c:
        assert c.get("/-/healthy").status_code == 200
        assert c.get("/-/ready").status_code == 503
        state["ready"] = True
        assert c.get("/-/ready").status_code == 200
        r = c.post("/-/reload")
        assert r.status_code == 500 and "scrape_interval" in r.text
        assert c.get("/api/v1/status/config").json()["data"]["yaml"] == "old"
        assert c.get("/-/reload").status_code == 405
    ok = WebContext(storage=storage, reload=lambda: None)
    with make_client(ok) as c:
        assert c.put("/-/reload").status_code == 200


def test_import(storage: Any) -> None:
    seen: list[tuple[bytes, str | None]] = []

    def importer(stream: io.BufferedIOBase, ctype: str | None) -> dict[str, Any]:
        data = stream.read()
        if b"bad" in data:
            raise ValueError("line 2: expected a value")
        seen.append((data, ctype))
        return {"samples": 1, "series": 1}

    with make_client(WebContext(storage=storage, importer=importer)) as c:
        r = c.post(
            "/api/v1/import",
            content=b"m 1 1000\n# EOF\n",
            headers={"Content-Type": "application/openmetrics-text"},
        )
        assert r.json() == {"status": "success", "data": {"samples": 1, "series": 1}}
        assert seen == [(b"m 1 1000\n# EOF\n", "application/openmetrics-text")]
        err(
            c.post("/api/v1/import", content=b"m 1\nbad\n"),
            400,
            "bad_data",
            "line 2: expected a value",
        )
        err(c.post("/api/v1/import", content=b""), 400, "bad_data", "empty body")


def test_federate(storage: Any, ctx: WebContext) -> None:
    app = storage.appender()
    app.append(Labels.from_dict({"__name__": "gone", "job": "x"}), NOW_MS - 2000, 1.0)
    app.append(Labels.from_dict({"__name__": "gone", "job": "x"}), NOW_MS - 1000, STALE_NAN)
    app.append(Labels.from_dict({"__name__": "old", "job": "x"}), NOW_MS - 400_000, 1.0)
    app.append(Labels.from_dict({"__name__": "big", "job": "x", "q": 'a"b'}), NOW_MS, 1234567.0)
    app.commit()
    ctx.external_labels = {"cluster": "eu", "job": "ignored"}
    with make_client(ctx) as c:
        r = c.get("/federate", params={"match[]": ['{job="x"}', 'metric_0{instance="a:1"}']})
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert r.text == (
            "# TYPE big untyped\n"
            f'big{{cluster="eu",job="x",q="a\\"b"}} 1.234567e+06 {NOW_MS}\n'
            "# TYPE metric_0 untyped\n"
            f'metric_0{{cluster="eu",instance="a:1",job="node"}} 4.5 {NOW_MS}\n'
        )
        assert c.get("/federate").status_code == 400
        assert c.get("/federate", params={"match[]": "{"}).status_code == 400


def test_metrics_endpoint(storage: Any) -> None:
    def mine() -> list[Any]:
        return [
            ("vigil_thing_total", {"kind": "a"}, 3.0, "counter", "Things."),
            ("vigil_level", {}, 0.5, "gauge", "Level."),
        ]

    with make_client(WebContext(storage=storage, self_metrics=[mine])) as c:
        c.get("/-/healthy")
        text = c.get("/metrics").text
    assert 'vigil_thing_total{kind="a"} 3.0' in text
    assert "# TYPE vigil_level gauge" in text
    assert "process_cpu_seconds_total" in text or "python_info" in text
    assert 'prometheus_http_requests_total{code="200",handler="/-/healthy"} 1.0' in text
