"""PostgreSQL exporter: the postgres_exporter (prometheus-community) metrics dashboards use.

Families: ``pg_up``; ``pg_stat_database_*{datid,datname}``;
``pg_stat_activity_count`` and ``pg_stat_activity_max_tx_duration`` by
``{datname,state}``; ``pg_locks_count{datname,mode}``;
``pg_database_size_bytes{datname}``; ``pg_replication_lag_seconds`` (and the
older ``pg_replication_lag``) with ``pg_replication_is_replica``;
``pg_settings_*`` for every numeric setting, converted to seconds and bytes as
postgres_exporter does; ``pg_postmaster_start_time_seconds``; ``pg_static``.

postgres_exporter names counters without ``_total`` (``pg_stat_database_xact_commit``);
the names are kept byte-identical and typed ``untyped`` (see ``base.Family``).

Options: ``dsn`` (``postgresql://postgres@127.0.0.1:5432/postgres``; a libpq
connection string or URL), ``password`` or ``password_file`` (kept out of the
DSN so it never reaches a log), ``timeout`` seconds (5; connect and statement).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
from prometheus_client.metrics_core import Metric

from vigil.exporters.base import (
    ErrorLogger,
    Family,
    Options,
    opt_float,
    opt_str,
    reject_unknown,
    up_metric,
)

log = logging.getLogger("vigil.exporters.postgres")

OPTIONS = ("dsn", "password", "password_file", "timeout")

# pg_stat_database column -> (kind, help). numbackends is the only gauge.
_STAT_DATABASE: dict[str, tuple[str, str]] = {
    "numbackends": ("gauge", "Number of backends currently connected to this database."),
    "xact_commit": ("untyped", "Number of transactions in this database that have been committed."),
    "xact_rollback": (
        "untyped",
        "Number of transactions in this database that have been rolled back.",
    ),
    "blks_read": ("untyped", "Number of disk blocks read in this database."),
    "blks_hit": ("untyped", "Number of times disk blocks were found already in the buffer cache."),
    "tup_returned": ("untyped", "Number of rows returned by queries in this database."),
    "tup_fetched": ("untyped", "Number of rows fetched by queries in this database."),
    "tup_inserted": ("untyped", "Number of rows inserted by queries in this database."),
    "tup_updated": ("untyped", "Number of rows updated by queries in this database."),
    "tup_deleted": ("untyped", "Number of rows deleted by queries in this database."),
    "conflicts": (
        "untyped",
        "Number of queries canceled due to conflicts with recovery in this database.",
    ),
    "temp_files": ("untyped", "Number of temporary files created by queries in this database."),
    "temp_bytes": (
        "untyped",
        "Total amount of data written to temporary files by queries in this database.",
    ),
    "deadlocks": ("untyped", "Number of deadlocks detected in this database."),
    "blk_read_time": (
        "untyped",
        "Time spent reading data file blocks by backends in this database, in milliseconds.",
    ),
    "blk_write_time": (
        "untyped",
        "Time spent writing data file blocks by backends in this database, in milliseconds.",
    ),
}

ACTIVITY_STATES = (
    "active",
    "idle",
    "idle in transaction",
    "idle in transaction (aborted)",
    "fastpath function call",
    "disabled",
)

LOCK_MODES = (
    "accesssharelock",
    "rowsharelock",
    "rowexclusivelock",
    "shareupdateexclusivelock",
    "sharelock",
    "sharerowexclusivelock",
    "exclusivelock",
    "accessexclusivelock",
    "sireadlock",
)

# Every (database, state) pair is reported, 0 when empty, so absent() is never needed.
_ACTIVITY_SQL = """
SELECT d.datname, s.state, coalesce(a.n, 0), coalesce(a.max_tx, 0)
FROM pg_database d
CROSS JOIN unnest(%(states)s::text[]) AS s(state)
LEFT JOIN (
    SELECT datname, state, count(*) AS n,
           max(extract(epoch FROM now() - xact_start))::float8 AS max_tx
    FROM pg_stat_activity GROUP BY datname, state
) a ON a.datname = d.datname AND a.state = s.state
"""

_LOCKS_SQL = """
SELECT d.datname, m.mode, coalesce(l.n, 0)
FROM pg_database d
CROSS JOIN unnest(%(modes)s::text[]) AS m(mode)
LEFT JOIN (
    SELECT database, lower(mode) AS mode, count(*) AS n FROM pg_locks
    WHERE database IS NOT NULL GROUP BY database, lower(mode)
) l ON l.database = d.oid AND l.mode = m.mode
"""

_SIZE_SQL = """
SELECT datname, pg_database_size(datname)::float8 FROM pg_database
WHERE datallowconn AND has_database_privilege(datname, 'CONNECT')
"""

_REPLICATION_SQL = """
SELECT pg_is_in_recovery(),
       CASE WHEN NOT pg_is_in_recovery() THEN 0
            ELSE greatest(0, extract(epoch FROM now() - pg_last_xact_replay_timestamp()))
       END::float8
