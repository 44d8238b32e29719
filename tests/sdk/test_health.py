from __future__ import annotations

import time
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, generate_latest
from sdk_helpers import Sink, free_port

from vigil.sdk.health import HealthChecker

FIXED = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def test_real_redis_postgres_and_unreachable_port() -> None:
    checker = (
        HealthChecker(now=lambda: FIXED)
        .add_redis("redis", "redis://127.0.0.1:6379/0")
        .add_postgres("postgres", "postgresql://postgres@127.0.0.1:5432/postgres")
        .add_tcp("search", "127.0.0.1", free_port(), critical=False, timeout=1)
        .add_disk("disk", "/", warn_percent=None, critical_percent=None)
    )
    report = checker.run()
    comps = report["components"]
    assert comps["redis"]["status"] == "healthy", comps["redis"]
    assert comps["postgres"]["status"] == "healthy", comps["postgres"]
    assert comps["search"]["status"] == "unhealthy"
    assert "ConnectionRefusedError" in comps["search"]["issues"][0]
    assert report["status"] == "degraded"  # only a non-critical component failed
    assert report["timestamp"] == "2024-05-01T12:00:00.000Z"
    assert all(c["duration_seconds"] >= 0 for c in comps.values())

    checker.add_redis("redis-down", f"redis://127.0.0.1:{free_port()}/0", timeout=1)
    assert checker.run()["status"] == "unhealthy"  # a critical component failed


def test_parallel_timeouts_thresholds_and_metrics(sink: Sink) -> None:
    checker = (
        HealthChecker()
        .add("slow1", lambda: time.sleep(3), timeout=0.3)
        .add("slow2", lambda: time.sleep(3), timeout=0.3, critical=False)
        .add("warn", lambda: {"status": "degraded", "issues": ["cache hit 0.5"], "hit": 0.5})
        .add("boom", lambda: 1 / 0, critical=False)
        .add_http("api", sink.url + "/health", expect_status=204)
        .add_memory(warn_percent=0.0)  # always over: degraded, non-critical
        .add_cpu(warn_percent=None)
    )
    start = time.perf_counter()
    report = checker.run()
    assert time.perf_counter() - start < 1.5  # parallel: one timeout, not the sum
    comps = report["components"]
    assert comps["slow1"]["issues"] == ["timed out after 0.3s"]
    assert comps["warn"] == {**comps["warn"], "status": "degraded", "hit": 0.5}
    assert comps["boom"]["issues"][0].startswith("ZeroDivisionError")
    assert comps["api"]["status"] == "healthy" and comps["api"]["status_code"] == 204
    assert comps["memory"]["status"] == "degraded"
    assert report["status"] == "unhealthy"  # slow1 is critical
    reg = CollectorRegistry()
    reg.register(checker)
    text = generate_latest(reg).decode()
    assert 'health_check_status{component="slow1"} 0.0' in text
    assert 'health_check_status{component="warn"} 0.5' in text
    assert 'health_check_status{component="api"} 1.0' in text
    assert "health_status 0.0" in text
    assert 'health_check_duration_seconds{component="api"}' in text
