"""Builds, starts, stops and reloads Vigil's subsystems: the only place they meet.

Subsystems know each other only through narrow interfaces (Appendable/Queryable,
the query engine's two methods, callables for status pages); this module creates
the concrete objects and hands each what it needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vigil import __version__

log = logging.getLogger("vigil")

DEFAULT_CONFIG = """\
global:
  scrape_interval: 15s
  evaluation_interval: 15s
"""


@dataclass(frozen=True)
class ServerOptions:
    """Command-line overrides; None means "use the config file or the default"."""

    config_file: Path | None = None
    data_dir: Path | None = None
    listen: str | None = None
    retention_time: str | None = None
    retention_size: str | None = None
    log_level: str = "info"
    alertmanager_config: Path | None = None


def parse_listen(addr: str) -> tuple[str, int]:
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"--listen must be HOST:PORT, got {addr!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


@dataclass
class Vigil:
    """The running system. `start()` opens the store and starts scraping;
    `reload()` swaps the config only after it fully validates."""

    options: ServerOptions
    now: Any = time.time
    started_at: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        self.loaded = self._load_config()
        vcfg = self.loaded.config.vigil
        self.data_dir = Path(self.options.data_dir or vcfg.data_dir)
        self.listen = self.options.listen or vcfg.listen_address
        self.host, self.port = parse_listen(self.listen)
        self.ready = False
        self.reload_lock = threading.Lock()
        self.last_reload_ok = True
        self.last_reload_time = time.time()
        self.alertmanager: Any = None
        self.loop: asyncio.AbstractEventLoop | None = None

    # -- configuration -------------------------------------------------------

    def _load_config(self) -> Any:
        from vigil.config import load_config, load_config_file

        if self.options.config_file is not None:
            loaded = load_config_file(self.options.config_file)
        else:
            loaded = load_config(DEFAULT_CONFIG, "<default>")
        for warning in loaded.warnings:
            log.warning("%s", warning)
        return loaded

    def _effective_scrape_config(self, loaded: Any) -> Any:
        """The config with Vigil's self-scrape job added when enabled."""
        from vigil.config import with_self_scrape

        return with_self_scrape(loaded.config, f"{self._self_host()}:{self.port}")

    def _self_host(self) -> str:
        return "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host

    def _tsdb_options(self) -> Any:
        from vigil.config import parse_duration_ms, parse_size_bytes
        from vigil.tsdb.chunk_cache import auto_chunk_cache_bytes
        from vigil.tsdb.db import TSDBOptions

        vcfg = self.loaded.config.vigil
        retention_ms = (
            parse_duration_ms(self.options.retention_time)
            if self.options.retention_time
            else vcfg.retention_time.ms
        )
        size = self.options.retention_size
        retention_bytes = parse_size_bytes(size) if size else (vcfg.retention_size or 0)
        return TSDBOptions(
            retention_ms=retention_ms,
            retention_bytes=int(retention_bytes),
            wal_fsync=vcfg.wal_fsync,
            out_of_order_window_ms=vcfg.out_of_order_time_window.ms,
            chunk_cache_bytes=(
                int(vcfg.chunk_cache_size)
                if vcfg.chunk_cache_size is not None
                else auto_chunk_cache_bytes()
            ),
        )

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        from vigil.promql.engine import Engine
        from vigil.scrape.discovery import DiscoveryManager
        from vigil.scrape.manager import ScrapeManager
        from vigil.tsdb.db import TSDB

        self.db = TSDB.open(self.data_dir, self._tsdb_options())
        vcfg = self.loaded.config.vigil
        self.engine = Engine(
            self.db,
            lookback_delta_ms=vcfg.lookback_delta.ms,
            max_samples=vcfg.query_max_samples,
            timeout_s=vcfg.query_timeout.seconds,
        )
        self.scrape = ScrapeManager(self.db)
        self.discovery = DiscoveryManager(on_update=self.scrape.on_update)
        self._apply(self.loaded)
        self.alertmanager = self._build_alertmanager()
        self._build_rules()
        self.push = self._build_push()
        self.scrape.start()
        self.notifier.start()
        self.rules.start()
        self.push.start()
        self.ready = True

    def _external_labels(self, loaded: Any) -> dict[str, str]:
        return dict(loaded.config.global_config.external_labels or {})

    def _rule_files(self, loaded: Any) -> list[str]:
        from vigil.rules.loader import expand_rule_files

        base = str(Path(loaded.path).parent) if loaded.path else None
        return expand_rule_files(list(loaded.config.rule_files), base)

    def _local_alertmanager(self) -> Any:
        """Hands alerts to the in-process Alertmanager on its event loop, or None."""
        am = self.alertmanager
        if am is None:
            return None
        return lambda doc: self._on_loop(lambda: am.put_postable(doc))

    def _build_rules(self) -> None:
        from vigil.rules.manager import RuleManager
        from vigil.rules.notifier import Notifier

        ext = self._external_labels(self.loaded)
        url = f"http://{self._self_host()}:{self.port}"
        self.notifier = Notifier(external_labels=ext, local=self._local_alertmanager())
        self.notifier.apply_config(
            self.loaded.config.alerting, external_labels=ext, local=self._local_alertmanager()
        )
        self.rules = RuleManager(
            query=self.engine.instant_query,
            appendable=self.db,
            queryable=self.db,
            notify=self.notifier.send,
            external_labels=ext,
            external_url=url,
            now=self.now,
        )
        self.rules.apply(
            self._rule_files(self.loaded), self.loaded.config.global_config.evaluation_interval.ms
        )

    def _build_push(self) -> Any:
        from vigil.push import PushRegistry

        ttl = self.loaded.config.vigil.push_default_ttl
        return PushRegistry(
            self.db,
            default_ttl_s=ttl.seconds if ttl else None,
            state_file=self.data_dir / "push" / "groups.json",
        )

    def _alertmanager_config_path(self) -> Path | None:
        path = self.options.alertmanager_config or self.loaded.config.vigil.alertmanager_config
        return Path(path) if path else None

    def _build_alertmanager(self) -> Any:
        path = self._alertmanager_config_path()
        if path is None:
            return None
        from vigil.alerting.alertmanager import Alertmanager
        from vigil.alerting.config import load_config_file as load_am_config

        return Alertmanager(
            load_am_config(path),
            data_dir=self.data_dir / "alertmanager",
            external_url=f"http://{self._self_host()}:{self.port}",
        )

    def _apply(self, loaded: Any) -> None:
        cfg = self._effective_scrape_config(loaded)
        self.scrape.apply_config(cfg)
        self.discovery.apply_config(cfg)

    def reload(self) -> None:
        """Load, validate and apply the config files; on any error keep the old ones.

        Everything is loaded and validated before anything is applied. The
        Alertmanager's new config is applied on the server's event loop, where its
        dispatcher runs."""
        with self.reload_lock:
            try:
                loaded = self._load_config()
                am_config = None
                am_path = self._alertmanager_config_path()
                if self.alertmanager is not None and am_path is not None:
                    from vigil.alerting.config import load_config_file as load_am_config

                    am_config = load_am_config(am_path)
                from vigil.rules.loader import load_rule_files

                rule_files = self._rule_files(loaded)
                load_rule_files(rule_files)  # validate before anything changes
                self._apply(loaded)
                ext = self._external_labels(loaded)
                self.rules.apply(
                    rule_files,
                    loaded.config.global_config.evaluation_interval.ms,
                    external_labels=ext,
                )
                self.notifier.apply_config(
                    loaded.config.alerting, external_labels=ext, local=self._local_alertmanager()
                )
                if am_config is not None:
                    self._on_loop(lambda: self.alertmanager.apply_config(am_config))
            except Exception:
                self.last_reload_ok = False
                raise
            self.loaded = loaded
            self.last_reload_ok = True
            self.last_reload_time = time.time()
            log.info("configuration reloaded")

    def _on_loop(self, fn: Any) -> None:
        """Run `fn` on the HTTP server's event loop and wait for it."""
        loop = self.loop
        if loop is None or not loop.is_running():
            fn()
            return
        try:
            if asyncio.get_running_loop() is loop:
                fn()
                return
        except RuntimeError:
            pass

        async def call() -> None:
            fn()

        asyncio.run_coroutine_threadsafe(call(), loop).result(timeout=30)

    def stop(self) -> None:
        self.ready = False
        for part in ("push", "rules", "notifier", "discovery", "scrape"):
            obj = getattr(self, part, None)
            if obj is not None:
                obj.stop()
        db = getattr(self, "db", None)
        if db is not None:
            db.close()

    # -- HTTP ----------------------------------------------------------------

    def web_app(self) -> Any:
        from vigil.push import create_push_routes
        from vigil.web import create_app
        from vigil.web.context import WebContext
        from vigil.web.rules_api import create_rules_routes

        vcfg = self.loaded.config.vigil
        ctx = WebContext(
            storage=self.db,
            engine=self.engine,
            targets=self.targets,
            metadata=self.scrape.metadata,
            config_yaml=lambda: self.loaded.config.to_yaml(),
            flags=self.flags(),
            reload=self.reload,
            tsdb_stats=self.db.stats,
            external_labels=dict(self.loaded.config.global_config.external_labels or {}),
            lookback_delta_ms=vcfg.lookback_delta.ms,
            importer=self.import_stream,
            self_metrics=[
                self.db.metrics,
                self.scrape.metrics,
                self.reload_metrics,
                self.push.metrics,
            ],
            ready=lambda: self.ready,
            build_info=build_info(),
            runtime_info=self.runtime_info,
        )
        extra = [*create_rules_routes(self.rules), *create_push_routes(self.push)]
        app = create_app(ctx, extra_routes=extra)
        if self.alertmanager is None:
            return app
        from starlette.applications import Starlette
        from starlette.routing import Mount

        from vigil.alerting.api_v2 import create_alertmanager_routes
        from vigil.alerting.server import lifespan_for

        am_lifespan = lifespan_for(self.alertmanager)

        @contextlib.asynccontextmanager
        async def lifespan(app_: Any) -> Any:
            self.loop = asyncio.get_running_loop()
            async with am_lifespan(app_):
                yield
            self.loop = None

        routes = [*create_alertmanager_routes(self.alertmanager), Mount("/", app=app)]
        return Starlette(routes=routes, lifespan=lifespan)

    def targets(self) -> dict[str, Any]:
        return {
            "activeTargets": self.scrape.targets_active(),
            "droppedTargets": self.scrape.targets_dropped(),
            "droppedTargetCounts": self.scrape.dropped_counts(),
        }

    def flags(self) -> dict[str, str]:
        o = self.options
        return {
            "config.file": str(o.config_file or ""),
            "storage.tsdb.path": str(self.data_dir),
            "web.listen-address": self.listen,
            "storage.tsdb.retention.time": o.retention_time
            or str(self.loaded.config.vigil.retention_time),
            "storage.tsdb.retention.size": o.retention_size or "0",
            "log.level": o.log_level,
        }

    def runtime_info(self) -> dict[str, Any]:
        return {
            "startTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started_at)),
            "CWD": os.getcwd(),
            "reloadConfigSuccess": self.last_reload_ok,
            "lastConfigTime": time.strftime(
                "%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.last_reload_time)
            ),
            "corruptionCount": 0,
            "goroutineCount": threading.active_count(),
            "GOMAXPROCS": os.cpu_count() or 1,
            "GOGC": "",
            "GODEBUG": "",
            "storageRetention": self.flags()["storage.tsdb.retention.time"],
        }

    def reload_metrics(self) -> list[tuple[str, dict[str, str], float, str, str]]:
        return [
            (
                "prometheus_config_last_reload_successful",
                {},
                float(self.last_reload_ok),
                "gauge",
                "Whether the last configuration reload attempt was successful.",
            ),
            (
                "prometheus_config_last_reload_success_timestamp_seconds",
                {},
                self.last_reload_time,
                "gauge",
                "Timestamp of the last successful configuration reload.",
            ),
        ]

    def import_stream(self, stream: Any, content_type: str | None) -> dict[str, Any]:
        """Backfill through the running server: blocks are written, then adopted."""
        from vigil.tsdb.importer import import_exposition

        staging = self.data_dir / "import-staging"
        staging.mkdir(parents=True, exist_ok=True)
        report = import_exposition(stream, staging, content_type=content_type)
        for block in report.blocks:
            self.db.add_block(Path(block))
        return report.to_dict()


