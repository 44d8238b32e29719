"""Component health checks with an overall ``healthy``/``degraded``/``unhealthy``.

The rule, from the seeds' ``HealthChecker`` made explicit:

* a *critical* component that is ``unhealthy`` makes the whole service unhealthy;
* a non-critical component that is unhealthy, or any component that is
  ``degraded`` (a warning threshold crossed, e.g. slow or 85 % full), makes it
  degraded;
* otherwise it is healthy.

Checks run in parallel on a small thread pool, each bounded by its timeout, so a
hung dependency costs one timeout, not the sum of them. A check is any callable
returning ``None``/``True`` (healthy), ``False`` (unhealthy) or a dict with
``status``, optional ``issues`` and any detail fields; raising means unhealthy.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlparse

HEALTHY, DEGRADED, UNHEALTHY = "healthy", "degraded", "unhealthy"
_STATUS_VALUE = {HEALTHY: 1.0, DEGRADED: 0.5, UNHEALTHY: 0.0}

CheckFn = Callable[[], Any]


@dataclass
class Check:
    """A registered component check."""

    name: str
    fn: CheckFn
    critical: bool = True
    timeout: float = 5.0


@dataclass
class ComponentResult:
    """The outcome of one check run."""

    status: str
    duration_seconds: float
    critical: bool
    issues: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "critical": self.critical,
            "duration_seconds": round(self.duration_seconds, 6),
            "issues": self.issues,
            **self.details,
        }


def _level(value: float, warn: float | None, crit: float | None, what: str) -> dict[str, Any]:
    """Classify ``value`` against warning/critical thresholds (higher is worse)."""
    if crit is not None and value >= crit:
        return {"status": UNHEALTHY, "issues": [f"{what} {value:.1f} >= {crit:g}"]}
    if warn is not None and value >= warn:
        return {"status": DEGRADED, "issues": [f"{what} {value:.1f} >= {warn:g}"]}
    return {"status": HEALTHY, "issues": []}


class HealthChecker:
    """Run registered component checks and report overall health.

    Args:
        default_timeout: seconds a check may take when it has no own timeout.
        max_workers: parallel checks at most.
        now: clock returning the report timestamp (injectable for tests).
    """

    def __init__(
        self,
        *,
        default_timeout: float = 5.0,
        max_workers: int = 8,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.default_timeout = default_timeout
        self.checks: dict[str, Check] = {}
        self._max_workers = max_workers
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._pool_pid = -1
        self._lock = threading.Lock()
        self._now = now
        self.last_report: dict[str, Any] | None = None

    # -- registration -------------------------------------------------------

    def add(
        self, name: str, fn: CheckFn, *, critical: bool = True, timeout: float | None = None
    ) -> HealthChecker:
        """Register a custom check; returns ``self`` for chaining."""
        self.checks[name] = Check(name, fn, critical, timeout or self.default_timeout)
        return self

    def add_http(
        self,
        name: str,
        url: str,
        *,
        expect_status: int = 200,
        warn_latency: float | None = 1.0,
        critical: bool = True,
        timeout: float | None = None,
    ) -> HealthChecker:
        """GET ``url``; unhealthy on another status or error, degraded when slow."""
        t = timeout or self.default_timeout

        def check() -> dict[str, Any]:
            import urllib.error
            import urllib.request

            start = time.perf_counter()
            try:
                with urllib.request.urlopen(url, timeout=t) as resp:
                    code = resp.status
            except urllib.error.HTTPError as err:
                code = err.code
            latency = time.perf_counter() - start
            out: dict[str, Any] = {"status_code": code, "latency_seconds": round(latency, 6)}
            if code != expect_status:
                return {**out, "status": UNHEALTHY, "issues": [f"HTTP status {code}"]}
            if warn_latency is not None and latency > warn_latency:
                return {**out, "status": DEGRADED, "issues": [f"slow: {latency:.3f}s"]}
            return out

        return self.add(name, check, critical=critical, timeout=t)

    def add_tcp(
        self,
        name: str,
        host: str,
        port: int,
        *,
        critical: bool = True,
        timeout: float | None = None,
    ) -> HealthChecker:
        """Open a TCP connection to ``host:port``."""
        t = timeout or self.default_timeout

        def check() -> None:
            with socket.create_connection((host, port), timeout=t):
                pass

        return self.add(name, check, critical=critical, timeout=t)

    def add_redis(
        self,
        name: str,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        warn_latency: float | None = 0.1,
        warn_memory_ratio: float | None = 0.9,
        critical: bool = True,
        timeout: float | None = None,
    ) -> HealthChecker:
        """PING Redis (RESP over a socket, no client library needed); degraded when
        slow or when ``used_memory / maxmemory`` passes ``warn_memory_ratio``."""
        t = timeout or self.default_timeout
        parsed = urlparse(url)

        def check() -> dict[str, Any]:
            start = time.perf_counter()
            with socket.create_connection(
                (parsed.hostname or "127.0.0.1", parsed.port or 6379), timeout=t
            ) as sock:
                f = sock.makefile("rb")
                if parsed.password:
                    cmd = ["AUTH", parsed.password]
                    if parsed.username:
                        cmd.insert(1, parsed.username)
                    _resp(sock, f, cmd)
                pong = _resp(sock, f, ["PING"])
                if pong != "PONG":
                    return {"status": UNHEALTHY, "issues": [f"PING answered {pong!r}"]}
                latency = time.perf_counter() - start
                info = _parse_info(_resp(sock, f, ["INFO", "memory"]))
            out: dict[str, Any] = {"latency_seconds": round(latency, 6)}
            issues: list[str] = []
            status = HEALTHY
            used, limit = int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))
            out["used_memory_bytes"] = used
            if warn_memory_ratio is not None and limit > 0 and used / limit >= warn_memory_ratio:
                status = DEGRADED
                issues.append(f"memory {used / limit:.0%} of maxmemory")
            if warn_latency is not None and latency > warn_latency:
                status = DEGRADED
                issues.append(f"slow: {latency:.3f}s")
            return {**out, "status": status, "issues": issues}

        return self.add(name, check, critical=critical, timeout=t)

    def add_postgres(
        self,
        name: str,
        dsn: str = "postgresql://postgres@127.0.0.1:5432/postgres",
        *,
        warn_latency: float | None = 0.5,
        warn_connections_ratio: float | None = 0.8,
        critical: bool = True,
        timeout: float | None = None,
    ) -> HealthChecker:
        """Connect and run ``SELECT 1`` (needs ``psycopg``); degraded when slow or
        when connections approach ``max_connections``."""
        t = timeout or self.default_timeout

        def check() -> dict[str, Any]:
            try:
                import psycopg
            except ImportError as exc:
                raise RuntimeError(
                    "PostgreSQL check needs psycopg: pip install 'vigil[sdk]'"
                ) from exc
            start = time.perf_counter()
            with psycopg.connect(dsn, connect_timeout=max(1, int(t))) as conn:
                conn.execute("SELECT 1").fetchone()
                latency = time.perf_counter() - start
                row = conn.execute(
                    "SELECT count(*), current_setting('max_connections')::int FROM pg_stat_activity"
                ).fetchone()
            used, limit = (int(row[0]), int(row[1])) if row else (0, 0)
            out: dict[str, Any] = {"latency_seconds": round(latency, 6), "connections": used}
            issues: list[str] = []
            status = HEALTHY
            if (
                warn_connections_ratio is not None
                and limit
                and used / limit >= warn_connections_ratio
            ):
                status = DEGRADED
                issues.append(f"{used}/{limit} connections in use")
            if warn_latency is not None and latency > warn_latency:
                status = DEGRADED
                issues.append(f"slow: {latency:.3f}s")
            return {**out, "status": status, "issues": issues}

        return self.add(name, check, critical=critical, timeout=t)

    def add_disk(
        self,
        name: str = "disk",
        path: str = "/",
        *,
        warn_percent: float | None = 80.0,
        critical_percent: float | None = 95.0,
        critical: bool = True,
    ) -> HealthChecker:
        """Disk usage of the filesystem holding ``path``, in percent."""

        def check() -> dict[str, Any]:
            usage = shutil.disk_usage(path)
            pct = 100.0 * usage.used / usage.total if usage.total else 0.0
            return {**_level(pct, warn_percent, critical_percent, "disk used %"),
                    "used_percent": round(pct, 2), "free_bytes": usage.free}  # fmt: skip

        return self.add(name, check, critical=critical)

    def add_memory(
        self,
        name: str = "memory",
        *,
        warn_percent: float | None = 85.0,
        critical_percent: float | None = 95.0,
        critical: bool = False,
    ) -> HealthChecker:
        """System memory in use, in percent (psutil if installed, else /proc)."""

        def check() -> dict[str, Any]:
            pct = _memory_percent()
            return {**_level(pct, warn_percent, critical_percent, "memory used %"),
                    "used_percent": round(pct, 2)}  # fmt: skip

        return self.add(name, check, critical=critical)

    def add_cpu(
        self,
        name: str = "cpu",
        *,
        warn_percent: float | None = 80.0,
        critical_percent: float | None = None,
        critical: bool = False,
    ) -> HealthChecker:
        """CPU use in percent (psutil over 0.1 s, else 1-minute load per core)."""

        def check() -> dict[str, Any]:
            pct = _cpu_percent()
            return {**_level(pct, warn_percent, critical_percent, "cpu %"),
                    "used_percent": round(pct, 2)}  # fmt: skip

        return self.add(name, check, critical=critical)

    # -- running ------------------------------------------------------------

    def _executor(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._lock:
            # A pool inherited over fork has no threads: make a new one per process.
            if self._pool is None or self._pool_pid != os.getpid():
                self._pool = concurrent.futures.ThreadPoolExecutor(
                    self._max_workers, thread_name_prefix="vigil-health"
                )
                self._pool_pid = os.getpid()
            return self._pool

    def _run_one(self, check: Check) -> ComponentResult:
        start = time.perf_counter()
        try:
            outcome = check.fn()
        except Exception as exc:
            return ComponentResult(
                UNHEALTHY, time.perf_counter() - start, check.critical,
                [f"{type(exc).__name__}: {exc}"],
            )  # fmt: skip
        duration = time.perf_counter() - start
        if outcome is None or outcome is True:
            return ComponentResult(HEALTHY, duration, check.critical)
        if outcome is False:
            return ComponentResult(UNHEALTHY, duration, check.critical, ["check returned False"])
        if isinstance(outcome, dict):
            details = dict(outcome)
            status = details.pop("status", HEALTHY)
            issues = list(details.pop("issues", []))
            if status not in _STATUS_VALUE:
                issues.append(f"unknown status {status!r}")
                status = UNHEALTHY
            return ComponentResult(status, duration, check.critical, issues, details)
        return ComponentResult(
            UNHEALTHY, duration, check.critical, [f"check returned {type(outcome).__name__}"]
        )

    def run(self, *, critical_only: bool = False) -> dict[str, Any]:
        """Run the checks in parallel and return the JSON-ready report::

        {"status": "degraded", "timestamp": "...Z", "duration_seconds": 0.01,
         "components": {"redis": {"status": "healthy", ...}}, "issues": ["..."]}
        """
        checks = [c for c in self.checks.values() if c.critical or not critical_only]
        pool = self._executor()
        start = time.perf_counter()
        futures = {c.name: (c, pool.submit(self._run_one, c)) for c in checks}
        results: dict[str, ComponentResult] = {}
        for name, (check, fut) in futures.items():
            left = check.timeout - (time.perf_counter() - start)
            try:
                results[name] = fut.result(timeout=max(left, 0.0))
            except concurrent.futures.TimeoutError:
                results[name] = ComponentResult(
                    UNHEALTHY, check.timeout, check.critical,
                    [f"timed out after {check.timeout:g}s"],
                )  # fmt: skip
        report = self._report(results, time.perf_counter() - start)
        if not critical_only:
            self.last_report = report
        return report

    async def run_async(self, *, critical_only: bool = False) -> dict[str, Any]:
        """:meth:`run` without blocking the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, lambda: self.run(critical_only=critical_only))

    def _report(self, results: dict[str, ComponentResult], duration: float) -> dict[str, Any]:
        overall = HEALTHY
        issues: list[str] = []
        for name, r in results.items():
            issues.extend(f"{name}: {i}" for i in r.issues)
            if r.status == UNHEALTHY and r.critical:
                overall = UNHEALTHY
            elif r.status != HEALTHY and overall == HEALTHY:
                overall = DEGRADED
        return {
            "status": overall,
            "timestamp": self._now().isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "duration_seconds": round(duration, 6),
            "components": {name: r.to_dict() for name, r in results.items()},
            "issues": issues,
        }

    # -- metrics ------------------------------------------------------------

    def collect(self) -> Any:
        """prometheus_client collector protocol: the results of the latest run.

        ``health_check_status{component}`` is 1 healthy, 0.5 degraded, 0
        unhealthy; ``health_check_duration_seconds{component}``; and
        ``health_status`` for the service as a whole. Register with
        :func:`vigil.sdk.register_collector` so it is exposed in every mode.
        """
        from prometheus_client.core import GaugeMetricFamily

        report = self.last_report
        status = GaugeMetricFamily(
            "health_check_status", "1 healthy, 0.5 degraded, 0 unhealthy.", labels=["component"]
        )
        duration = GaugeMetricFamily(
            "health_check_duration_seconds", "Duration of the last check.", labels=["component"]
        )
        overall = GaugeMetricFamily(
            "health_status", "Overall: 1 healthy, 0.5 degraded, 0 unhealthy."
        )
        if report is not None:
            for name, comp in report["components"].items():
                status.add_metric([name], _STATUS_VALUE[comp["status"]])
                duration.add_metric([name], comp["duration_seconds"])
            overall.add_metric([], _STATUS_VALUE[report["status"]])
        return [status, duration, overall]

    def start_background(self, interval: float = 15.0) -> threading.Thread:
        """Re-run all checks every ``interval`` seconds in a daemon thread, so the
        metrics stay fresh without a request to ``/health``."""

        def loop() -> None:
            while True:
                try:
                    self.run()
                except Exception:
                    pass
                time.sleep(interval)

        thread = threading.Thread(target=loop, name="vigil-health-loop", daemon=True)
        thread.start()
        return thread


