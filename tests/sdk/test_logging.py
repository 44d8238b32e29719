from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from sdk_helpers import Sink

from vigil import sdk
from vigil.sdk.context import bind, set_user_id
from vigil.sdk.log_shipper import VigilLogHandler


@pytest.fixture
def logger() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    log = sdk.setup_logging(service="payments", stream=stream, logger="vigil-test", level="DEBUG")
    log.propagate = False
    yield log, stream
    for h in list(log.handlers):
        log.removeHandler(h)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    for h in logging.getLogger("vigil-test").handlers:
        h.flush()  # a no-op unless the handler buffers
    return [json.loads(x) for x in stream.getvalue().splitlines()]


def test_json_record_fields_extra_and_exception(logger: tuple[logging.Logger, io.StringIO]) -> None:
    log, stream = logger
    with bind(request_id="req-1", user_id="u-9", tier="gold"):
        log.info("charged %s", "ok", extra={"order_id": "o-1", "amount": 12.5, "obj": object()})
    try:
        _ = 1 / 0
    except ZeroDivisionError:
        log.exception("failed")
    first, second = lines(stream)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", str(first["timestamp"]))
    assert first["level"] == "INFO" and first["message"] == "charged ok"
    assert first["service"] == "payments" and first["logger"] == "vigil-test"
    assert first["function"] == "test_json_record_fields_extra_and_exception"
    assert first["module"] == "test_logging" and isinstance(first["line"], int)
    assert first["request_id"] == "req-1" and first["user_id"] == "u-9" and first["tier"] == "gold"
    assert first["order_id"] == "o-1" and first["amount"] == 12.5 and "object" in str(first["obj"])
    exc = second["exception"]
    assert isinstance(exc, dict) and exc["type"] == "ZeroDivisionError"
    assert "Traceback" in exc["stack"] and "request_id" not in second


