"""The SDK's proof through Vigil itself: examples/payment_service under uvicorn with
two workers, scraped by `vigil up`, and its numbers read back with PromQL.

The log and trace halves of the proof are written against Loki's
``/loki/api/v1/query_range`` and an OTLP trace lookup, and skipped until Vigil has
a log store and a trace store: removing the `pytest.skip` line is all they need.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from _support import REPO, free_port, wait_for

EXAMPLE = REPO / "examples" / "payment_service"
ROUTE = "/payments/{order_id}"

# Wraps the example unchanged, adding what the log and trace parts need: logs
# shipped to Vigil's Loki push API and spans to its OTLP endpoint.
SHIPPING_APP = """
import logging
import os

from vigil import sdk
from main import SERVICE, app

VIGIL = os.environ["VIGIL_URL"]
sdk.setup_tracing(SERVICE, endpoint=VIGIL + "/v1/traces", app=app)
logging.getLogger().addHandler(
    sdk.VigilLogHandler(VIGIL, labels={"service": SERVICE}, service=SERVICE, flush_interval=0.2)
)
"""


@contextmanager
def _process(argv: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[None]:
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        yield
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _up(url: str, log: Path) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        if "Traceback" in log.read_text(errors="replace"):
            raise AssertionError(log.read_text()[-3000:]) from None
        return False


@contextmanager
def payment_stack(tmp: Path, app: str = "main:app") -> Iterator[tuple[str, str]]:
    """(service URL, Vigil URL): `vigil up` scraping the example every second, and
    the example under uvicorn with 2 workers sharing a multiprocess directory."""
    app_port, vigil_port = free_port(), free_port()
    service, vigil = f"http://127.0.0.1:{app_port}", f"http://127.0.0.1:{vigil_port}"
    config = tmp / "vigil.yml"
    config.write_text(
        "global: {scrape_interval: 1s, scrape_timeout: 1s}\n"
        "vigil: {self_scrape: false}\n"
        "scrape_configs:\n"
        "  - job_name: payments\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{app_port}']}}]\n"
    )
    mpdir = tmp / "mp"
    mpdir.mkdir()
    (tmp / "shipping_app.py").write_text(SHIPPING_APP)
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(mpdir),
        "VIGIL_URL": vigil,
        "PYTHONPATH": os.pathsep.join([str(EXAMPLE), str(tmp)]),
    }
    vigil_log, app_log = tmp / "vigil.log", tmp / "uvicorn.log"
    with ExitStack() as stack:
        stack.enter_context(
            _process(
                [sys.executable, "-m", "vigil.cli", "up", "--config", str(config),
                 "--data-dir", str(tmp / "data"), "--listen", f"127.0.0.1:{vigil_port}"],
                vigil_log,
            )
        )  # fmt: skip
        stack.enter_context(
            _process(
                [sys.executable, "-m", "uvicorn", "--app-dir", str(EXAMPLE), app,
                 "--workers", "2", "--port", str(app_port), "--log-level", "warning"],
                app_log,
                env,
            )
        )  # fmt: skip
        wait_for(lambda: _up(vigil + "/-/ready", vigil_log), timeout=30)
        wait_for(lambda: _up(service + "/ready", app_log), timeout=30)
        yield service, vigil


def drive_traffic(service: str, ok: int, failed: int, invalid: int, unmatched: int) -> list[str]:
    """Send the requests; returns the request ids of the successful payments."""
    ids = []
    with httpx.Client(base_url=service, timeout=5) as client:
        for i in range(ok):
            r = client.post(f"/payments/o{i}", params={"user_id": f"u{i}", "amount": 20})
            assert r.status_code == 200, r.text
            ids.append(r.json()["request_id"])
        for i in range(invalid):
            r = client.post(f"/payments/i{i}", params={"user_id": "u", "amount": 0})
            assert r.status_code == 400
        for _ in range(unmatched):
            assert client.get("/no/such/page").status_code == 404
    for i in range(failed):
        # uvicorn drops the connection after an unhandled error: a new one each time
        r = httpx.post(f"{service}/payments/f{i}", params={"user_id": "u", "amount": 20000})
        assert r.status_code == 500
    return ids


def query(vigil: str, expr: str) -> list[dict[str, Any]]:
    r = httpx.get(vigil + "/api/v1/query", params={"query": expr}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["data"]["result"]


def test_request_counts_through_vigil_match_traffic(tmp_path: Path) -> None:
    ok, failed, invalid, unmatched = 25, 3, 4, 2
    with payment_stack(tmp_path) as (service, vigil):
        wait_for(lambda: query(vigil, 'up{job="payments"} == 1'), timeout=20)
        drive_traffic(service, ok, failed, invalid, unmatched)
        expected = {
            (ROUTE, "200"): ok,
            (ROUTE, "400"): invalid,
            (ROUTE, "500"): failed,
            ("<unmatched>", "404"): unmatched,
        }
        expr = (
            'sum by (route, status) (http_requests_total{job="payments", '
            f'route=~"{ROUTE}|<unmatched>"}})'
        )

        def counts() -> dict[tuple[str, str], float]:
            return {
                (s["metric"]["route"], s["metric"]["status"]): float(s["value"][1])
                for s in query(vigil, expr)
            }

        # a scrape every second: wait until one has seen every request
        wait_for(lambda: counts() == expected, timeout=20)
        [failures] = query(vigil, 'sum(payment_requests_total{job="payments", status="failed"})')
        assert float(failures["value"][1]) == failed
        [errors] = query(
            vigil,
            'sum(http_exceptions_total{job="payments", exception="PaymentGatewayError"})',
        )
        assert float(errors["value"][1]) == failed


def loki_lines(vigil: str, logql: str, start_ns: int) -> list[dict[str, Any]]:
    """Every log line `logql` selects since `start_ns`, parsed as JSON."""
    r = httpx.get(
        vigil + "/loki/api/v1/query_range",
        params={
            "query": logql,
            "start": str(start_ns),
            "end": str(time.time_ns() + 10**9),
            "limit": "5000",
            "direction": "forward",
        },
        timeout=10,
    )
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["resultType"] == "streams"
    return [json.loads(line) for stream in data["result"] for _ts, line in stream["values"]]


def test_logs_through_vigil(tmp_path: Path) -> None:
    pytest.skip("log store not built yet")
    ok, failed = 12, 2
    start_ns = time.time_ns()
    with payment_stack(tmp_path, app="shipping_app:app") as (service, vigil):
        ids = drive_traffic(service, ok, failed, invalid=0, unmatched=0)
        selector = '{service="payment-service"}'

        def completed() -> list[dict[str, Any]]:
            return loki_lines(vigil, selector + ' |= "payment completed"', start_ns)

        wait_for(lambda: len(completed()) >= ok, timeout=20)
        lines = completed()
        assert len(lines) == ok
        assert sorted(line["request_id"] for line in lines) == sorted(ids)
        assert {line["user_id"] for line in lines} == {f"u{i}" for i in range(ok)}
        refused = loki_lines(vigil, selector + ' |= "payment gateway refused"', start_ns)
        assert len(refused) == failed
        assert all(line["level"] == "ERROR" for line in refused)
        # a label filter on a JSON field, as a person debugging one request would
        one = loki_lines(vigil, selector + f' | json | request_id="{ids[0]}"', start_ns)
        assert {line["message"] for line in one} >= {"payment completed"}


def _attrs(items: list[dict[str, Any]]) -> dict[str, Any]:
    """OTLP JSON attributes (``[{"key", "value": {"stringValue": ...}}]``) as a dict."""
    return {a["key"]: next(iter(a["value"].values())) for a in items}


def trace_spans(vigil: str, trace_id: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(resource attributes, span) for every span of `trace_id`, looked up the way
    Tempo serves it (OTLP JSON: ``resourceSpans`` / ``batches`` of ``scopeSpans``)."""
    r = httpx.get(f"{vigil}/api/traces/{trace_id}", timeout=10)
    if r.status_code == 404:
        return []
    assert r.status_code == 200, r.text
    doc = r.json()
    doc = doc.get("trace", doc)
    out = []
    for rs in doc.get("resourceSpans", doc.get("batches", [])):
        resource = _attrs(rs.get("resource", {}).get("attributes", []))
        for ss in rs.get("scopeSpans", []):
            out += [(resource, span) for span in ss.get("spans", [])]
    return out


