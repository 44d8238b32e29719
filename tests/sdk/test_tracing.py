from __future__ import annotations

import os
import subprocess
import sys
import time

from sdk_helpers import Sink

SCRIPT = """
import os, sys, time
from vigil.sdk.tracing import setup_tracing, shutdown_tracing
from opentelemetry import trace

setup_tracing("payments", endpoint=sys.argv[1], version="1.0", environment="test",
              schedule_delay_ms=50)
tracer = trace.get_tracer("t")
with tracer.start_as_current_span("parent-op"):
    pass
pid = os.fork()  # pre-fork server: the child must export on its own
if pid == 0:
    with tracer.start_as_current_span("child-op"):
        pass
    shutdown_tracing()
    os._exit(0)
os.waitpid(pid, 0)
shutdown_tracing()
"""


def test_spans_exported_from_parent_and_forked_child(sink: Sink) -> None:
    sink.status = 200
    endpoint = sink.url + "/v1/traces"
    subprocess.run([sys.executable, "-c", SCRIPT, endpoint], check=True, timeout=30, env=os.environ)
    deadline = time.monotonic() + 5
    while len(sink.requests) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    names = set()
    for r in sink.requests:
        assert r.path == "/v1/traces" and r.headers["content-type"] == "application/x-protobuf"
        req = ExportTraceServiceRequest.FromString(r.body)
        for rs in req.resource_spans:
            attrs = {a.key: a.value.string_value for a in rs.resource.attributes}
            assert attrs["service.name"] == "payments"
            assert attrs["service.version"] == "1.0"
            assert attrs["deployment.environment"] == "test"
            names |= {s.name for ss in rs.scope_spans for s in ss.spans}
    assert names == {"parent-op", "child-op"}


def test_fastapi_native_telemetry_is_not_doubled_by_contrib_middleware() -> None:
    from fastapi import FastAPI

    from vigil.sdk.tracing import has_native_telemetry, instrument_app

    app = FastAPI()
    if not has_native_telemetry(app):  # older FastAPI: the contrib instrumentor applies
        return
    assert instrument_app(app)
    app.build_middleware_stack()
    layers = [m.cls.__name__ for m in app.user_middleware]  # type: ignore[attr-defined]
    assert "OpenTelemetryMiddleware" not in layers
