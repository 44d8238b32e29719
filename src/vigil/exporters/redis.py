"""Redis exporter: ``INFO ALL`` as oliver006/redis_exporter names it.

Dashboards and rules written for redis_exporter (``redis_up``,
``redis_memory_used_bytes / redis_memory_max_bytes``, ``rate(redis_commands_total[5m])``,
``redis_db_keys{db="db0"}``) work unchanged.  Every scrape runs one ``INFO ALL``
(plus ``CONFIG GET databases`` so empty databases report 0 keys), over a pooled
connection that redis-py re-establishes after failures.

Options: ``addr`` (``redis://127.0.0.1:6379``; ``host:port``, ``redis://``,
``rediss://`` and ``unix://`` accepted), ``user``, ``password`` (or
``password_file``), ``timeout`` seconds (5).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import redis as redis_py
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

log = logging.getLogger("vigil.exporters.redis")

OPTIONS = ("addr", "user", "password", "password_file", "timeout")

# INFO field -> (metric name, kind, scale). Names as redis_exporter's metricMapGauges
# and metricMapCounters; a scale converts Redis units (usec, ms) to seconds.
_GAUGES: dict[str, tuple[str, float]] = {
    "uptime_in_seconds": ("uptime_in_seconds", 1.0),
    "process_id": ("process_id", 1.0),
    "io_threads_active": ("io_threads_active", 1.0),
    "connected_clients": ("connected_clients", 1.0),
    "blocked_clients": ("blocked_clients", 1.0),
    "tracking_clients": ("tracking_clients", 1.0),
    "clients_in_timeout_table": ("clients_in_timeout_table", 1.0),
    "maxclients": ("max_clients", 1.0),
    "client_recent_max_input_buffer": ("client_recent_max_input_buffer_bytes", 1.0),
    "client_recent_max_output_buffer": ("client_recent_max_output_buffer_bytes", 1.0),
    "used_memory": ("memory_used_bytes", 1.0),
    "used_memory_rss": ("memory_used_rss_bytes", 1.0),
    "used_memory_peak": ("memory_used_peak_bytes", 1.0),
    "used_memory_lua": ("memory_used_lua_bytes", 1.0),
    "used_memory_overhead": ("memory_used_overhead_bytes", 1.0),
    "used_memory_startup": ("memory_used_startup_bytes", 1.0),
    "used_memory_dataset": ("memory_used_dataset_bytes", 1.0),
    "used_memory_scripts": ("memory_used_scripts_bytes", 1.0),
    "maxmemory": ("memory_max_bytes", 1.0),
    "total_system_memory": ("total_system_memory_bytes", 1.0),
    "mem_fragmentation_ratio": ("mem_fragmentation_ratio", 1.0),
    "mem_fragmentation_bytes": ("mem_fragmentation_bytes", 1.0),
    "mem_clients_slaves": ("mem_clients_slaves", 1.0),
    "mem_clients_normal": ("mem_clients_normal", 1.0),
    "loading": ("loading_dump_file", 1.0),
    "rdb_changes_since_last_save": ("rdb_changes_since_last_save", 1.0),
    "rdb_bgsave_in_progress": ("rdb_bgsave_in_progress", 1.0),
    "rdb_last_save_time": ("rdb_last_save_timestamp_seconds", 1.0),
    "rdb_last_bgsave_time_sec": ("rdb_last_bgsave_duration_sec", 1.0),
    "rdb_current_bgsave_time_sec": ("rdb_current_bgsave_duration_sec", 1.0),
    "aof_enabled": ("aof_enabled", 1.0),
    "aof_rewrite_in_progress": ("aof_rewrite_in_progress", 1.0),
    "aof_rewrite_scheduled": ("aof_rewrite_scheduled", 1.0),
    "aof_last_rewrite_time_sec": ("aof_last_rewrite_duration_sec", 1.0),
    "aof_current_rewrite_time_sec": ("aof_current_rewrite_duration_sec", 1.0),
    "connected_slaves": ("connected_slaves", 1.0),
    "master_repl_offset": ("master_repl_offset", 1.0),
    "repl_backlog_active": ("repl_backlog_is_active", 1.0),
    "repl_backlog_size": ("repl_backlog_size", 1.0),
    "repl_backlog_histlen": ("repl_backlog_history_bytes", 1.0),
    "master_last_io_seconds_ago": ("master_last_io_seconds_ago", 1.0),
    "master_sync_in_progress": ("master_sync_in_progress", 1.0),
    "slave_repl_offset": ("slave_repl_offset", 1.0),
    "slave_priority": ("slave_priority", 1.0),
    "pubsub_channels": ("pubsub_channels", 1.0),
    "pubsub_patterns": ("pubsub_patterns", 1.0),
    "latest_fork_usec": ("latest_fork_seconds", 1e-6),
    "instantaneous_ops_per_sec": ("instantaneous_ops_per_sec", 1.0),
    "instantaneous_input_kbps": ("instantaneous_input_kbps", 1.0),
    "instantaneous_output_kbps": ("instantaneous_output_kbps", 1.0),
    "expired_stale_perc": ("expired_stale_percentage", 1.0),
}

_COUNTERS: dict[str, tuple[str, float]] = {
    "total_connections_received": ("connections_received_total", 1.0),
    "total_commands_processed": ("commands_processed_total", 1.0),
    "total_net_input_bytes": ("net_input_bytes_total", 1.0),
    "total_net_output_bytes": ("net_output_bytes_total", 1.0),
    "rejected_connections": ("rejected_connections_total", 1.0),
    "expired_keys": ("expired_keys_total", 1.0),
    "evicted_keys": ("evicted_keys_total", 1.0),
    "keyspace_hits": ("keyspace_hits_total", 1.0),
    "keyspace_misses": ("keyspace_misses_total", 1.0),
    "used_cpu_sys": ("cpu_sys_seconds_total", 1.0),
    "used_cpu_user": ("cpu_user_seconds_total", 1.0),
    "used_cpu_sys_children": ("cpu_sys_children_seconds_total", 1.0),
    "used_cpu_user_children": ("cpu_user_children_seconds_total", 1.0),
}

# Status strings redis_exporter turns into 1/0 gauges.
_STATUS: dict[str, str] = {
    "rdb_last_bgsave_status": "rdb_last_bgsave_status",
    "aof_last_bgrewrite_status": "aof_last_bgrewrite_status",
    "aof_last_write_status": "aof_last_write_status",
    "master_link_status": "master_link_up",
}

_INFO_LABELS = (
    "role",
    "redis_version",
    "redis_build_id",
    "redis_mode",
    "os",
    "maxmemory_policy",
    "tcp_port",
    "run_id",
    "process_id",
    "master_replid",
)


def _num(value: object) -> float | None:
    """INFO values are already int/float when numeric; anything else is skipped."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value))
    except ValueError:
        return None