def _resp(sock: socket.socket, f: Any, args: list[str]) -> Any:
    """Send one RESP command and read a simple/bulk/error reply."""
    parts = [f"*{len(args)}\r\n".encode()]
    for a in args:
        b = a.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(b), b))
    sock.sendall(b"".join(parts))
    line = f.readline()
    if not line:
        raise ConnectionError("Redis closed the connection")
    kind, rest = line[:1], line[1:].rstrip(b"\r\n")
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RuntimeError(f"Redis error: {rest.decode()}")
    if kind == b"$":
        n = int(rest)
        return None if n < 0 else f.read(n + 2)[:-2].decode()
    if kind == b":":
        return int(rest)
    raise RuntimeError(f"unexpected Redis reply {line!r}")


def _parse_info(text: str | None) -> dict[str, str]:
    out = {}
    for line in (text or "").splitlines():
        if ":" in line and not line.startswith("#"):
            k, v = line.split(":", 1)
            out[k] = v
    return out


def _memory_percent() -> float:
    try:
        import psutil

        return float(psutil.virtual_memory().percent)
    except ImportError:
        info = {}
        with open("/proc/meminfo") as fh:
            for line in fh:
                k, v = line.split(":", 1)
                info[k] = int(v.split()[0])
        total = info.get("MemTotal", 0)
        return 100.0 * (total - info.get("MemAvailable", total)) / total if total else 0.0


def _cpu_percent() -> float:
    try:
        import psutil

        return float(psutil.cpu_percent(interval=0.1))
    except ImportError:
        return 100.0 * os.getloadavg()[0] / (os.cpu_count() or 1)
