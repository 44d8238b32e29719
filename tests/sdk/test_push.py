from __future__ import annotations

import base64

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge
from sdk_helpers import Sink, free_port

from vigil.sdk.push import PushError, delete_metrics, grouping_path, push_metrics


def test_push_put_post_delete_with_ttl(sink: Sink) -> None:
    reg = CollectorRegistry()
    Counter("rows_processed", "Rows.", registry=reg).inc(42)
    Gauge("last_success_unixtime", "When.", registry=reg).set(1.7e9)
    assert push_metrics(reg, job="etl", url=sink.url, grouping_key={"run": "7"}, ttl=3600) == 204
    push_metrics(reg, job="etl", url=sink.url, replace=False)
    delete_metrics(job="etl", url=sink.url, grouping_key={"run": "7"})
    put, post, delete = sink.requests
    assert (put.method, put.path) == ("PUT", "/metrics/job/etl/run/7")
    assert put.headers["x-vigil-ttl"] == "3600"
    assert put.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert b"rows_processed_total 42.0" in put.body
    assert (post.method, post.path) == ("POST", "/metrics/job/etl")
    assert "x-vigil-ttl" not in post.headers
    assert (delete.method, delete.path) == ("DELETE", "/metrics/job/etl/run/7")


def test_grouping_path_escaping() -> None:
    enc = base64.urlsafe_b64encode(b"a/b").decode()
    assert grouping_path("j", {"path": "a/b"}) == f"/metrics/job/j/path@base64/{enc}"
    assert grouping_path("j", {"e": ""}) == "/metrics/job/j/e@base64/="


def test_push_errors_are_clear(sink: Sink) -> None:
    reg = CollectorRegistry()
    sink.status = 400
    with pytest.raises(PushError, match="HTTP 400"):
        push_metrics(reg, job="j", url=sink.url)
    with pytest.raises(PushError, match="/metrics/job/j"):
        push_metrics(reg, job="j", url=f"http://127.0.0.1:{free_port()}", timeout=1)
    with pytest.raises(ValueError):
        push_metrics(reg, job="j", url=sink.url, ttl=0)
