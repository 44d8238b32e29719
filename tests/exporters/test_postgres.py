"""PostgreSQL exporter against the real server on 127.0.0.1:5432 (user postgres, trust)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from exporter_helpers import free_port, scrape, value, values

from vigil.exporters import create

DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture
def conn() -> Iterator[psycopg.Connection[Any]]:
    try:
        c = psycopg.connect(DSN, connect_timeout=3)
    except psycopg.OperationalError as err:
        pytest.skip(f"no PostgreSQL at {DSN}: {err}")
    yield c
    c.close()


def test_metrics_from_live_server(conn: psycopg.Connection[Any]) -> None:
    # Hold a transaction open so activity and lock counts have something to show.
    conn.execute("SELECT count(*) FROM pg_class").fetchone()
    exporter = create("postgres", {"dsn": DSN})
    try:
        s = scrape(exporter)
        s2 = scrape(exporter)
    finally:
        exporter.close()
        conn.rollback()
    assert value(s, "pg_up") == 1
    assert value(s, "pg_exporter_last_scrape_error") == 0
    datid = next(
        dict(k)["datid"]
        for k in values(s, "pg_stat_database_numbackends")
        if dict(k)["datname"] == "postgres"
    )
    db = {"datid": datid, "datname": "postgres"}
    assert value(s, "pg_stat_database_numbackends", **db) >= 2
    for column in (
        "xact_commit",
        "xact_rollback",
        "blks_read",
        "blks_hit",
        "tup_returned",
        "tup_fetched",
        "tup_inserted",
        "tup_updated",
        "tup_deleted",
        "conflicts",
        "deadlocks",
        "temp_bytes",
        "temp_files",
    ):
        assert value(s, f"pg_stat_database_{column}", **db) >= 0
    assert value(s2, "pg_stat_database_xact_commit", **db) >= value(
        s, "pg_stat_database_xact_commit", **db
    )
    assert value(s, "pg_stat_activity_count", datname="postgres", state="idle in transaction") >= 1
    assert value(s, "pg_stat_activity_count", datname="postgres", state="active") >= 1
    assert value(s, "pg_stat_activity_count", datname="template1", state="disabled") == 0
    assert value(s, "pg_locks_count", datname="postgres", mode="accesssharelock") >= 1
    assert len({dict(k)["mode"] for k in values(s, "pg_locks_count")}) == 9
    assert value(s, "pg_database_size_bytes", datname="postgres") > 1_000_000
    assert value(s, "pg_replication_is_replica") == 0
    assert value(s, "pg_replication_lag_seconds") == 0
    (max_conn,) = values(s, "pg_settings_max_connections").values()
    assert max_conn == float(conn.execute("SHOW max_connections").fetchone()[0])  # type: ignore[index]
    assert value(s, "pg_settings_shared_buffers_bytes") % 8192 == 0
    assert value(s, "pg_settings_statement_timeout_seconds") >= 0
    assert value(s, "pg_postmaster_start_time_seconds") > 1e9
    (static,) = values(s, "pg_static")
    assert dict(static)["version"].startswith("PostgreSQL")
    assert dict(static)["short_version"].count(".") == 2


def test_unreachable_server_reports_down(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    exporter = create(
        "postgres",
        {"dsn": f"postgresql://postgres:hunter2@127.0.0.1:{port}/postgres", "timeout": "1"},
    )
    with caplog.at_level(logging.WARNING, logger="vigil.exporters.postgres"):
        s = scrape(exporter)
        scrape(exporter)
    exporter.close()
    assert value(s, "pg_up") == 0
    assert value(s, "pg_exporter_last_scrape_error") == 1
    assert values(s, "pg_stat_database_numbackends") == {}
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1
    assert str(port) in messages[0] and "hunter2" not in messages[0]


def test_unknown_database_reports_down(
    conn: psycopg.Connection[Any], caplog: pytest.LogCaptureFixture
) -> None:
    exporter = create("postgres", {"dsn": "postgresql://postgres@127.0.0.1:5432/vigil_no_such_db"})
    with caplog.at_level(logging.WARNING, logger="vigil.exporters.postgres"):
        s = scrape(exporter)
    exporter.close()
    assert value(s, "pg_up") == 0
    assert "vigil_no_such_db" in caplog.records[0].getMessage()


def test_recovers_after_server_side_disconnect(conn: psycopg.Connection[Any]) -> None:
    exporter = create("postgres", {"dsn": DSN})
    try:
        assert value(scrape(exporter), "pg_up") == 1
        backend = exporter._conn.info.backend_pid  # type: ignore[attr-defined]
        conn.execute("SELECT pg_terminate_backend(%s)", (backend,))
        conn.commit()
        # The dropped pooled connection is replaced within the same scrape.
        assert value(scrape(exporter), "pg_up") == 1
    finally:
        exporter.close()
