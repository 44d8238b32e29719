"""Redis exporter against the real Redis on 127.0.0.1:6379."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

import pytest
import redis
from exporter_helpers import free_port, scrape, value, values

from vigil.exporters import create

ADDR = "127.0.0.1:6379"
DB = 11  # a database the other tests leave alone


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    c = redis.Redis(host="127.0.0.1", port=6379, db=DB, socket_timeout=2)
    try:
        c.ping()
    except redis.RedisError as err:
        pytest.skip(f"no Redis on {ADDR}: {err}")
    yield c
    c.close()


def test_info_metrics(client: redis.Redis) -> None:
    key = f"vigil-test-{uuid.uuid4()}"
    client.set(key, "x", ex=300)
    client.set(key + "-persist", "y")
    client.get(key)
    exporter = create("redis", {"addr": ADDR})
    try:
        s = scrape(exporter)
        before = value(s, "redis_commands_total", cmd="get")
        client.get(key)
        client.get(key)
        s2 = scrape(exporter)
    finally:
        client.delete(key, key + "-persist")
        exporter.close()
    assert value(s, "redis_up") == 1
    assert value(s, "redis_exporter_last_scrape_error", err="") == 0
    assert value(s, "redis_db_keys", db=f"db{DB}") >= 2
    assert value(s, "redis_db_keys_expiring", db=f"db{DB}") >= 1
    # avg_ttl is a lazily sampled estimate: 0 until Redis has sampled the key.
    assert 0 <= value(s, "redis_db_avg_ttl_seconds", db=f"db{DB}") <= 300
    assert ("redis_db_keys", frozenset({("db", "db15")})) in s  # empty dbs report 0
    assert value(s, "redis_memory_used_bytes") > 0
    assert value(s, "redis_memory_max_bytes") >= 0
    assert value(s, "redis_connected_clients") >= 1
    assert value(s, "redis_uptime_in_seconds") > 0
    assert value(s2, "redis_commands_total", cmd="get") >= before + 2
    assert value(s2, "redis_commands_duration_seconds_total", cmd="get") > 0
    for name in (
        "redis_blocked_clients",
        "redis_commands_processed_total",
        "redis_keyspace_hits_total",
        "redis_keyspace_misses_total",
        "redis_connected_slaves",
        "redis_evicted_keys_total",
        "redis_expired_keys_total",
        "redis_start_time_seconds",
        "redis_cpu_sys_seconds_total",
        "redis_net_input_bytes_total",
    ):
        assert values(s, name), name
    (info,) = values(s, "redis_instance_info")
    labels = dict(info)
    assert labels["role"] in ("master", "slave")
    assert labels["tcp_port"] == "6379"
    assert labels["redis_version"].count(".") == 2


def test_unreachable_redis_reports_down(caplog: pytest.LogCaptureFixture) -> None:
    exporter = create("redis", {"addr": f"redis://:secret@127.0.0.1:{free_port()}", "timeout": "1"})
    with caplog.at_level(logging.WARNING, logger="vigil.exporters.redis"):
        s = scrape(exporter)
        scrape(exporter)
    exporter.close()
    assert value(s, "redis_up") == 0
    (err,) = values(s, "redis_exporter_last_scrape_error")
    assert "ConnectionError" in dict(err)["err"]
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1, "the same reason is logged once, not every scrape"
    assert "ConnectionError" in messages[0] and "secret" not in messages[0]


def test_wrong_password_reports_down(client: redis.Redis, caplog: pytest.LogCaptureFixture) -> None:
    exporter = create("redis", {"addr": ADDR, "password": "definitely-wrong", "user": "nobody"})
    with caplog.at_level(logging.WARNING, logger="vigil.exporters.redis"):
        s = scrape(exporter)
    exporter.close()
    assert value(s, "redis_up") == 0
    assert caplog.records
