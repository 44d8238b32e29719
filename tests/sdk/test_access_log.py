from __future__ import annotations

import io
import json
import os
import re
import threading
import time
import warnings

import pytest
from fastapi import FastAPI
from flask import Flask
from prometheus_client import CollectorRegistry

from vigil import sdk
from vigil.sdk.access_log import AccessLog
from vigil.sdk.context import get_request_id, set_user_id

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


def records(stream: io.BytesIO | io.StringIO) -> list[dict[str, object]]:
    raw = stream.getvalue()
    text = raw.decode() if isinstance(raw, bytes) else raw
    return [json.loads(x) for x in text.splitlines()]


def make_app(log: AccessLog) -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, object]:
        if item_id == 7:
            set_user_id("u-7")
        return {"rid": get_request_id()}

    @app.get("/boom")
    async def boom() -> None:
        raise ZeroDivisionError("nope")

    return sdk.instrument(app, service="payments", registry=CollectorRegistry(), access_log=log)


def test_access_line_fields_and_request_id_propagation() -> None:
    stream = io.BytesIO()
    log = AccessLog(stream, service="payments", static_fields={"env": "prod"}, flush_interval=60)
    client = TestClient(make_app(log), raise_server_exceptions=False)
    given = client.get("/items/7", headers={"x-request-id": "req-abc"})
    fresh = client.get("/items/1")
    assert client.get("/boom").status_code == 500
    client.get("/metrics")  # observability endpoints are not logged
    log.close()
    first, second, third = records(stream)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", str(first["timestamp"]))
    assert first["level"] == "INFO" and first["logger"] == "vigil.access"
    assert first["message"] == "GET /items/7 200"
    assert first["service"] == "payments" and first["env"] == "prod"
    assert first["method"] == "GET" and first["route"] == "/items/{item_id}"
    assert first["path"] == "/items/7" and first["status"] == 200
    assert isinstance(first["duration_ms"], float) and first["duration_ms"] >= 0
    # the id the handler saw, the one echoed on the response and the logged one agree
    assert first["request_id"] == "req-abc" == given.json()["rid"] == given.headers["x-request-id"]
    assert first["user_id"] == "u-7" and "user_id" not in second
    assert second["request_id"] == fresh.json()["rid"] == fresh.headers["x-request-id"]
    assert len(str(second["request_id"])) == 32
    assert third["route"] == "/boom" and third["status"] == 500
    assert "trace_id" not in first
    assert log.stats()["written"] == 3


def test_instrument_true_uses_setup_access_log_and_text_streams() -> None:
    stream = io.StringIO()
    log = sdk.setup_access_log(stream=stream, service="svc", flush_interval=0.01)
    try:
        app = FastAPI()

        @app.get("/x")
        async def x() -> dict[str, str]:
            return {}

        client = TestClient(
            sdk.instrument(app, service="svc", registry=CollectorRegistry(), access_log=True)
        )
        client.get("/x")
        deadline = time.monotonic() + 5
        while not stream.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)  # the writer thread flushes within flush_interval
        (rec,) = records(stream)
        assert rec["route"] == "/x" and rec["service"] == "svc"
    finally:
        log.close()


def test_flask_access_line() -> None:
    stream = io.BytesIO()
    log = AccessLog(stream, flush_interval=60)
    app = Flask("t")

    @app.get("/users/<int:uid>")
    def user(uid: int) -> dict[str, object]:
        return {"rid": get_request_id()}

    sdk.instrument(app, service="f", registry=CollectorRegistry(), access_log=log)
    resp = app.test_client().get("/users/3", headers={"x-request-id": "r-1"})
    assert resp.json == {"rid": "r-1"}
    log.close()
    (rec,) = records(stream)
    assert rec["route"] == "/users/<int:uid>" and rec["path"] == "/users/3"
    assert rec["request_id"] == "r-1" and rec["status"] == 200 and "service" not in rec


def test_buffer_is_bounded_and_overflow_counted() -> None:
    class Stuck(io.BytesIO):  # a stream whose writes hang until released
        def __init__(self) -> None:
            super().__init__()
            self.release = threading.Event()
            self.entered = threading.Event()

        def write(self, data: object) -> int:
            self.entered.set()
            self.release.wait(30)
            return super().write(data)  # type: ignore[arg-type]

    stream = Stuck()
    log = AccessLog(stream, flush_interval=0.01, max_buffer_lines=50)
    try:
        log.write_line("{}")
        assert stream.entered.wait(5)  # the writer now hangs inside write()
        for i in range(1000):
            log.log("GET", "/r", f"/r/{i}", 200, 0.001, f"id-{i}")
        stats = log.stats()
        assert stats["buffered"] == 50
        assert stats["dropped_overflow"] == 950
    finally:
        stream.release.set()
        log.close()
    assert log.stats()["written"] == 51 == len(records(stream))


def test_line_threshold_wakes_the_writer() -> None:
    stream = io.BytesIO()
    log = AccessLog(stream, flush_interval=60, flush_lines=10)
    try:
        for i in range(100):
            log.log("GET", "/r", "/r", 200, 0.001, str(i))
        deadline = time.monotonic() + 5
        while not stream.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert stream.getvalue()  # written well before the 60 s interval
    finally:
        log.close()


