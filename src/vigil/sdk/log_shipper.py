"""``VigilLogHandler``: ship log records to Vigil's Loki-compatible push API.

Records are formatted on the calling thread (so contextvars such as the request
id are read where the log call happened) and appended to a bounded in-memory
queue; a background thread batches them into ``POST /loki/api/v1/push`` requests::

    {"streams": [{"stream": {"service": "payments", "level": "error"},
                  "values": [["1714564800123000000", "<json line>"]]}]}

The request path never waits on the network. When the queue is full the *oldest*
record is dropped (recent logs matter most during an incident) and counted; when
Vigil is unreachable the batch is dropped, counted, and one line is written to
stderr, once, rather than per failure.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
import urllib.request
from collections import deque
from typing import Any

from vigil.sdk.logging import JsonFormatter


class VigilLogHandler(logging.Handler):
    """A non-blocking logging handler pushing to a Loki-compatible endpoint.

    Args:
        url: base URL of Vigil (``http://127.0.0.1:9090``) or the full push URL.
        labels: stream labels (keep them few and low-cardinality); ``service`` is
            added from ``service`` when given. The record's level is always added
            as ``level``.
        service: service name, used as label and JSON field.
        batch_size: maximum records per push request.
        flush_interval: seconds a partial batch may wait before it is sent.
        max_queue: records buffered in memory at most; beyond it the oldest go.
        timeout: seconds per push request.
        headers: extra HTTP headers (e.g. ``X-Scope-OrgID`` or authorization).

    Counters (read them with :meth:`stats`): ``sent``, ``dropped_overflow``,
    ``dropped_send_error``, ``failed_requests``.
    Thread-safe; survives ``fork`` (each process starts its own sender thread).
    """

    def __init__(
        self,
        url: str,
        *,
        labels: dict[str, str] | None = None,
        service: str = "",
        batch_size: int = 500,
        flush_interval: float = 1.0,
        max_queue: int = 10_000,
        timeout: float = 5.0,
        headers: dict[str, str] | None = None,
        level: int = logging.NOTSET,
    ) -> None:
        super().__init__(level)
        self.url = url if "/loki/api/" in url else url.rstrip("/") + "/loki/api/v1/push"
        self.labels = dict(labels or {})
        if service:
            self.labels.setdefault("service", service)
        self.batch_size = max(1, batch_size)
        self.flush_interval = flush_interval
        self.timeout = timeout
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        self.setFormatter(JsonFormatter(service))
        self._queue: deque[tuple[str, str, str]] = deque()
        self._max_queue = max(1, max_queue)
        self._cond = threading.Condition()
        self._in_flight = 0
        self._stop = False
        self._pid = -1
        self._thread: threading.Thread | None = None
        self._warned = False
        self._flushers = 0
        self.counters = {
            "sent": 0,
            "dropped_overflow": 0,
            "dropped_send_error": 0,
            "failed_requests": 0,
        }

    def stats(self) -> dict[str, int]:
        """Return a copy of the delivery counters plus the current queue length."""
        with self._cond:
            return {**self.counters, "queued": len(self._queue)}

    def _ensure_thread(self) -> None:
        pid = os.getpid()
        if self._pid == pid:
            return
        # First record in this process (or after a fork, where the parent's thread
        # does not exist): start a sender and forget the parent's backlog.
        self._pid = pid
        self._queue.clear()
        self._in_flight = 0
        self._thread = threading.Thread(target=self._run, name="vigil-log-shipper", daemon=True)
        self._thread.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            ts = str(int(record.created * 1_000_000_000))
            level = record.levelname.lower()
        except Exception:
            self.handleError(record)
            return
        with self._cond:
            if self._stop:
                return
            self._ensure_thread()
            if len(self._queue) >= self._max_queue:
                self._queue.popleft()
                self.counters["dropped_overflow"] += 1
            self._queue.append((level, ts, line))
            if len(self._queue) >= self.batch_size:
                self._cond.notify()

    def _take_batch(self) -> list[tuple[str, str, str]]:
        with self._cond:
            deadline = time.monotonic() + self.flush_interval
            while not self._stop and len(self._queue) < self.batch_size:
                if self._flushers and self._queue:
                    break
                left = deadline - time.monotonic()
                if left <= 0 and self._queue:
                    break
                self._cond.wait(left if left > 0 else self.flush_interval)
                if left <= 0:
                    deadline = time.monotonic() + self.flush_interval
            n = min(len(self._queue), self.batch_size)
            batch = [self._queue.popleft() for _ in range(n)]
            self._in_flight = len(batch)
            return batch

    def _run(self) -> None:
        while True:
            batch = self._take_batch()
            if batch:
                self._send(batch)
            with self._cond:
                self._in_flight = 0
                self._cond.notify_all()
                if self._stop and not self._queue:
                    return

    def _body(self, batch: list[tuple[str, str, str]]) -> bytes:
        streams: dict[str, dict[str, Any]] = {}
        for level, ts, line in batch:
            stream = streams.get(level)
            if stream is None:
                stream = streams[level] = {"stream": {**self.labels, "level": level}, "values": []}
            stream["values"].append([ts, line])
        return json.dumps({"streams": list(streams.values())}).encode()

    def _send(self, batch: list[tuple[str, str, str]]) -> None:
        request = urllib.request.Request(
            self.url, data=self._body(batch), headers=self.headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as resp:
                resp.read()
            with self._cond:
                self.counters["sent"] += len(batch)
        except Exception as exc:
            with self._cond:
                self.counters["failed_requests"] += 1
                self.counters["dropped_send_error"] += len(batch)
                warn = not self._warned
                self._warned = True
            if warn:
                # Not through logging: that could recurse into this handler.
                sys.stderr.write(
                    f"vigil: cannot push logs to {self.url} ({type(exc).__name__}: {exc}); "
                    "dropping log batches until it is reachable (counted in stats())\n"
                )

    def flush(self, timeout: float = 5.0) -> bool:  # type: ignore[override]
        """Wait until everything queued so far was sent or dropped; ``False`` on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            if self._pid != os.getpid():
                return not self._queue
            # While a flusher waits, the sender sends partial batches immediately.
            self._flushers += 1
            try:
                self._cond.notify_all()
                while self._queue or self._in_flight:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    self._cond.wait(min(left, 0.05))
            finally:
                self._flushers -= 1
        return True

    def close(self) -> None:
        """Flush what is queued (bounded by ``timeout``) and stop the sender thread."""
        self.flush(self.timeout)
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None and self._pid == os.getpid():
            self._thread.join(self.timeout)
        super().close()