def test_context_is_isolated_across_tasks_and_threads(
    logger: tuple[logging.Logger, io.StringIO],
) -> None:
    log, stream = logger

    async def handle(i: int) -> None:
        with bind(request_id=f"r{i}"):
            set_user_id(f"u{i}")
            await asyncio.sleep(0.001 * (5 - i))
            log.info("done", extra={"i": i})

    async def main() -> None:
        await asyncio.gather(*(handle(i) for i in range(5)))

    asyncio.run(main())

    def in_thread(i: int) -> None:
        with bind(request_id=f"t{i}"):
            time.sleep(0.001)
            log.info("thread", extra={"i": i})

    threads = [threading.Thread(target=in_thread, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for rec in lines(stream):
        prefix = "r" if rec["message"] == "done" else "t"
        assert rec["request_id"] == f"{prefix}{rec['i']}"
        if prefix == "r":
            assert rec["user_id"] == f"u{rec['i']}"


def test_trace_ids_from_active_span(logger: tuple[logging.Logger, io.StringIO]) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    log, stream = logger
    tracer = TracerProvider().get_tracer("t")
    with tracer.start_as_current_span("op") as span:
        log.info("in span")
    rec = lines(stream)[0]
    ctx = span.get_span_context()
    assert rec["trace_id"] == format(ctx.trace_id, "032x")
    assert rec["span_id"] == format(ctx.span_id, "016x")


def test_log_handler_ships_batches_to_push_api(sink: Sink) -> None:
    handler = VigilLogHandler(sink.url, service="payments", batch_size=50, flush_interval=0.2)
    log = logging.getLogger("vigil-ship")
    log.addHandler(handler)
    log.propagate = False
    try:
        with bind(request_id="abc"):
            for i in range(120):
                log.warning("line %d", i)
        log.error("bad")
        assert handler.flush(5)
    finally:
        log.removeHandler(handler)
        handler.close()
    assert all(r.path == "/loki/api/v1/push" and r.method == "POST" for r in sink.requests)
    values = []
    for r in sink.requests:
        body = json.loads(r.body)
        for stream in body["streams"]:
            assert stream["stream"]["service"] == "payments"
            values += [(stream["stream"]["level"], v) for v in stream["values"]]
    assert len(values) == 121 and len(sink.requests) >= 3
    level, (ts, line) = values[0]
    assert level == "warning" and ts.isdigit() and len(ts) == 19
    assert json.loads(line)["request_id"] == "abc"
    assert handler.stats()["sent"] == 121


def test_log_handler_never_blocks_when_vigil_hangs(capsys: pytest.CaptureFixture[str]) -> None:
    # A listener that never accepts: connects succeed, then every push times out.
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(8)
    handler = VigilLogHandler(
        f"http://127.0.0.1:{hung.getsockname()[1]}",
        max_queue=100,
        batch_size=100,
        flush_interval=0.05,
        timeout=0.3,
    )
    log = logging.getLogger("vigil-down")
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    log.propagate = False
    try:
        start = time.perf_counter()
        for i in range(5000):
            log.info("x %d", i)
        elapsed = time.perf_counter() - start
        assert handler.stats()["queued"] <= 100  # bounded memory
        assert handler.flush(5)
    finally:
        log.removeHandler(handler)
        handler.close()
        hung.close()
    stats = handler.stats()
    assert elapsed < 2.0  # no network on the logging path
    assert stats["sent"] == 0
    assert stats["dropped_overflow"] + stats["dropped_send_error"] == 5000
    assert stats["dropped_overflow"] >= 4000  # the oldest went first
    assert capsys.readouterr().err.count("cannot push logs") == 1


def test_log_handler_survives_connection_refused(capsys: pytest.CaptureFixture[str]) -> None:
    from sdk_helpers import free_port

    handler = VigilLogHandler(f"http://127.0.0.1:{free_port()}", batch_size=5, flush_interval=0.01)
    log = logging.getLogger("vigil-refused")
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    log.propagate = False
    try:
        for i in range(50):
            log.info("x %d", i)
        assert handler.flush(5)
    finally:
        log.removeHandler(handler)
        handler.close()
    assert handler.stats()["dropped_send_error"] == 50
    assert capsys.readouterr().err.count("cannot push logs") == 1


def test_json_lines_for_values_orjson_refuses_and_timestamps_across_seconds() -> None:
    from vigil.sdk.logging import JsonFormatter

    fmt = JsonFormatter("svc", {"env": "prod"})
    record = logging.LogRecord("n", logging.INFO, "m.py", 3, "big %d", (2**70,), None)
    record.huge = 2**70  # beyond 64 bits: orjson refuses, the stdlib path takes over
    record.created = 86_400.25
    out = json.loads(fmt.format(record))
    assert out["huge"] == 2**70 and out["message"] == f"big {2**70}"
    assert out["timestamp"] == "1970-01-02T00:00:00.250Z" and out["env"] == "prod"
    for created, expected in (
        (0.5, "1970-01-01T00:00:00.500Z"),
        (61.999, "1970-01-01T00:01:01.999Z"),
    ):
        record.created = created
        assert json.loads(fmt.format(record))["timestamp"] == expected
    record.huge = {1: "non-str keys", "nested": ["ü"]}
    line = fmt.format(record)
    assert "ü" in line and json.loads(line)["huge"] == {"1": "non-str keys", "nested": ["ü"]}


def test_buffered_handler_writes_off_the_caller_and_never_raises() -> None:
    stream = io.StringIO()
    log = sdk.setup_logging(
        service="s", stream=stream, logger="vigil-buffered", buffered=True, flush_interval=0.05
    )
    log.propagate = False
    try:
        log.info("one", extra={"k": 1})
        assert stream.getvalue() == ""  # buffered: nothing written on the caller's thread
        deadline = time.monotonic() + 5
        while not stream.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)  # the writer thread flushes within flush_interval
        (line,) = stream.getvalue().splitlines()
        assert json.loads(line)["message"] == "one" and json.loads(line)["k"] == 1

        class Broken(io.StringIO):
            def write(self, s: str) -> int:
                raise OSError(28, "No space left on device")

        handler = log.handlers[0]
        assert isinstance(handler, sdk.logging.BufferedJsonHandler)
        handler.writer.stream = Broken()
        log.info("two")
        handler.flush()  # the write fails inside the writer, not in the application
        assert handler.writer.stats()["dropped_error"] == 1
    finally:
        for h in list(log.handlers):
            log.removeHandler(h)
            h.close()


def test_default_handler_writes_at_once() -> None:
    stream = io.StringIO()
    log = sdk.setup_logging(service="s", stream=stream, logger="vigil-unbuffered")
    log.propagate = False
    try:
        log.warning("now")
        assert json.loads(stream.getvalue())["message"] == "now"
    finally:
        for h in list(log.handlers):
            log.removeHandler(h)
