"""The scrape manager: scrape pools per job, their targets and loops, reloads.

Threading: all scrape loops run as tasks of ONE asyncio event loop in a dedicated
thread started by `start()`; parsing and appending run in a small worker pool so a
large body does not stall other targets' network I/O. The public methods are
thread-safe and may be called from any thread except the scrape thread itself:
`apply_config` and `on_update` record the desired state and, when running, wait
for the scrape thread to converge to it.

Reload semantics: loops of targets that still exist keep running; a target whose
scrape config changed gets a new loop that inherits the old one's state (no
staleness gap); targets that are gone get staleness markers for their series at
once, as do all targets when the manager stops (unless `stale_on_stop=False`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from vigil.model.labels import Labels
from vigil.scrape.http_client import AuthSettings, make_client, server_name
from vigil.scrape.loop import LoopOptions, ScrapeLoop
from vigil.scrape.metrics import MetricSample, ScrapeMetrics
from vigil.scrape.target import Target, format_duration, targets_from_group
from vigil.storage.interface import Appendable

log = logging.getLogger(__name__)

_SYNC_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class Group:
    """A discovery target group (duck-compatible with `discovery.TargetGroup`)."""

    source: str
    targets: list[Labels]
    labels: Labels


@dataclass(slots=True)
class _Pool:
    """One job: its config, discovered groups and running loops (scrape thread)."""

    cfg: Any
    options: LoopOptions
    groups: dict[str, Any] = field(default_factory=dict)
    loops: dict[int, ScrapeLoop] = field(default_factory=dict)
    dropped: list[Labels] = field(default_factory=list)
    dropped_count: int = 0
    failures: list[str] = field(default_factory=list)
    forced_error: str | None = None
    client: Any = None


def _static_groups(cfg: Any) -> dict[str, Group]:
    """Groups of a job's `static_configs`, with the source names discovery uses."""
    out: dict[str, Group] = {}
    for i, sc in enumerate(getattr(cfg, "static_configs", ()) or ()):
        targets = [Labels.from_dict({"__address__": t}) for t in sc.targets]
        out[str(i)] = Group(str(i), targets, Labels.from_dict(dict(sc.labels)))
    return out