def info_metrics(info: Mapping[str, Any], databases: int, now: float) -> list[Metric]:
    """Turn a parsed ``INFO ALL`` reply into redis_exporter's metric families.

    ``databases`` is the configured database count (0 when unknown); empty
    databases below it report 0 keys, as redis_exporter does.
    """
    out: list[Metric] = []
    for table, kind in ((_GAUGES, "gauge"), (_COUNTERS, "untyped")):
        for field, (suffix, scale) in table.items():
            if field not in info:
                continue
            value = _num(info[field])
            if value is None:
                continue
            name = f"redis_{suffix}"
            fam = Family(
                name, f"Redis INFO field {field}.", "counter" if name.endswith("_total") else kind
            )
            fam.add(value * scale)
            out.append(fam.metric)
    for field, suffix in _STATUS.items():
        if field in info:
            fam = Family(f"redis_{suffix}", f"Redis INFO field {field} (1 = ok/up).", "gauge")
            fam.add(1.0 if str(info[field]) in ("ok", "up") else 0.0)
            out.append(fam.metric)
    if "uptime_in_seconds" in info:
        start = Family(
            "redis_start_time_seconds",
            "Start time of the Redis instance since unix epoch in seconds.",
            "gauge",
        )
        start.add(now - float(info["uptime_in_seconds"]))
        out.append(start.metric)
    instance = Family(
        "redis_instance_info", "Information about the Redis instance.", "gauge", _INFO_LABELS
    )
    instance.add(1.0, *(str(info.get(label, "")) for label in _INFO_LABELS))
    out.append(instance.metric)
    out.extend(_keyspace(info, databases))
    out.extend(_commandstats(info))
    out.extend(_replicas(info))
    return out


def _keyspace(info: Mapping[str, Any], databases: int) -> list[Metric]:
    keys = Family("redis_db_keys", "Total number of keys by DB.", "gauge", ["db"])
    expiring = Family(
        "redis_db_keys_expiring", "Total number of expiring keys by DB.", "gauge", ["db"]
    )
    avg_ttl = Family("redis_db_avg_ttl_seconds", "Avg TTL in seconds.", "gauge", ["db"])
    seen = set()
    for field, stats in info.items():
        if field.startswith("db") and field[2:].isdigit() and isinstance(stats, Mapping):
            seen.add(field)
            keys.add(float(stats.get("keys", 0)), field)
            expiring.add(float(stats.get("expires", 0)), field)
            avg_ttl.add(float(stats.get("avg_ttl", 0)) / 1000.0, field)
    for n in range(databases):
        if f"db{n}" not in seen:
            keys.add(0.0, f"db{n}")
            expiring.add(0.0, f"db{n}")
    return [keys.metric, expiring.metric, avg_ttl.metric]