def test_lines_appended_while_the_writer_drains_are_never_lost() -> None:
    # Four threads append without a lock while the writer thread drains every
    # millisecond: every line must come out exactly once.
    stream = io.BytesIO()
    log = AccessLog(stream, flush_interval=0.001, flush_lines=7, max_buffer_lines=1 << 20)

    def hammer(t: int) -> None:
        for i in range(5000):
            log.log("GET", "/r", f"/r/{t}/{i}", 200, 0.001, None)

    threads = [threading.Thread(target=hammer, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    log.close()
    paths = [r["path"] for r in records(stream)]
    assert len(paths) == 20_000 == len(set(paths))
    assert log.stats() == {
        "written": 20_000, "buffered": 0, "dropped_overflow": 0, "dropped_error": 0,
        "write_errors": 0,
    }  # fmt: skip


def test_hostile_paths_and_ids_stay_valid_json_lines() -> None:
    stream = io.StringIO()
    log = AccessLog(stream, service='sv"c', flush_interval=60)
    log.log("GET", "/r", '/a"b\\c\nd\u2028é\udc80', 200, 0.001, 'id"\x00')
    log.log("BREW", "/r", "/" + "x" * 10_000, 418, 0.001, None)
    log.close()
    first, second = records(stream)
    assert first["path"] == '/a"b\\c\nd\u2028é\udc80' and first["request_id"] == 'id"\x00'
    assert first["service"] == 'sv"c' and first["message"] == 'GET /a"b\\c\nd\u2028é\udc80 200'
    assert second["method"] == "BREW" and len(str(second["path"])) < 2100
    assert str(second["path"]).endswith("...[cut]")
    assert stream.getvalue().isascii()  # escaped: no line can fail to encode


class Broken(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def write(self, data: object) -> int:
        raise BrokenPipeError("gone")


@pytest.mark.parametrize("kind", ["closed", "broken"])
def test_failing_stream_never_raises_into_requests(
    kind: str, capfd: pytest.CaptureFixture[str]
) -> None:
    stream: io.IOBase = io.BytesIO() if kind == "closed" else Broken()
    if kind == "closed":
        stream.close()
    log = AccessLog(stream, flush_interval=0.01)  # type: ignore[arg-type]
    client = TestClient(make_app(log))
    try:
        for i in range(20):
            assert client.get(f"/items/{i + 1}").status_code == 200
        log.flush()
        deadline = time.monotonic() + 5
        while log.stats()["dropped_error"] < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        log.close()
    stats = log.stats()
    assert stats["dropped_error"] == 20 and stats["written"] == 0 and stats["write_errors"] >= 1
    assert capfd.readouterr().err.count("cannot write access log") == 1
    log.log("GET", "/", "/", 200, 0.0, None)  # after close: dropped, no exception
    assert log.stats()["dropped_error"] == 21


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_child_after_fork_writes_only_its_own_lines(tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "access.log")
    with open(path, "ab", buffering=0) as fh:
        log = AccessLog(fh, flush_interval=60)
        log.write_line('{"who":"parent-before"}')
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads
            pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            code = 1
            try:
                log.write_line('{"who":"child"}')
                log.close()
                code = 0 if log.stats()["written"] == 1 else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        log.close()
    with open(path) as fh:
        who = sorted(json.loads(x)["who"] for x in fh.read().splitlines())
    assert who == ["child", "parent-before"]


def test_trace_ids_when_a_span_is_active() -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    stream = io.BytesIO()
    log = AccessLog(stream, flush_interval=60)
    tracer = TracerProvider().get_tracer("t")
    with tracer.start_as_current_span("op") as span:
        log.log("GET", "/r", "/r", 200, 0.0015, "rid")
    log.close()
    (rec,) = records(stream)
    ctx = span.get_span_context()
    assert rec["trace_id"] == format(ctx.trace_id, "032x")
    assert rec["span_id"] == format(ctx.span_id, "016x")
    assert rec["duration_ms"] == 1.5
    assert trace.get_current_span().get_span_context().is_valid is False


def test_context_is_taken_at_request_time_and_a_bad_entry_costs_only_its_line() -> None:
    """Lines are formatted later, on the writer thread: the user id and span must be
    those of the request, and one entry that cannot be formatted must not take
    the rest of the batch with it."""
    from opentelemetry.sdk.trace import TracerProvider

    stream = io.BytesIO()
    log = AccessLog(stream, flush_interval=60)
    tracer = TracerProvider().get_tracer("t")
    with tracer.start_as_current_span("req") as span:
        token = sdk.context.user_id_var.set("u-1")
        log.log("GET", "/a", "/a", 200, 0.001, "r-1")
        sdk.context.user_id_var.reset(token)
    log._buf.append(("not", "an", "entry"))  # what a bug would leave behind
    log.log("GET", "/b", "/b", 200, 0.002, "r-2")  # outside the span and user
    log.close()
    first, second = records(stream)
    assert first["user_id"] == "u-1" and first["request_id"] == "r-1"
    assert first["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert "user_id" not in second and "trace_id" not in second
    assert second["path"] == "/b" and second["duration_ms"] == 2.0
    assert log.stats()["dropped_error"] == 1 and log.stats()["written"] == 2