"""

_SETTINGS_SQL = """
SELECT name, setting, coalesce(unit, ''), short_desc, vartype FROM pg_settings
WHERE vartype IN ('bool', 'integer', 'real')
"""

# Units of pg_settings -> (metric suffix, factor to seconds or bytes).
_UNITS: dict[str, tuple[str, float]] = {
    "ms": ("_seconds", 1e-3),
    "s": ("_seconds", 1.0),
    "min": ("_seconds", 60.0),
    "B": ("_bytes", 1.0),
    "kB": ("_bytes", 1024.0),
    "8kB": ("_bytes", 8192.0),
    "16kB": ("_bytes", 16384.0),
    "32kB": ("_bytes", 32768.0),
    "MB": ("_bytes", 1024.0**2),
    "16MB": ("_bytes", 16 * 1024.0**2),
    "GB": ("_bytes", 1024.0**3),
}


def _stat_database(cur: psycopg.Cursor[Any]) -> list[Metric]:
    columns = list(_STAT_DATABASE)
    fams = {
        c: Family(f"pg_stat_database_{c}", h, k, ["datid", "datname"])
        for c, (k, h) in _STAT_DATABASE.items()
    }
    reset = Family(
        "pg_stat_database_stats_reset",
        "Time at which these statistics were last reset.",
        "gauge",
        ["datid", "datname"],
    )
    cur.execute(
        f"SELECT datid::text, datname, {', '.join(columns)}, "
        "coalesce(extract(epoch FROM stats_reset), 0)::float8 FROM pg_stat_database"
    )
    for row in cur.fetchall():
        datid, datname = row[0], row[1]
        if datname is None:
            continue  # the shared-objects row, as postgres_exporter skips it
        for column, v in zip(columns, row[2:], strict=False):
            fams[column].add(float(v or 0), datid, datname)
        reset.add(float(row[-1]), datid, datname)
    return [f.metric for f in fams.values()] + [reset.metric]


def _activity(cur: psycopg.Cursor[Any]) -> list[Metric]:
    count = Family(
        "pg_stat_activity_count",
        "number of connections in this state",
        "gauge",
        ["datname", "state"],
    )
    max_tx = Family(
        "pg_stat_activity_max_tx_duration",
        "max duration in seconds any active transaction has been running",
        "gauge",
        ["datname", "state"],
    )
    cur.execute(_ACTIVITY_SQL, {"states": list(ACTIVITY_STATES)})
    for datname, state, n, longest in cur.fetchall():
        count.add(float(n), datname, state)
        max_tx.add(float(longest), datname, state)
    return [count.metric, max_tx.metric]


def _locks(cur: psycopg.Cursor[Any]) -> list[Metric]:
    fam = Family("pg_locks_count", "Number of locks", "gauge", ["datname", "mode"])
    cur.execute(_LOCKS_SQL, {"modes": list(LOCK_MODES)})
    for datname, mode, n in cur.fetchall():
        fam.add(float(n), datname, mode)
    return [fam.metric]


def _sizes(cur: psycopg.Cursor[Any]) -> list[Metric]:
    fam = Family("pg_database_size_bytes", "Disk space used by the database", "gauge", ["datname"])
    cur.execute(_SIZE_SQL)
    for datname, size in cur.fetchall():
        fam.add(float(size), datname)
    return [fam.metric]


def _replication(cur: psycopg.Cursor[Any]) -> list[Metric]:
    cur.execute(_REPLICATION_SQL)
    is_replica, lag = cur.fetchone() or (False, 0.0)
    out = []
    for name, doc, v in (
        ("pg_replication_lag_seconds", "Replication lag behind master in seconds", lag),
        ("pg_replication_lag", "Replication lag behind master in seconds (older name)", lag),
        (
            "pg_replication_is_replica",
            "Indicates if the server is a replica",
            1.0 if is_replica else 0.0,
        ),
    ):
        fam = Family(name, doc, "gauge")
        fam.add(float(v or 0))
        out.append(fam.metric)
    return out


def _settings(cur: psycopg.Cursor[Any]) -> list[Metric]:
    cur.execute(_SETTINGS_SQL)
    out = []
    for name, setting, unit, desc, vartype in cur.fetchall():
        if vartype == "bool":
            value = 1.0 if setting == "on" else 0.0
        else:
            try:
                value = float(setting)
            except ValueError:
                continue
        suffix, factor = _UNITS.get(unit, ("", 1.0))
        # -1 means "disabled" for many settings; scaling it would invent a value.
        if value != -1:
            value *= factor
        metric = "pg_settings_" + re.sub(r"[^a-zA-Z0-9_]", "_", name) + suffix
        fam = Family(metric, f"Server Parameter: {name} {desc}".strip(), "gauge")
        fam.add(value)
        out.append(fam.metric)
    return out


def _static(cur: psycopg.Cursor[Any]) -> list[Metric]:
    cur.execute(
        "SELECT version(), current_setting('server_version'), extract(epoch FROM pg_postmaster_start_time())::float8"
    )
    version, short, started = cur.fetchone() or ("", "", 0.0)
    static = Family(
        "pg_static", "Version string as reported by postgres", "gauge", ["short_version", "version"]
    )
    static.add(1.0, _short_version(short), version)
    start = Family("pg_postmaster_start_time_seconds", "Time at which postmaster started", "gauge")
    start.add(float(started))
    return [static.metric, start.metric]


def _short_version(server_version: str) -> str:
    """'15.20 (Debian ...)' -> '15.20.0', the semver postgres_exporter reports."""
    parts = re.findall(r"\d+", server_version.split()[0] if server_version else "")[:3]
    parts += ["0"] * (3 - len(parts))
    return ".".join(parts)


QUERIES: dict[str, Callable[[psycopg.Cursor[Any]], list[Metric]]] = {
    "stat_database": _stat_database,
    "stat_activity": _activity,
    "locks": _locks,
    "database_size": _sizes,
    "replication": _replication,
    "settings": _settings,
    "static": _static,
}


class PostgresExporter:
    """Scrapes one PostgreSQL server per ``collect()``; ``pg_up 0`` when it cannot."""

    name = "postgres"

    def __init__(self, options: Options | None = None) -> None:
        options = options or {}
        reject_unknown(self.name, options, OPTIONS)
        self.dsn = opt_str(options, "dsn", "postgresql://postgres@127.0.0.1:5432/postgres")
        password = opt_str(options, "password", "") or None
        password_file = opt_str(options, "password_file", "")
        if password_file:
            password = Path(password_file).read_text().strip()
        self._password = password
        self.timeout = opt_float(options, "timeout", 5.0)
        self._conn: psycopg.Connection[Any] | None = None
        self._errors = ErrorLogger(log, f"postgres exporter ({_redact(self.dsn)})")

    def describe(self) -> list[Metric]:
        return []

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self.close()
            extra: dict[str, Any] = {}
            if self._password is not None:
                extra["password"] = self._password
            self._conn = psycopg.connect(
                self.dsn,
                autocommit=True,
                connect_timeout=max(1, int(self.timeout)),
                application_name="vigil-exporter",
                # A scrape must not hang on a lock or a slow catalog query.
                options=f"-c statement_timeout={int(self.timeout * 1000)}",
                **extra,
            )
        return self._conn

    def _query_all(self) -> list[Metric]:
        conn = self._connection()
        metrics: list[Metric] = []
        with conn.cursor() as cur:
            for query_name, query in QUERIES.items():
                try:
                    metrics.extend(query(cur))
                except psycopg.DatabaseError as err:
                    if conn.broken:
                        raise
                    # One denied view (e.g. no pg_monitor role) must not hide the rest.
                    log.warning("postgres exporter: query %s failed: %s", query_name, err)
        return metrics

    def collect(self) -> Iterator[Metric]:
        start = time.perf_counter()
        metrics: list[Metric] = []
        error = ""
        reused = self._conn is not None
        try:
            try:
                metrics = self._query_all()
            except psycopg.OperationalError:
                if not reused:
                    raise
                # A pooled connection the server dropped (restart, idle timeout):
                # retry once on a fresh one before calling the server down.
                self.close()
                metrics = self._query_all()
            self._errors.ok()
        except (psycopg.Error, OSError) as err:
            error = f"{type(err).__name__}: {str(err).strip()}"
            self._errors.failed(error)
            self.close()
            metrics = []
        yield up_metric(
            "pg_up",
            "Whether the last scrape of metrics from PostgreSQL was able to connect to the server (1 for yes, 0 for no).",
            not error,
        )
        yield from metrics
        last_error = Family(
            "pg_exporter_last_scrape_error",
            "Whether the last scrape of metrics from PostgreSQL resulted in an error (1 for error, 0 for success).",
            "gauge",
        )
        last_error.add(1.0 if error else 0.0)
        yield last_error.metric
        duration = Family(
            "pg_exporter_last_scrape_duration_seconds",
            "Duration of the last scrape of metrics from PostgreSQL.",
            "gauge",
        )
        duration.add(time.perf_counter() - start)
        yield duration.metric


def _redact(dsn: str) -> str:
    """Hide a password embedded in a DSN before it reaches a log line."""
    dsn = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", dsn)
    return re.sub(r"(password\s*=\s*)\S+", r"\1***", dsn)


def create(options: Options) -> PostgresExporter:
    """Factory for the exporter registry."""
    return PostgresExporter(options)
