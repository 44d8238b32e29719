"""One target's scrape loop: fetch, parse, label, append, staleness, report series.

The per-scrape work is split in two so the hot path stays vectorised:

- a *series cache* maps each raw series key of the exposition (its text up to the
  value, stable while the target does not change it) to a local slot; a slot holds
  the final labels (target labels merged, metric relabeling applied) and the store's
  series ref, or marks the key as dropped. A scrape whose keys are all cached costs
  one dict lookup per sample (`map(dict.__getitem__)` in C) plus numpy;
- everything else (refs, timestamps, staleness, duplicates, limits) is numpy over
  the slot array, and the samples go to the store in ONE `append_refs` call, with the
  staleness markers and the report series, in ONE commit.

Staleness follows Prometheus: series in the previous successful scrape but not in
this one get `STALE_NAN` at this scrape's timestamp; a failed scrape marks all of
the previous scrape's series stale; when the loop ends (target gone, job removed,
manager stopped) its series and report series are marked stale. Samples with their
own timestamp (and `honor_timestamps`) are not tracked unless
`track_timestamps_staleness` is set.

Thread-safety: `process()` and `mark_stale()` serialise on the loop's lock, so the
asyncio task and a stopping manager may call them from different threads.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vigil.model.labels import METRIC_NAME, Labels
from vigil.model.samples import STALE_NAN
from vigil.scrape.http_client import AuthSettings, BodySizeLimitError, ScrapeError, fetch
from vigil.scrape.metrics import ScrapeMetrics
from vigil.scrape.target import Target, format_duration
from vigil.storage.interface import Appendable, CommitStats, UnknownSeriesRefError

log = logging.getLogger(__name__)

REPORT_METRICS = (
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
)
_NO_TIMESTAMP = np.iinfo(np.int64).min
_MAX_AHEAD_MS = 10 * 60 * 1000  # samples further in the future are out of bounds
_UNASSIGNED = -2  # slot whose series has no store ref yet
_DROPPED = -1  # slot whose key metric relabeling drops
# Prometheus aligns scrape timestamps to the interval grid when the tick is this
# close, so timestamps are regular (better compression) without lying much.
_ALIGN_TOLERANCE_MS = 2


class LabelLimitError(ScrapeError):
    """A scraped series breaks `label_limit` / `label_*_length_limit`."""


@dataclass(frozen=True, slots=True)
class LoopOptions:
    """The per-scrape settings of a scrape config (limits 0 = unlimited)."""

    honor_labels: bool = False
    honor_timestamps: bool = True
    track_timestamps_staleness: bool = False
    metric_relabel_configs: tuple[Any, ...] = ()
    sample_limit: int = 0
    label_limit: int = 0
    label_name_length_limit: int = 0
    label_value_length_limit: int = 0
    body_size_limit: int = 0

    @classmethod
    def from_config(cls, cfg: Any) -> LoopOptions:
        def num(name: str) -> int:
            return int(getattr(cfg, name, 0) or 0)

        ht = getattr(cfg, "honor_timestamps", True)
        return cls(
            honor_labels=bool(getattr(cfg, "honor_labels", False)),
            honor_timestamps=True if ht is None else bool(ht),
            track_timestamps_staleness=bool(getattr(cfg, "track_timestamps_staleness", False)),
            metric_relabel_configs=tuple(getattr(cfg, "metric_relabel_configs", None) or ()),
            sample_limit=num("sample_limit"),
            label_limit=num("label_limit"),
            label_name_length_limit=num("label_name_length_limit"),
            label_value_length_limit=num("label_value_length_limit"),
            body_size_limit=num("body_size_limit"),
        )

    def cache_compatible(self, other: LoopOptions) -> bool:
        """Whether a series cache built under `other` is valid under these options."""
        return (
            self.honor_labels == other.honor_labels
            and self.metric_relabel_configs == other.metric_relabel_configs
            and self.label_limit == other.label_limit
            and self.label_name_length_limit == other.label_name_length_limit
            and self.label_value_length_limit == other.label_value_length_limit
        )


@dataclass(slots=True)
class ScrapeOutcome:
    """What one scrape did (for tests, benchmarks and logs)."""

    timestamp_ms: int
    error: str | None
    scraped: int = 0
    post_relabel: int = 0
    series_added: int = 0
    stale_markers: int = 0
    duration_s: float = 0.0
    commit: CommitStats = field(default_factory=CommitStats)


def merge_target_labels(scraped: Labels, target: Labels, honor: bool) -> Labels:
    """Attach a target's public labels to a scraped series, as Prometheus does.

    honor_labels: scraped values win. Otherwise target values win and a clashing
    scraped label is kept as `exported_<name>` (more `exported_` prefixes until free).
    """
    # Neither side holds empty values (Labels drops them), so the merged dict needs
    # no filtering and can be sorted directly (this runs once per new series).
    d = dict(scraped)
    if honor:
        for name, value in target:
            d.setdefault(name, value)
        return Labels.from_sorted(sorted(d.items()))
    conflicts = [(name, d[name]) for name, _ in target if name in d]
    d.update(target)
    if conflicts:
        conflicts.sort(key=lambda p: len(p[0]))
        for name, value in conflicts:
            new = name
            while True:
                new = "exported_" + new
                if not d.get(new):
                    d[new] = value
                    break
    return Labels.from_sorted(sorted(d.items()))


def check_label_limits(labels: Labels, opts: LoopOptions) -> None:
    """Raise `LabelLimitError` (Prometheus' wording) when a limit is exceeded."""
    met = labels.get(METRIC_NAME)[:50]
    if opts.label_limit and len(labels) > opts.label_limit:
        raise LabelLimitError(
            f"label_limit exceeded (metric: {met}, number of labels: {len(labels)}, limit: {opts.label_limit})"
        )
    nl, vl = opts.label_name_length_limit, opts.label_value_length_limit
    if not nl and not vl:
        return
    for name, value in labels:
        if nl and len(name.encode()) > nl:
            raise LabelLimitError(
                f"label_name_length_limit exceeded (metric: {met}, label name: {name[:50]}, "
                f"length: {len(name.encode())}, limit: {nl})"
            )
        if vl and len(value.encode()) > vl:
            raise LabelLimitError(
                f"label_value_length_limit exceeded (metric: {met}, label name: {name[:50]}, "
                f'value: "{value[:50]}", length: {len(value.encode())}, limit: {vl})'
            )


class SeriesCache:
    """Raw series key -> slot; per slot: the store ref, and the final labels until the
    store assigned that ref (see module doc).

    Owned by one loop; not thread-safe on its own (the loop's lock guards it).
    """

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.labels: list[Labels | None] = []
        self.refs = np.empty(1024, dtype=np.int64)
        # Slots tracked for staleness by the last successful scrape.
        self.prev = np.zeros(0, dtype=bool)

    def __len__(self) -> int:
        return len(self.labels)

    def add(self, key: str, labels: Labels | None) -> int:
        slot = len(self.labels)
        if slot == len(self.refs):
            self.refs = np.concatenate([self.refs, np.empty(slot, dtype=np.int64)])
        self.refs[slot] = _DROPPED if labels is None else _UNASSIGNED
        self.labels.append(labels)
        self.index[key] = slot
        return slot

    def compact(self, keep: np.ndarray) -> None:
        """Forget the slots not set in boolean `keep` (renumbering the others)."""
        n = len(self.labels)
        kept = np.flatnonzero(keep[:n])
        remap = np.full(n, -1, dtype=np.int64)
        remap[kept] = np.arange(len(kept))
        new_of = remap.tolist()
        self.index = {k: new_of[s] for k, s in self.index.items() if new_of[s] >= 0}
        self.labels = [self.labels[i] for i in kept.tolist()]
        refs = np.empty(max(1024, 2 * len(kept)), dtype=np.int64)
        refs[: len(kept)] = self.refs[kept]
        self.refs = refs
        prev = np.zeros(n, dtype=bool)
        prev[: min(n, len(self.prev))] = self.prev[:n]
        self.prev = prev[kept]


class ScrapeLoop:
    """Scrapes one target on its interval and writes to an `Appendable`.

    `now` returns wall-clock seconds (injectable); sample timestamps are
    `int(now() * 1000)` at scrape start, aligned to the interval grid when within
    2 ms of it.
    """

    def __init__(
        self,
        target: Target,
        appendable: Appendable,
        options: LoopOptions,
        *,
        client: Any = None,
        auth: AuthSettings | None = None,
        sni: str | None = None,
        metrics: ScrapeMetrics | None = None,
        now: Callable[[], float] = time.time,
        offset_seed: int = 0,
    ) -> None:
        self.target = target
        self.options = options
        self._appendable = appendable
        self._client = client
        self._auth = auth
        self._sni = sni
        self._metrics = metrics or ScrapeMetrics()
        self._now = now
        self._offset_seed = offset_seed
        self._lock = threading.Lock()
        self._cache = SeriesCache()
        self._report_refs: np.ndarray | None = None
        self._pending_stale: np.ndarray = np.zeros(0, dtype=np.int64)
        self._ever_scraped = False
        self._last_ts_ms: int | None = None
        self._metadata: dict[str, Any] = {}
        self._task: asyncio.Task[None] | None = None
        self._last_start: float | None = None
        self._seen: np.ndarray | None = None  # slots of the last parsed scrape
        # Keys of the last parsed scrape and their slots (valid until compaction).
        self._prev_keys: tuple[Sequence[str], np.ndarray | None] = ((), None)
        # Set by the manager (e.g. target_limit exceeded): scrapes fail with it
        # without contacting the target.
        self.forced_error: str | None = None
        self._ended = False  # set by mark_stale: no more ingestion

    # --- state hand-over on reload -------------------------------------------

    def inherit(self, old: ScrapeLoop) -> None:
        """Continue from `old` (same target, reloaded config) without a staleness gap.

        The series cache is reused when still valid; otherwise the old loop's live
        series are remembered and marked stale at the next scrape if absent then.
        """
        with old._lock:
            self._report_refs = old._report_refs
            self._ever_scraped = old._ever_scraped
            self._last_ts_ms = old._last_ts_ms
            self._metadata = old._metadata
            if self.options.cache_compatible(old.options):
                self._cache = old._cache
                self._prev_keys = old._prev_keys
                self._pending_stale = old._pending_stale
            else:
                self._pending_stale = np.union1d(old._pending_stale, old._live_refs())
            old._ever_scraped = False  # its series are ours now: no end-of-run markers
            old._cache = SeriesCache()
            old._prev_keys = ((), None)
            old._pending_stale = np.zeros(0, dtype=np.int64)

    def _live_refs(self) -> np.ndarray:
        c = self._cache
        n = len(c.prev)
        refs = c.refs[:n][c.prev]
        return refs[refs >= 0]

    @property
    def metadata(self) -> dict[str, Any]:
        """Metric family name -> parser metadata (type, help, unit) of the last scrape."""
        with self._lock:
            return dict(self._metadata)

    # --- scheduling ------------------------------------------------------------

    def start(self, executor: concurrent.futures.Executor | None = None) -> None:
        """Start the loop as a task of the running event loop."""
        self._task = asyncio.get_running_loop().create_task(
            self.run(executor), name=f"scrape {self.target.url}"
        )

    async def cancel(self) -> None:
        """Stop scheduling scrapes and wait for the task (no staleness markers)."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def run(self, executor: concurrent.futures.Executor | None = None) -> None:
        """Scrape forever: first at the target's offset, then on a fixed grid."""
        loop = asyncio.get_running_loop()
        interval_ms = self.target.interval_ms
        interval = interval_ms / 1000.0
        await asyncio.sleep(
            self.target.offset_ms(int(self._now() * 1000), self._offset_seed) / 1000.0
        )
        next_tick = loop.time()
        aligned = int(self._now() * 1000)
        tolerance = min(interval_ms // 100, _ALIGN_TOLERANCE_MS)
        while True:
            ts = int(self._now() * 1000)
            while ts - aligned >= interval_ms:
                aligned += interval_ms
            if ts - aligned <= tolerance:
                ts = aligned
            try:
                await self.scrape_once(ts, executor)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not kill the loop silently
                log.exception("scrape of %s failed unexpectedly", self.target.url)
            next_tick += interval
            delay = next_tick - loop.time()
            if delay < 0:  # overran: skip the missed ticks, stay on the grid
                skipped = int(-delay // interval) + 1
                next_tick += skipped * interval
                delay += skipped * interval
            await asyncio.sleep(delay)

    async def scrape_once(
        self, ts_ms: int | None = None, executor: concurrent.futures.Executor | None = None
    ) -> ScrapeOutcome:
        """Fetch and ingest one scrape now; `ts_ms` defaults to `now()`."""
        if ts_ms is None:
            ts_ms = int(self._now() * 1000)
        start = time.perf_counter()
        if self._last_start is not None:
            self._metrics.observe_interval(
                format_duration(self.target.interval_ms), start - self._last_start
            )
        self._last_start = start
        body: bytes | None = None
        ctype: str | None = None
        error: str | None = None
        forced = self.forced_error
        if forced is not None:
            error = forced
        else:
            body, ctype, error = await self._fetch()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(executor, self.process, body, ctype, ts_ms, error, start)

    async def _fetch(self) -> tuple[bytes | None, str | None, str | None]:
        if self._client is None:
            raise RuntimeError("scrape loop has no HTTP client")
        from vigil.scrape.exposition import ACCEPT_HEADER

        try:
            body, ctype = await fetch(
                self._client,
                self.target.url,
                accept=ACCEPT_HEADER,
                timeout_s=self.target.timeout_ms / 1000.0,
                body_size_limit=self.options.body_size_limit,
                auth=self._auth,
                sni=self._sni,
            )
        except BodySizeLimitError as exc:
            self._metrics.inc("prometheus_target_scrapes_exceeded_body_size_limit_total")
            return None, None, str(exc)
        except ScrapeError as exc:
            return None, None, str(exc)
        return body, ctype, None

    # --- ingestion -------------------------------------------------------------

    def process(
        self,
        body: bytes | None,
        content_type: str | None,
        ts_ms: int,
        error: str | None = None,
        started: float | None = None,
    ) -> ScrapeOutcome:
        """Ingest one scrape's body (or its fetch `error`) at `ts_ms`; commit once.

        `started` is the `time.perf_counter()` of the scrape's start (for
        `scrape_duration_seconds`). Never raises for bad input: a bad body fails the
        scrape and is reported through `up`, `lastError` and the outcome.
        """
        if started is None:
            started = time.perf_counter()
        with self._lock:
            out = ScrapeOutcome(ts_ms, error)
            if self._ended:
                # A scrape that was in flight when the loop ended: its series are
                # already marked stale and must stay so.
                out.error = "scrape loop stopped"
                return out
            try:
                self._append(body, content_type, ts_ms, error, started, out)
            except UnknownSeriesRefError:
                # The store collected series we still hold refs for (absent for
                # hours, now back): forget every cached ref and resolve afresh.
                log.info("re-resolving series of %s: the store collected some", self.target.url)
                self._forget_refs()
                out = ScrapeOutcome(ts_ms, error)
                self._append(body, content_type, ts_ms, error, started, out)
            self._ever_scraped = True
            self._last_ts_ms = ts_ms
            self._maybe_compact()
        c = out.commit
        self._metrics.inc("prometheus_target_scrapes_sample_out_of_order_total", c.out_of_order)
        self._metrics.inc("prometheus_target_scrapes_sample_duplicate_timestamp_total", c.duplicate)
        self._metrics.inc("prometheus_target_scrapes_sample_out_of_bounds_total", c.out_of_bounds)
        self.target.report(ts_ms, out.duration_s, out.error)
        return out

    def _append(
        self,
        body: bytes | None,
        content_type: str | None,
        ts_ms: int,
        error: str | None,
        started: float,
        out: ScrapeOutcome,
    ) -> None:
        """One transaction: the scrape's samples, staleness markers and report series."""
        app = self._appendable.appender()
        try:
            parts = self._ingest(app, body, content_type, ts_ms, out) if error is None else None
            if out.error is not None:
                parts = None
            stale = self._stale_refs(parts[3] if parts else None)
            out.stale_markers = len(stale)
            if parts is not None:
                refs, tss, vals, _ = parts
                if len(refs):
                    app.append_refs(refs, tss, vals)
            if len(stale):
                app.append_refs(
                    stale, np.full(len(stale), ts_ms, np.int64), np.full(len(stale), STALE_NAN)
                )
            out.duration_s = time.perf_counter() - started
            self._append_report(app, ts_ms, out)
            out.commit = app.commit()
        except BaseException:
            app.rollback()
            raise

    def _forget_refs(self) -> None:
        """Drop every cached series ref; the next ingest resolves keys from scratch.
        Staleness tracking restarts with it (markers for series that vanish in this
        very scrape are lost: a rare event, and they age out by lookback anyway)."""
        self._cache = SeriesCache()
        self._prev_keys = ((), None)
        self._report_refs = None
        self._seen = None
        self._pending_stale = np.zeros(0, dtype=np.int64)

    def _ingest(
        self, app: Any, body: bytes | None, content_type: str | None, ts_ms: int, out: ScrapeOutcome
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        """Samples to append as (refs, timestamps, values, mask of the slots tracked
        for staleness), or None with `out.error` set when the scrape fails."""
        from vigil.scrape.exposition import ExpositionError, parse

        try:
            expo = parse(body or b"", content_type)
        except ExpositionError as exc:
            out.error = _parse_error_text(exc)
            return None
        except Exception as exc:  # a parser bug must fail this scrape, not the loop
            log.exception("parser failed on the body of %s", self.target.url)
            out.error = f"parse error: {exc}"
            return None
        self._metadata = dict(expo.metadata)
        keys: Sequence[str] = expo.keys
        n = len(keys)
        out.scraped = n
        cache = self._cache
        prev_keys, prev_slots = self._prev_keys
        if prev_slots is not None and keys == prev_keys:
            # The hottest path: the target wrote the same series in the same order
            # as last time. Comparing strings needs no hashing: ~8x cheaper than
            # the dict lookups below.
            slots = prev_slots
        else:
            try:
                # Every key known -> one C-level pass over the dict.
                slots = np.fromiter(map(cache.index.__getitem__, keys), dtype=np.int64, count=n)
            except KeyError:
                try:
                    slots = self._slots_slow(keys)
                except ScrapeError as exc:
                    if isinstance(exc, LabelLimitError):
                        self._metrics.inc(
                            "prometheus_target_scrape_pool_exceeded_label_limits_total"
                        )
                    out.error = str(exc)
                    return None
                except ValueError as exc:  # a series key the label parser rejects
                    out.error = f"invalid series: {exc}"
                    return None
            self._prev_keys = (keys, slots)
        self._seen = slots
        refs = cache.refs[slots]
        kept = refs != _DROPPED
        all_kept = bool(kept.all())
        if not all_kept:
            slots, refs = slots[kept], refs[kept]
        values = np.asarray(expo.values, dtype=np.float64)
        own_ts = (
            np.asarray(expo.timestamps, dtype=np.int64) if self.options.honor_timestamps else None
        )
        if not all_kept:
            values = values[kept]
            if own_ts is not None:
                own_ts = own_ts[kept]
        out.post_relabel = len(slots)
        limit = self.options.sample_limit
        if limit and len(slots) > limit:
            self._metrics.inc("prometheus_target_scrapes_exceeded_sample_limit_total")
            out.error = "sample limit exceeded"
            return None
        if (refs == _UNASSIGNED).any():
            new = np.unique(slots[refs == _UNASSIGNED])
            for s in new.tolist():
                lbls = cache.labels[s]
                assert lbls is not None  # unassigned slots keep their labels
                cache.refs[s] = app.series_ref(lbls)
                # The store keeps the label set now (the head its own canonical
                # copy): holding ours too would double every series' identity.
                cache.labels[s] = None
            out.series_added = len(new)
            refs = cache.refs[slots]
        has_ts = None
        if own_ts is not None:
            mask = own_ts != _NO_TIMESTAMP
            if mask.any():
                has_ts = mask
        tss = (
            np.full(len(slots), ts_ms, dtype=np.int64)
            if has_ts is None or own_ts is None
            else np.where(has_ts, own_ts, ts_ms)
        )
        keep = None
        present = np.zeros(len(cache), dtype=bool)
        present[slots] = True
        if int(np.count_nonzero(present)) != len(slots):
            # Same series twice: later copies without their own timestamp would be
            # a duplicate sample at the scrape time; Prometheus rejects them.
            _, first = np.unique(slots, return_index=True)
            dup = np.ones(len(slots), dtype=bool)
            dup[first] = False
            if has_ts is not None:
                dup &= ~has_ts
            self._metrics.inc(
                "prometheus_target_scrapes_sample_duplicate_timestamp_total", int(dup.sum())
            )
            keep = ~dup
        if has_ts is not None:
            future = tss > int(self._now() * 1000) + _MAX_AHEAD_MS
            if future.any():
                self._metrics.inc(
                    "prometheus_target_scrapes_sample_out_of_bounds_total", int(future.sum())
                )
                keep = ~future if keep is None else keep & ~future
        if keep is not None:
            slots, refs, tss, values = slots[keep], refs[keep], tss[keep], values[keep]
            if has_ts is not None:
                has_ts = has_ts[keep]
        tracked = np.zeros(len(cache), dtype=bool)
        if has_ts is None or self.options.track_timestamps_staleness:
            tracked[slots] = True
        else:
            tracked[slots[~has_ts]] = True
        return refs, tss, values, tracked

    def _slots_slow(self, keys: Sequence[str]) -> np.ndarray:
        """Slots for `keys`, building cache entries for unseen keys (may raise)."""
        from vigil.model.relabel import relabel
        from vigil.scrape.exposition import labels_of

        cache = self._cache
        opts = self.options
        target_labels = self.target.public_labels
        index = cache.index
        out = np.empty(len(keys), dtype=np.int64)
        for i, key in enumerate(keys):
            slot = index.get(key)
            if slot is None:
                merged = merge_target_labels(labels_of(key), target_labels, opts.honor_labels)
                lbls: Labels | None = merged
                if opts.metric_relabel_configs:
                    lbls = relabel(merged, opts.metric_relabel_configs)
                if lbls is not None and len(lbls) == 0:
                    lbls = None
                if lbls is not None:
                    if not lbls.get(METRIC_NAME):
                        raise ScrapeError("missing metric name (__name__ label)")
                    check_label_limits(lbls, opts)
                slot = cache.add(key, lbls)
            out[i] = slot
        return out

    def _stale_refs(self, tracked: np.ndarray | None) -> np.ndarray:
        """Refs to mark stale now, given this scrape's tracked-slot mask (None = failed
        scrape). Updates the tracking state for the next scrape."""
        cache = self._cache
        n = len(cache)
        prev = cache.prev
        if len(prev) < n:
            prev = np.concatenate([prev, np.zeros(n - len(prev), dtype=bool)])
        cur = tracked if tracked is not None else np.zeros(n, dtype=bool)
        gone = prev & ~cur
        stale = cache.refs[:n][gone]
        stale = stale[stale >= 0]
        if len(stale) or len(self._pending_stale):
            # By ref, not by key: metric relabeling can map two keys to one series,
            # which is still live while either key is.
            live = cache.refs[:n][cur]
            stale = np.setdiff1d(np.union1d(stale, self._pending_stale), live)
            self._pending_stale = np.zeros(0, dtype=np.int64)
        cache.prev = cur
        return stale

    def _maybe_compact(self) -> None:
        """Forget keys absent from the last scrape once they are most of the cache, so
        a target churning label values does not grow it without bound."""
        seen, self._seen = self._seen, None
        n = len(self._cache)
        if seen is None or n <= 4096 or len(seen) * 2 >= n:
            return
        keep = np.zeros(n, dtype=bool)
        keep[seen] = True
        if np.count_nonzero(keep) * 2 < n:
            self._cache.compact(keep)
            self._prev_keys = ((), None)

    def _append_report(self, app: Any, ts_ms: int, out: ScrapeOutcome) -> None:
        if self._report_refs is None:
            tl = self.target.public_labels
            self._report_refs = np.array(
                [
                    app.series_ref(merge_target_labels(Labels(((METRIC_NAME, m),)), tl, False))
                    for m in REPORT_METRICS
                ],
                dtype=np.int64,
            )
        vals = np.array(
            [
                1.0 if out.error is None else 0.0,
                out.duration_s,
                float(out.scraped),
                float(out.post_relabel),
                float(out.series_added),
            ]
        )
        app.append_refs(
            self._report_refs, np.full(len(REPORT_METRICS), ts_ms, dtype=np.int64), vals
        )

    def mark_stale(self, ts_ms: int | None = None) -> int:
        """Write staleness markers for every live series and the report series (the
        loop has ended; it ingests nothing afterwards). Returns the number of markers;
        idempotent."""
        if ts_ms is None:
            ts_ms = int(self._now() * 1000)
        with self._lock:
            self._ended = True
            if not self._ever_scraped:
                return 0
            if self._last_ts_ms is not None and ts_ms <= self._last_ts_ms:
                ts_ms = self._last_ts_ms + 1
            refs = np.union1d(self._live_refs(), self._pending_stale)
            if self._report_refs is not None:
                refs = np.union1d(refs, self._report_refs)
            app = self._appendable.appender()
            if len(refs):
                app.append_refs(
                    refs, np.full(len(refs), ts_ms, np.int64), np.full(len(refs), STALE_NAN)
                )
            app.commit()
            self._ever_scraped = False
            self._cache.prev = np.zeros(0, dtype=bool)
            self._pending_stale = np.zeros(0, dtype=np.int64)
            return len(refs)


def _parse_error_text(exc: Exception) -> str:
    text = str(exc)
    line = getattr(exc, "line", None)
    if line and f"line {line}" not in text:
        text = f"line {line}: {text}"
    return text