def build_info() -> dict[str, str]:
    return {
        "version": __version__,
        "revision": "",
        "branch": "main",
        "buildUser": "",
        "buildDate": "",
        "goVersion": f"python{sys.version_info.major}.{sys.version_info.minor}",
    }


def _check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise SystemExit(
                f"vigil: cannot listen on {host}:{port}: {exc.strerror}. "
                "Stop whatever uses that port or pass --listen HOST:PORT."
            ) from None


def run_server(options: ServerOptions) -> int:
    """Run until SIGINT/SIGTERM; returns the process exit code."""
    from vigil.httpserver import serve

    logging.basicConfig(
        level=options.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    _limit_malloc_fragmentation()
    # One INFO line per scrape request would drown everything else.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    from vigil.config import ConfigError

    try:
        vigil = Vigil(options)
    except ConfigError as exc:
        print(f"vigil: invalid configuration:\n{exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"vigil: {exc}", file=sys.stderr)
        return 2
    _check_port_free(vigil.host, vigil.port)
    try:
        vigil.start()
    except Exception as exc:
        log.error("cannot start: %s", exc)
        vigil.stop()
        return 1

    def on_hup(_sig: int, _frame: Any) -> None:
        threading.Thread(target=_reload_logged, args=(vigil,), daemon=True).start()

    signal.signal(signal.SIGHUP, on_hup)
    log.info(
        "Vigil %s listening on http://%s:%d, data in %s",
        __version__,
        vigil.host,
        vigil.port,
        vigil.data_dir,
    )
    try:
        serve(vigil.web_app(), vigil.host, vigil.port)
    finally:
        vigil.stop()
    return 0


def _limit_malloc_fragmentation(interval_s: float = 10.0) -> None:
    """Give freed heap memory back to the OS every `interval_s` seconds.

    glibc keeps freed scrape buffers in its heaps (measured +25-40% RSS at 100k
    series). Forcing large allocations onto mmap (M_MMAP_THRESHOLD) fixed that but
    made every big numpy temporary fault in fresh pages: a 10k-series instant query
    took 42 ms instead of 27. `malloc_trim(0)` from a daemon thread releases the
    free pages instead and leaves allocation fast. Not glibc: nothing to do."""
    import ctypes

    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return
    trim.argtypes = [ctypes.c_size_t]

    def loop() -> None:
        while True:
            time.sleep(interval_s)
            trim(0)

    threading.Thread(target=loop, name="malloc-trim", daemon=True).start()


def _reload_logged(vigil: Vigil) -> None:
    try:
        vigil.reload()
    except Exception as exc:
        log.error("reload failed, keeping the previous configuration: %s", exc)


def import_into_data_dir(file: Path, data_dir: Path, fmt: str) -> int:
    """`vigil import`: write blocks straight into a data dir no server is using."""
    from vigil.tsdb.importer import import_exposition
    from vigil.tsdb.lock import DataDirLockedError, DirLock

    content_type = {
        "openmetrics": "application/openmetrics-text; version=1.0.0",
        "prometheus": "text/plain; version=0.0.4",
        "auto": None,
    }[fmt]
    if content_type is None:
        with open(file, "rb") as fh:
            head = fh.read(1 << 20)
        is_om = b"# EOF" in head or file.suffix in (".om", ".openmetrics")
        if not is_om:
            with open(file, "rb") as fh:
                fh.seek(max(0, file.stat().st_size - 64))
                is_om = b"# EOF" in fh.read()
        content_type = "application/openmetrics-text; version=1.0.0" if is_om else "text/plain"
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        lock = DirLock(data_dir)
        lock.acquire()
    except DataDirLockedError as exc:
        print(f"vigil import: {exc}", file=sys.stderr)
        return 1
    try:
        t0 = time.monotonic()
        try:
            report = import_exposition(
                file, data_dir, content_type=content_type, progress=sys.stderr.isatty()
            )
        except ValueError as exc:
            print(f"vigil import: {file}: {exc}; nothing was imported", file=sys.stderr)
            return 1
        print(
            f"imported {report.samples:,} samples of {report.series:,} series into "
            f"{len(report.blocks)} blocks in {time.monotonic() - t0:.1f}s",
            file=sys.stderr,
        )
    finally:
        lock.release()
    return 0