def _rfc3339(ms: int | None) -> str:
    if ms is None:
        return "0001-01-01T00:00:00Z"
    dt = datetime.fromtimestamp(ms / 1000.0, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


class ScrapeManager:
    """Scrapes the targets of a config into `appendable` (see module doc).

    `now` returns wall-clock seconds; sample timestamps derive from it.
    `offset_seed` shifts every target's phase (use a hash of the external labels
    so that two Vigil replicas do not scrape in lock-step).
    """

    def __init__(
        self,
        appendable: Appendable,
        *,
        now: Callable[[], float] = time.time,
        offset_seed: int = 0,
        stale_on_stop: bool = True,
        static_from_config: bool = True,
        workers: int = 2,
    ) -> None:
        self._appendable = appendable
        self._now = now
        self._offset_seed = offset_seed
        self._stale_on_stop = stale_on_stop
        self._static_from_config = static_from_config
        self._workers = workers
        self._lock = threading.RLock()
        self._pools: dict[str, _Pool] = {}
        self._removed: list[_Pool] = []  # jobs removed by a reload, to shut down
        self._replaced: dict[str, _Pool] = {}  # job -> its pool before a config change
        self._early_groups: dict[str, list[Any]] = {}  # updates for jobs not configured yet
        self.metrics_registry = ScrapeMetrics()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._converge_lock: asyncio.Lock | None = None  # created in the scrape thread

    # --- configuration ---------------------------------------------------------

    def apply_config(self, config: Any) -> None:
        """Adopt the scrape configs of `config` (a `vigil.config.Config`)."""
        configs = {sc.job_name: sc for sc in getattr(config, "scrape_configs", ()) or ()}
        with self._lock:
            self.metrics_registry.inc("prometheus_target_scrape_pool_reloads_total", 0)
            for job in list(self._pools):
                if job not in configs:
                    self._removed.append(self._pools.pop(job))
            for job, cfg in configs.items():
                old = self._pools.get(job)
                if old is not None and old.cfg == cfg:
                    continue
                pool = _Pool(cfg, LoopOptions.from_config(cfg))
                early = self._early_groups.pop(job, None)
                if early is not None:
                    # Discovery reported this job before its config arrived.
                    pool.groups = {str(g.source): g for g in early}
                elif old is not None:
                    self.metrics_registry.inc("prometheus_target_scrape_pool_reloads_total")
                    # Discovered groups carry over until discovery reports again;
                    # the old static groups are replaced by the new config's.
                    stale_static = _static_groups(old.cfg) if self._static_from_config else {}
                    pool.groups = {s: g for s, g in old.groups.items() if s not in stale_static}
                    self._replaced.setdefault(job, old)
                if self._static_from_config and early is None:
                    pool.groups.update(_static_groups(cfg))
                self._pools[job] = pool
        self._sync()

    def on_update(self, job_name: str, groups: Sequence[Any]) -> None:
        """Discovery's update for one job: `groups` (objects with `source`, `targets`,
        `labels`, like `discovery.TargetGroup`) are the job's complete current groups
        and replace all previous ones."""
        with self._lock:
            pool = self._pools.get(job_name)
            if pool is None:
                # Kept until the job's config arrives (the two may be applied in
                # either order); replaced by any later update.
                self._early_groups[job_name] = list(groups)
                return
            pool.groups = {str(g.source): g for g in groups}
        self._sync()

    # --- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        """Start the scrape thread and every configured target's loop."""
        with self._lock:
            if self._thread is not None:
                return
            ready = threading.Event()
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=self._workers, thread_name_prefix="vigil-scrape-ingest"
            )

            def run() -> None:
                loop = asyncio.new_event_loop()
                self._loop = loop
                asyncio.set_event_loop(loop)
                ready.set()
                loop.run_forever()
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

            self._thread = threading.Thread(target=run, name="vigil-scrape", daemon=True)
            self._thread.start()
            ready.wait()
        self._sync()

    def stop(self) -> None:
        """Stop all loops (writing staleness markers unless disabled), close clients,
        end the scrape thread. Idempotent; blocks until done."""
        with self._lock:
            loop, thread = self._loop, self._thread
            if loop is None or thread is None:
                return
            pools = list(self._pools.values()) + self._removed + list(self._replaced.values())
            self._removed = []
            self._replaced = {}
        fut = asyncio.run_coroutine_threadsafe(self._shutdown(pools), loop)
        try:
            fut.result(_SYNC_TIMEOUT_S)
        except Exception:
            log.exception("scrape manager shutdown failed")
        loop.call_soon_threadsafe(loop.stop)
        thread.join(_SYNC_TIMEOUT_S)
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        with self._lock:
            self._loop = None
            self._thread = None
            self._executor = None
            self._converge_lock = None
            for pool in self._pools.values():
                pool.loops.clear()
                pool.client = None

    async def _shutdown(self, pools: list[_Pool]) -> None:
        loops = [lp for p in pools for lp in p.loops.values()]
        await asyncio.gather(*(lp.cancel() for lp in loops))
        if self._stale_on_stop:
            now_ms = int(self._now() * 1000)
            for lp in loops:
                await self._run_blocking(lp.mark_stale, now_ms)
        for p in pools:
            await self._close_client(p)

    # --- convergence (scrape thread) -------------------------------------------

    def _sync(self) -> None:
        loop = self._loop
        if loop is None:
            # Not running: still resolve targets so the API shows them.
            with self._lock:
                for pool in self._pools.values():
                    self._resolve(pool)
            return
        if threading.current_thread() is self._thread:
            raise RuntimeError("ScrapeManager methods must not be called from the scrape thread")
        fut = asyncio.run_coroutine_threadsafe(self._converge(), loop)
        fut.result(_SYNC_TIMEOUT_S)

    def _resolve(self, pool: _Pool) -> dict[int, Target]:
        """Targets wanted by `pool`'s groups, keyed by identity; records drops/failures."""
        wanted: dict[int, Target] = {}
        dropped: list[Labels] = []
        failures: list[str] = []
        for source, g in sorted(pool.groups.items()):
            res = targets_from_group(pool.cfg, source, g.targets, g.labels)
            for t in res.active:
                wanted.setdefault(t.key, t)
            dropped.extend(res.dropped)
            failures.extend(res.failures)
        for f in failures:
            if f not in pool.failures:
                log.warning("job %s: %s", pool.cfg.job_name, f)
        if failures:
            self.metrics_registry.inc("prometheus_target_sync_failed_total", len(failures))
        keep = int(getattr(pool.cfg, "keep_dropped_targets", 0) or 0)
        pool.dropped_count = len(dropped)
        pool.dropped = dropped[:keep] if keep else dropped
        pool.failures = failures
        limit = int(getattr(pool.cfg, "target_limit", 0) or 0)
        if limit and len(wanted) > limit:
            pool.forced_error = (
                f"target_limit exceeded (number of targets: {len(wanted)}, limit: {limit})"
            )
            self.metrics_registry.inc("prometheus_target_scrape_pool_exceeded_target_limit_total")
        else:
            pool.forced_error = None
        if self._loop is None:
            # Show resolved targets (health unknown) before start.
            pool.loops = {
                k: pool.loops.get(k) or ScrapeLoop(t, self._appendable, pool.options, now=self._now)
                for k, t in wanted.items()
            }
        return wanted

    async def _converge(self) -> None:
        if self._converge_lock is None:
            self._converge_lock = asyncio.Lock()
        async with self._converge_lock:
            await self._converge_locked()

    async def _converge_locked(self) -> None:
        with self._lock:
            removed, self._removed = self._removed, []
            replaced, self._replaced = self._replaced, {}
            pools = list(self._pools.items())
            plans = [(job, pool, self._resolve(pool)) for job, pool in pools]
        # Loops of replaced pools can hand their state to the new pool's loops.
        handover: dict[tuple[Labels, str], ScrapeLoop] = {}
        for old in replaced.values():
            for lp in old.loops.values():
                await lp.cancel()
                handover[(lp.target.public_labels, lp.target.url)] = lp
        to_stale: list[ScrapeLoop] = []
        for old in removed:
            for lp in old.loops.values():
                await lp.cancel()
                to_stale.append(lp)
        for _job, pool, wanted in plans:
            if pool.client is None:
                pool.client = make_client(pool.cfg)
            auth = AuthSettings.from_config(pool.cfg)
            sni = server_name(pool.cfg)
            for key in [k for k in pool.loops if k not in wanted]:
                with self._lock:
                    gone = pool.loops.pop(key)
                await gone.cancel()
                handover[(gone.target.public_labels, gone.target.url)] = gone
            for key, target in wanted.items():
                cur = pool.loops.get(key)
                if cur is not None and cur._task is not None:
                    cur.target.discovered = target.discovered
                    cur.forced_error = pool.forced_error
                    continue
                new = ScrapeLoop(
                    target,
                    self._appendable,
                    pool.options,
                    client=pool.client,
                    auth=auth,
                    sni=sni,
                    metrics=self.metrics_registry,
                    now=self._now,
                    offset_seed=self._offset_seed,
                )
                new.forced_error = pool.forced_error
                prev = handover.pop((target.public_labels, target.url), None) or cur
                if prev is not None:
                    new.inherit(prev)
                with self._lock:
                    pool.loops[key] = new
                new.start(self._executor)
        to_stale.extend(handover.values())
        now_ms = int(self._now() * 1000)
        for dead in to_stale:
            await self._run_blocking(dead.mark_stale, now_ms)
        for old in [*removed, *replaced.values()]:
            await self._close_client(old)

    async def _run_blocking(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    @staticmethod
    async def _close_client(pool: _Pool) -> None:
        client, pool.client = pool.client, None
        if client is not None:
            await client.aclose()

    # --- read side (any thread) ------------------------------------------------

    def _all_loops(self) -> list[tuple[str, ScrapeLoop]]:
        with self._lock:
            return [(job, lp) for job, p in self._pools.items() for lp in p.loops.values()]

    def targets_active(self) -> list[dict[str, Any]]:
        """Active targets in the shape of `/api/v1/targets` `activeTargets`."""
        out: list[dict[str, Any]] = []
        for job, lp in self._all_loops():
            t = lp.target
            r = t.last_result
            out.append(
                {
                    "discoveredLabels": t.discovered.to_dict(),
                    "labels": t.public_labels.to_dict(),
                    "scrapePool": job,
                    "scrapeUrl": t.url,
                    "globalUrl": t.url,
                    "lastError": (r.error or "") if r else "",
                    "lastScrape": _rfc3339(r.start_ms if r else None),
                    "lastScrapeDuration": r.duration_s if r else 0.0,
                    "health": t.health,
                    "scrapeInterval": format_duration(t.interval_ms),
                    "scrapeTimeout": format_duration(t.timeout_ms),
                }
            )
        out.sort(key=lambda d: (d["scrapePool"], d["scrapeUrl"], sorted(d["labels"].items())))
        return out

    def targets_dropped(self) -> list[dict[str, Any]]:
        """Dropped targets (`droppedTargets`), at most `keep_dropped_targets` per job."""
        with self._lock:
            return [
                {"discoveredLabels": d.to_dict(), "scrapePool": job}
                for job, p in sorted(self._pools.items())
                for d in p.dropped
            ]

    def dropped_counts(self) -> dict[str, int]:
        """Job -> number of dropped targets, kept or not (`droppedTargetCounts`)."""
        with self._lock:
            return {job: p.dropped_count for job, p in sorted(self._pools.items())}

    def target_failures(self) -> dict[str, list[str]]:
        """Job -> why discovered targets could not become targets (bad address, ...)."""
        with self._lock:
            return {job: list(p.failures) for job, p in sorted(self._pools.items()) if p.failures}

    def scrape_pools(self) -> list[str]:
        with self._lock:
            return sorted(self._pools)

    def metadata(
        self, metric: str | None = None, limit: int = -1
    ) -> dict[str, list[dict[str, str]]]:
        """`/api/v1/metadata`: metric family -> distinct {type, help, unit} seen in the
        latest scrapes of all targets. `limit` >= 0 caps the number of metrics."""
        out: dict[str, list[dict[str, str]]] = {}
        for _job, lp in self._all_loops():
            for name, md in lp.metadata.items():
                if metric is not None and name != metric:
                    continue
                entry = _meta_dict(md)
                lst = out.setdefault(name, [])
                if entry not in lst:
                    lst.append(entry)
        names = sorted(out)
        if limit >= 0:
            names = names[:limit]
        return {n: out[n] for n in names}

    def targets_metadata(
        self, metric: str | None = None, match: Callable[[Labels], bool] | None = None
    ) -> list[dict[str, Any]]:
        """`/api/v1/targets/metadata` rows: target labels, metric, type, help, unit."""
        rows = []
        for _job, lp in self._all_loops():
            tl = lp.target.public_labels
            if match is not None and not match(tl):
                continue
            for name, md in sorted(lp.metadata.items()):
                if metric is not None and name != metric:
                    continue
                rows.append({"target": tl.to_dict(), "metric": name, **_meta_dict(md)})
        return rows

    def metrics(self) -> list[MetricSample]:
        """Self-metrics as (name, labels, value, type, help) tuples."""
        with self._lock:
            counts = {job: len(p.loops) for job, p in self._pools.items()}
        return self.metrics_registry.samples(counts)

    def loops(self) -> list[ScrapeLoop]:
        """The current loops (for tests and debugging)."""
        return [lp for _, lp in self._all_loops()]


def _meta_dict(md: Any) -> dict[str, str]:
    if isinstance(md, dict):
        return {k: str(md.get(k, "") or "") for k in ("type", "help", "unit")}
    return {k: str(getattr(md, k, "") or "") for k in ("type", "help", "unit")}


def groups_of(
    targets: Iterable[str], labels: dict[str, str] | None = None, source: str = "0"
) -> list[Group]:
    """One group of `host:port` addresses (a convenience for callers and tests)."""
    return [
        Group(
            source,
            [Labels.from_dict({"__address__": t}) for t in targets],
            Labels.from_dict(labels or {}),
        )
    ]
