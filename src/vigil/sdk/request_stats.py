"""Lock-free per-thread accumulation of HTTP request counts and latencies.

A prometheus_client ``Counter.inc`` or ``Histogram.observe`` takes a lock per
value (a histogram observation takes two, after a Python loop over the buckets);
four such operations per request cost several microseconds, more than the rest
of the middleware. Here every thread owns a *shard*: plain dicts and lists only
that thread ever writes, so recording a request is a few dict and list operations
with no lock at all (correct under the GIL and without it, since no two threads
write one shard). Readers add the shards up when ``/metrics`` is scraped.

Per series ``(method, route, status)`` a shard keeps one list: the non-cumulative
count of each histogram bucket (the last one is ``+Inf``) followed by the sum of
the observed seconds. ``http_requests_total`` is the histogram's count, so one
list serves both. ``http_requests_in_progress`` is requests begun minus requests
finished, per method.

Shards of threads that ended are folded into one retired shard at the next read,
so servers that start a thread per request do not grow the shard list forever.
A forked child starts from zero: its metrics describe its own requests.

In prometheus_client's multiprocess mode the values must reach the worker's mmap
files, which other workers read at scrape time. :class:`MultiProcessFlusher`
copies the increments since its last run into prometheus_client's own metric
objects, once per ``FLUSH_INTERVAL`` seconds in a background thread, before this
worker renders ``/metrics`` itself, and when the worker exits. A scrape served by
another worker can therefore lag this one by up to ``FLUSH_INTERVAL``; a worker
killed with SIGKILL loses at most its last interval.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from typing import Any

FLUSH_INTERVAL = 0.5

_use_created = os.environ.get("PROMETHEUS_DISABLE_CREATED_SERIES", "False").lower() != "true"

SeriesKey = tuple[str, str, int]
# Shards at which a new one first triggers folding away those of finished threads.
_RETIRE_MIN = 64


class _Shard:
    """What one thread recorded. Only that thread writes it."""

    __slots__ = ("begun", "created", "series", "thread")

    def __init__(self, thread: threading.Thread | None) -> None:
        self.thread = thread
        # (method, route, status) -> [bucket counts..., +Inf count, sum of seconds]
        self.series: dict[SeriesKey, list[float]] = {}
        self.created: dict[SeriesKey, float] = {}
        self.begun: dict[str, int] = {}


class Snapshot:
    """The sum of all shards at one moment."""

    __slots__ = ("begun", "created", "series")

    def __init__(self) -> None:
        self.series: dict[SeriesKey, list[float]] = {}
        self.created: dict[SeriesKey, float] = {}
        self.begun: dict[str, int] = {}

    def add(self, shard: _Shard | Snapshot) -> None:
        series = self.series
        # list(...) copies in one step, so a thread adding a key meanwhile is harmless.
        for key, counts in list(shard.series.items()):
            counts = list(counts)
            total = series.get(key)
            if total is None:
                series[key] = counts
            else:
                for i, n in enumerate(counts):
                    total[i] += n
        created = self.created
        for key, ts in list(shard.created.items()):
            if key not in created or ts < created[key]:
                created[key] = ts
        begun = self.begun
        for method, n in list(shard.begun.items()):
            begun[method] = begun.get(method, 0) + n

    def in_progress(self) -> dict[str, int]:
        """Requests begun and not yet finished, per method."""
        finished: dict[str, int] = {}
        for (method, _, _), counts in self.series.items():
            finished[method] = finished.get(method, 0) + int(sum(counts[:-1]))
        return {m: n - finished.get(m, 0) for m, n in self.begun.items()}


class RequestStats:
    """Counts, latency histogram and in-progress gauge of HTTP requests.

    Args:
        buckets: the histogram's upper bounds in seconds, ascending, without ``+Inf``.
    """

    def __init__(self, buckets: Sequence[float]) -> None:
        bounds = tuple(float(b) for b in buckets if b != float("inf"))
        if list(bounds) != sorted(set(bounds)):
            raise ValueError(f"histogram buckets must be distinct and ascending: {buckets!r}")
        self.bounds = bounds
        self._width = len(bounds) + 1  # bucket slots, the last for +Inf
        self._on_new_shard: list[Any] = []
        self._reset()
        _instances.add(self)

    def _reset(self) -> None:
        # Also the after-fork hook: the parent's shards and lock are not ours.
        self._local = threading.local()
        self._lock = threading.Lock()
        self._shards: list[_Shard] = []
        self._retired = Snapshot()
        self._retire_at = _RETIRE_MIN

    def _new_shard(self) -> _Shard:
        shard = _Shard(threading.current_thread())
        with self._lock:
            self._shards.append(shard)
            # A server that starts a thread per request makes a shard per request:
            # fold finished threads' shards away as they pile up, not only when
            # /metrics is read (amortized O(1) per new shard).
            if len(self._shards) >= self._retire_at:
                self._retire_finished()
                self._retire_at = max(_RETIRE_MIN, 2 * len(self._shards))
        self._local.shard = shard
        for callback in self._on_new_shard:
            callback()
        return shard

    def shard(self) -> _Shard:
        """The calling thread's shard, for callers that inline :meth:`begin` and
        :meth:`finish` on a hot path (only ever write it from this thread)."""
        try:
            return self._local.shard  # type: ignore[no-any-return]
        except AttributeError:
            return self._new_shard()

    def new_series(self, shard: _Shard, key: SeriesKey) -> list[float]:
        """Create ``key``'s counts in ``shard`` (the calling thread's)."""
        counts = [0] * self._width + [0.0]
        shard.series[key] = counts
        shard.created[key] = time.time()
        return counts

    def begin(self, method: str) -> None:
        """Count a request as in progress (pair with :meth:`finish`)."""
        shard = self.shard()
        begun = shard.begun
        begun[method] = begun.get(method, 0) + 1

    def finish(self, method: str, route: str, status: int, seconds: float) -> None:
        """Record a finished request and its duration in seconds."""
        shard = self.shard()
        key = (method, route, status)
        counts = shard.series.get(key)
        if counts is None:
            counts = self.new_series(shard, key)
        counts[bisect_left(self.bounds, seconds)] += 1
        counts[-1] += seconds

    def _retire_finished(self) -> None:
        # Caller holds self._lock.
        live: list[_Shard] = []
        for shard in self._shards:
            thread = shard.thread
            if thread is not None and not thread.is_alive():
                self._retired.add(shard)  # its thread can no longer write it
            else:
                live.append(shard)
        self._shards = live

    def snapshot(self) -> Snapshot:
        """Add up every shard; shards of finished threads are retired on the way."""
        out = Snapshot()
        with self._lock:
            self._retire_finished()
            live = self._shards
            out.add(self._retired)
        for shard in live:
            out.add(shard)
        return out

    def metric_families(self, snapshot: Snapshot | None = None) -> list[Any]:
        """prometheus_client metric families for the exposition of one process."""
        from prometheus_client.metrics_core import Metric
        from prometheus_client.utils import floatToGoString

        snap = snapshot if snapshot is not None else self.snapshot()
        requests = Metric("http_requests", REQUESTS_HELP, "counter")
        duration = Metric("http_request_duration_seconds", DURATION_HELP, "histogram")
        in_progress = Metric("http_requests_in_progress", IN_PROGRESS_HELP, "gauge")
        les = [floatToGoString(b) for b in self.bounds] + ["+Inf"]
        for key in sorted(snap.series):
            counts = snap.series[key]
            method, route, status = key
            labels = {"method": method, "route": route, "status": str(status)}
            created = snap.created.get(key)
            cumulative = 0.0
            for le, n in zip(les, counts, strict=False):
                cumulative += n
                duration.add_sample(
                    "http_request_duration_seconds_bucket", {**labels, "le": le}, cumulative
                )
            duration.add_sample("http_request_duration_seconds_count", labels, cumulative)
            duration.add_sample("http_request_duration_seconds_sum", labels, counts[-1])
            requests.add_sample("http_requests_total", labels, cumulative)
            if _use_created and created is not None:
                requests.add_sample("http_requests_created", labels, created)
                duration.add_sample("http_request_duration_seconds_created", labels, created)
        for method, n in sorted(snap.in_progress().items()):
            in_progress.add_sample("http_requests_in_progress", {"method": method}, float(n))
        return [requests, duration, in_progress]


REQUESTS_HELP = "HTTP requests handled, by method, route template and status code."
DURATION_HELP = "HTTP request latency in seconds, from first byte in to last byte out."
IN_PROGRESS_HELP = "HTTP requests currently being handled."


class RequestStatsCollector:
    """Exposes a :class:`RequestStats` through a prometheus_client registry."""

    def __init__(self, stats: RequestStats) -> None:
        self.stats = stats

    def describe(self) -> Iterable[Any]:
        # Names only, so the registry can refuse a second registration of them.
        return self.stats.metric_families(Snapshot())

    def collect(self) -> Iterable[Any]:
        return self.stats.metric_families()


class MultiProcessFlusher:
    """Copies a :class:`RequestStats`' increments into prometheus_client metrics,
    whose values live in the multiprocess mmap files.

    Args:
        stats: the accumulator to drain.
        requests, duration, in_progress: prometheus_client ``Counter``, ``Histogram``
            (with the same buckets) and ``Gauge`` labelled like the accumulator.
    """

    def __init__(self, stats: RequestStats, requests: Any, duration: Any, in_progress: Any) -> None:
        self.stats = stats
        self.requests = requests
        self.duration = duration
        self.in_progress = in_progress
        self._lock = threading.Lock()
        self._flushed: dict[SeriesKey, list[float]] = {}
        self._gauges: dict[str, int] = {}
        stats._on_new_shard.append(_ensure_flusher_thread)
        _flushers.add(self)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._flushed = {}
        self._gauges = {}

    def flush(self) -> None:
        """Write what was recorded since the last flush. Never raises."""
        with self._lock:
            try:
                self._flush()
            except Exception:  # pragma: no cover - a full disk must not kill the thread
                pass

    def _flush(self) -> None:
        snap = self.stats.snapshot()
        width = self.stats._width
        for key, counts in snap.series.items():
            before = self._flushed.get(key)
            if before == counts:
                continue
            if before is None:
                before = [0] * width + [0.0]
            method, route, status = key
            code = str(status)
            hist = self.duration.labels(method, route, code)
            added = 0.0
            for i in range(width):
                delta = counts[i] - before[i]
                if delta:
                    hist._buckets[i].inc(delta)
                    added += delta
            if counts[-1] != before[-1]:
                hist._sum.inc(counts[-1] - before[-1])
            if added:
                self.requests.labels(method, route, code).inc(added)
            self._flushed[key] = counts
        for method, n in snap.in_progress().items():
            if self._gauges.get(method) != n:
                self.in_progress.labels(method).set(n)
                self._gauges[method] = n


_instances: weakref.WeakSet[RequestStats] = weakref.WeakSet()
_flushers: weakref.WeakSet[MultiProcessFlusher] = weakref.WeakSet()
_thread_lock = threading.Lock()
_thread: threading.Thread | None = None


def flush_all() -> None:
    """Flush every multiprocess flusher of this process now."""
    for flusher in list(_flushers):
        flusher.flush()


def _ensure_flusher_thread() -> None:
    # Started by the first request of a process, not at import: a gunicorn master
    # that imports the app must not fork while this thread holds a metric lock.
    global _thread
    with _thread_lock:
        if _thread is not None and _thread.is_alive():
            return
        _thread = threading.Thread(target=_flush_loop, name="vigil-metrics-flush", daemon=True)
        _thread.start()


def _flush_loop() -> None:
    while True:
        time.sleep(FLUSH_INTERVAL)
        flush_all()


def _after_fork_in_child() -> None:
    global _thread, _thread_lock
    _thread = None
    _thread_lock = threading.Lock()
    for stats in list(_instances):
        stats._reset()
    for flusher in list(_flushers):
        flusher._after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)