def _commandstats(info: Mapping[str, Any]) -> list[Metric]:
    calls = Family("redis_commands_total", "Total number of calls per command.", "counter", ["cmd"])
    usec = Family(
        "redis_commands_duration_seconds_total",
        "Total amount of time in seconds spent per command.",
        "counter",
        ["cmd"],
    )
    rejected = Family(
        "redis_commands_rejected_calls_total",
        "Total number of errors prior command execution per command.",
        "counter",
        ["cmd"],
    )
    failed = Family(
        "redis_commands_failed_calls_total",
        "Total number of errors within command execution per command.",
        "counter",
        ["cmd"],
    )
    errors = Family(
        "redis_errors_total", "Total number of errors per error type.", "counter", ["err"]
    )
    for field, stats in info.items():
        if not isinstance(stats, Mapping):
            continue
        if field.startswith("cmdstat_"):
            # Redis 7 subcommands appear as cmdstat_config|get; keep them as-is.
            cmd = field[len("cmdstat_") :]
            calls.add(float(stats.get("calls", 0)), cmd)
            usec.add(float(stats.get("usec", 0)) / 1e6, cmd)
            if "rejected_calls" in stats:
                rejected.add(float(stats["rejected_calls"]), cmd)
            if "failed_calls" in stats:
                failed.add(float(stats["failed_calls"]), cmd)
        elif field.startswith("errorstat_"):
            errors.add(float(stats.get("count", 0)), field[len("errorstat_") :])
    return [calls.metric, usec.metric, rejected.metric, failed.metric, errors.metric]


def _replicas(info: Mapping[str, Any]) -> list[Metric]:
    labels = ["slave_ip", "slave_port", "slave_state"]
    offset = Family(
        "redis_connected_slave_offset_bytes", "Offset of connected slave.", "gauge", labels
    )
    lag = Family("redis_connected_slave_lag_seconds", "Lag of connected slave.", "gauge", labels)
    for field, stats in info.items():
        if field.startswith("slave") and field[5:].isdigit() and isinstance(stats, Mapping):
            values = (
                str(stats.get("ip", "")),
                str(stats.get("port", "")),
                str(stats.get("state", "")),
            )
            offset.add(float(stats.get("offset", 0)), *values)
            lag.add(float(stats.get("lag", 0)), *values)
    return [offset.metric, lag.metric]


class RedisExporter:
    """Scrapes one Redis server per ``collect()``; ``redis_up 0`` when it cannot."""

    name = "redis"

    def __init__(self, options: Options | None = None) -> None:
        options = options or {}
        reject_unknown(self.name, options, OPTIONS)
        addr = opt_str(options, "addr", "redis://127.0.0.1:6379")
        if "://" not in addr:
            addr = f"redis://{addr}"
        self.addr = addr
        password = opt_str(options, "password", "") or None
        password_file = opt_str(options, "password_file", "")
        if password_file:
            password = Path(password_file).read_text().strip()
        timeout = opt_float(options, "timeout", 5.0)
        self._client = redis_py.Redis.from_url(
            addr,
            username=opt_str(options, "user", "") or None,
            password=password,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            decode_responses=True,
        )
        self._errors = ErrorLogger(log, f"redis exporter ({_redact(addr)})")
        self._databases: int | None = None

    def describe(self) -> list[Metric]:
        return []

    def close(self) -> None:
        self._client.close()

    def _database_count(self) -> int:
        if self._databases is None:
            try:
                reply = self._client.config_get("databases")
                self._databases = int(str(reply.get("databases", 0)))
            except (redis_py.RedisError, ValueError):
                # CONFIG is often renamed or ACL-denied on managed Redis; not fatal.
                self._databases = 0
        return self._databases

    def collect(self) -> Iterator[Metric]:
        start = time.perf_counter()
        error = ""
        metrics: list[Metric] = []
        try:
            info = self._client.info("all")
            metrics = info_metrics(info, self._database_count(), time.time())
            self._errors.ok()
        except (redis_py.RedisError, OSError) as err:
            error = f"{type(err).__name__}: {err}"
            self._errors.failed(error)
        yield up_metric("redis_up", "Information about the Redis instance.", not error)
        yield from metrics
        duration = Family(
            "redis_exporter_last_scrape_duration_seconds", "The last scrape duration.", "gauge"
        )
        duration.add(time.perf_counter() - start)
        yield duration.metric
        last_error = Family(
            "redis_exporter_last_scrape_error", "The last scrape error status.", "gauge", ["err"]
        )
        last_error.add(1.0 if error else 0.0, error)
        yield last_error.metric


def _redact(addr: str) -> str:
    """Hide a password embedded in a URL before it reaches a log line."""
    scheme, sep, rest = addr.partition("://")
    if "@" in rest:
        rest = "***@" + rest.split("@", 1)[1]
    return scheme + sep + rest


def create(options: Options) -> RedisExporter:
    """Factory for the exporter registry."""
    return RedisExporter(options)