def test_traces_through_vigil(tmp_path: Path) -> None:
    pytest.skip("trace store not built yet")
    ok, failed = 5, 1
    start_ns = time.time_ns()
    with payment_stack(tmp_path, app="shipping_app:app") as (service, vigil):
        drive_traffic(service, ok, failed, invalid=0, unmatched=0)
        selector = '{service="payment-service"}'
        # the logs carry the trace ids (requires the log store as well)
        wait_for(
            lambda: len(loki_lines(vigil, selector + ' |= "payment completed"', start_ns)) >= ok,
            timeout=20,
        )
        lines = loki_lines(vigil, selector + ' |= "payment completed"', start_ns)
        trace_ids = {line["trace_id"] for line in lines}
        assert len(trace_ids) == ok and all(len(t) == 32 for t in trace_ids)
        for trace_id in trace_ids:
            spans = wait_for(lambda t=trace_id: trace_spans(vigil, t), timeout=20)
            resource, root = next((r, s) for r, s in spans if not s.get("parentSpanId"))
            assert resource["service.name"] == "payment-service"
            assert root["traceId"].lower() == trace_id
            assert ROUTE in root["name"]
            assert root.get("status", {}).get("code", 0) != 2  # not STATUS_CODE_ERROR
        [refused] = loki_lines(vigil, selector + ' |= "payment gateway refused"', start_ns)
        spans = wait_for(lambda: trace_spans(vigil, refused["trace_id"]), timeout=20)
        assert any(s.get("status", {}).get("code") == 2 for _r, s in spans)
