"""Sending alerts to Alertmanagers, as Prometheus's notifier does.

`Notifier.send(alerts)` is the rule manager's `notify` callable. It adds external
labels (only where an alert lacks the label), applies `alerting.alert_relabel_configs`,
and queues the alerts (capacity 10000, oldest dropped first). A background thread
(or `flush()` in tests) drains the queue in batches of up to 256 and delivers each
batch to every destination: the in-process Alertmanager through a callable (e.g.
``Alertmanager.put_postable``) and external ones with ``POST <url>/api/v2/alerts``,
each after its own `alert_relabel_configs`. A failed POST is retried a few times
with a short backoff; alerts that still fail are dropped and counted (the rules
re-send firing alerts anyway).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from vigil.model.labels import Labels
from vigil.model.relabel import RelabelConfig, relabel

log = logging.getLogger("vigil.rules.notifier")

AlertJSON = dict[str, Any]
PostFunc = Callable[[str, bytes, dict[str, str], float], int]
"""``post(url, body, headers, timeout_s) -> HTTP status``; raises OSError on failure."""


def _urllib_post(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> int:
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


@dataclass
class Destination:
    """One Alertmanager: a callable (in-process) or an HTTP URL."""

    name: str
    url: str = ""
    deliver: Callable[[list[AlertJSON]], Any] | None = None
    relabel_configs: Sequence[RelabelConfig] = ()
    headers: dict[str, str] = field(default_factory=dict)
    timeout_s: float = 10.0
    sent: int = 0
    errors: int = 0


def _relabel_alert(a: AlertJSON, configs: Sequence[RelabelConfig]) -> AlertJSON | None:
    if not configs:
        return a
    out = relabel(Labels.from_dict(a["labels"]), configs)
    if out is None:
        return None
    return {**a, "labels": out.to_dict()}


def alertmanager_urls(am: Any) -> list[tuple[str, dict[str, str]]]:
    """(alerts URL, headers) for each static target of an `AlertmanagerConfig`,
    after its `relabel_configs` (``__address__``, ``__scheme__``, ``__alerts_path__``)."""
    prefix = "/" + str(am.path_prefix).strip("/")
    path = (prefix.rstrip("/") + "/api/v2/alerts") if prefix != "/" else "/api/v2/alerts"
    headers = {"Content-Type": "application/json", "User-Agent": "Vigil"}
    auth = am.auth_header() if hasattr(am, "auth_header") else None
    if auth:
        headers["Authorization"] = auth
    basic = getattr(am, "basic_auth", None)
    if basic is not None and getattr(basic, "username", None):
        import base64

        cred = f"{basic.username}:{basic.password or ''}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(cred).decode()
    out = []
    for sc in am.static_configs:
        for target in sc.targets:
            lbls = {
                **dict(sc.labels),
                "__address__": target,
                "__scheme__": am.scheme,
                "__alerts_path__": path,
            }
            res = relabel(Labels.from_dict(lbls), list(am.relabel_configs))
            if res is None:
                continue
            d = res.to_dict()
            out.append((f"{d['__scheme__']}://{d['__address__']}{d['__alerts_path__']}", headers))
    return out


class Notifier:
    """Queue and deliver alerts. Thread-safe; `send` never blocks on the network."""

    def __init__(
        self,
        *,
        external_labels: Mapping[str, str] | None = None,
        relabel_configs: Sequence[RelabelConfig] = (),
        local: Callable[[list[AlertJSON]], Any] | None = None,
        queue_capacity: int = 10_000,
        max_batch: int = 256,
        retries: int = 2,
        retry_backoff_s: float = 0.5,
        post: PostFunc = _urllib_post,
    ) -> None:
        self.external_labels = dict(external_labels or {})
        self.relabel_configs = list(relabel_configs)
        self.queue_capacity = int(queue_capacity)
        self.max_batch = int(max_batch)
        self.retries = int(retries)
        self.retry_backoff_s = float(retry_backoff_s)
        self.post = post
        self.destinations: list[Destination] = []
        if local is not None:
            self.destinations.append(Destination("local", deliver=local))
        self.dropped = 0
        self._queue: deque[AlertJSON] = deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False

    def apply_config(
        self,
        alerting: Any,
        external_labels: Mapping[str, str] | None = None,
        local: Callable[[list[AlertJSON]], Any] | None = None,
    ) -> None:
        """Take `alert_relabel_configs` and Alertmanagers from an `AlertingConfig`."""
        dests: list[Destination] = []
        if local is not None:
            dests.append(Destination("local", deliver=local))
        for i, am in enumerate(getattr(alerting, "alertmanagers", ()) or ()):
            for url, headers in alertmanager_urls(am):
                dests.append(
                    Destination(
                        f"config-{i}",
                        url=url,
                        relabel_configs=list(am.alert_relabel_configs),
                        headers=headers,
                        timeout_s=am.timeout.seconds,
                    )
                )
        with self._cond:
            self.relabel_configs = list(getattr(alerting, "alert_relabel_configs", ()) or ())
            if external_labels is not None:
                self.external_labels = dict(external_labels)
            self.destinations = dests

    # -- queueing --------------------------------------------------------------

    def prepare(self, alerts: Sequence[AlertJSON]) -> list[AlertJSON]:
        """External labels (where missing) then the global alert relabeling."""
        out = []
        for a in alerts:
            lbls = dict(a.get("labels", {}))
            for k, v in self.external_labels.items():
                if not lbls.get(k):
                    lbls[k] = v
            b = _relabel_alert({**a, "labels": lbls}, self.relabel_configs)
            if b is not None:
                out.append(b)
        return out

    def send(self, alerts: Sequence[AlertJSON]) -> None:
        """Queue `alerts` (the rule manager's `notify`)."""
        prepared = self.prepare(alerts)
        if not prepared:
            return
        with self._cond:
            over = len(prepared) - self.queue_capacity
            if over > 0:
                prepared = prepared[over:]
                self.dropped += over
            over = len(self._queue) + len(prepared) - self.queue_capacity
            for _ in range(max(over, 0)):
                self._queue.popleft()
                self.dropped += 1
            self._queue.extend(prepared)
            self._cond.notify()

    def queue_length(self) -> int:
        with self._cond:
            return len(self._queue)

    def _next_batch(self) -> list[AlertJSON]:
        with self._cond:
            n = min(self.max_batch, len(self._queue))
            return [self._queue.popleft() for _ in range(n)]

    def flush(self) -> int:
        """Deliver everything queued now, on the calling thread; returns alerts sent."""
        total = 0
        while True:
            batch = self._next_batch()
            if not batch:
                return total
            self._deliver(batch)
            total += len(batch)

    def _deliver(self, batch: list[AlertJSON]) -> None:
        """Send `batch` to every destination at once, as Prometheus does, so one
        slow or dead Alertmanager does not delay the others."""
        with self._cond:
            dests = list(self.destinations)
        if not dests:
            return
        if len(dests) == 1:
            self._deliver_one(dests[0], batch)
            return
        with ThreadPoolExecutor(max_workers=min(len(dests), 8)) as pool:
            list(pool.map(lambda d: self._deliver_one(d, batch), dests))

    def _deliver_one(self, d: Destination, batch: list[AlertJSON]) -> None:
        alerts = [x for x in (_relabel_alert(a, d.relabel_configs) for a in batch) if x]
        if not alerts:
            return
        if d.deliver is not None:
            try:
                d.deliver(alerts)
                d.sent += len(alerts)
            except Exception as exc:
                d.errors += 1
                log.warning("delivering %d alerts to %s failed: %s", len(alerts), d.name, exc)
            return
        body = json.dumps(alerts).encode()
        for attempt in range(self.retries + 1):
            try:
                status = self.post(d.url, body, d.headers, d.timeout_s)
                if 200 <= status < 300:
                    d.sent += len(alerts)
                    return
                err = f"bad response status {status}"
                if 400 <= status < 500:
                    attempt = self.retries  # a client error will not heal
            except OSError as exc:
                err = str(exc)
            if attempt >= self.retries:
                d.errors += 1
                log.warning("sending %d alerts to %s failed: %s", len(alerts), d.url, err)
                return
            time.sleep(self.retry_backoff_s * (attempt + 1))

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="notifier", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after delivering what is queued."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if self._stopping and not self._queue:
                    return
            self.flush()
