"""What the HTTP layer needs from the rest of Vigil, as narrow callables.

`app.py` fills a `WebContext`; handlers only ever read it. Every field is either a
storage protocol from `vigil.storage.interface` or a plain callable, so the web
package never imports the TSDB, the scrape manager, the config loader or the engine.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol

from vigil.promql.result import QueryResult

MetricTuple = tuple[str, Mapping[str, str], float, str, str]
"""One self-metric sample: (name, labels, value, type, help); type is
"gauge", "counter" or "untyped"."""


class QueryEngine(Protocol):
    """The two entry points of the PromQL engine the API calls (timestamps in ms)."""

    def instant_query(
        self, expr: str, t_ms: int, *, timeout_s: float | None = None
    ) -> QueryResult: ...

    def range_query(
        self,
        expr: str,
        start_ms: int,
        end_ms: int,
        step_ms: int,
        *,
        timeout_s: float | None = None,
    ) -> QueryResult: ...


def _empty_targets() -> dict[str, Any]:
    return {"activeTargets": [], "droppedTargets": [], "droppedTargetCounts": {}}


def _empty_metadata(metric: str | None = None, limit: int = -1) -> dict[str, list[dict[str, str]]]:
    return {}


def _no_reload() -> None:
    raise RuntimeError("reloading is not supported by this server")


def _no_import(stream: BinaryIO, content_type: str | None) -> dict[str, Any]:
    raise RuntimeError("importing is not supported by this server")


def _default_build_info() -> dict[str, str]:
    from vigil import __version__

    return {
        "version": __version__,
        "revision": "",
        "branch": "",
        "buildUser": "",
        "buildDate": "",
        "goVersion": "",
    }


@dataclass
class WebContext:
    """Everything the HTTP handlers use. Read-only after `create_app`.

    Callables may be invoked from worker threads concurrently; they must be
    thread-safe. All timestamps are int milliseconds; `now` returns float seconds.

    - `storage`: a store that is both `Queryable` and `Appendable`.
    - `engine`: a `QueryEngine`, or None while there is none (queries then fail
      with errorType "unavailable").
    - `targets()`: ``{"activeTargets": [...], "droppedTargets": [...],
      "droppedTargetCounts": {...}}`` in the shapes of Prometheus's
      `/api/v1/targets`; the handler filters by `state` and `scrapePool`.
    - `metadata(metric, limit)`: metric family -> list of {type, help, unit};
      `metric` None means all, `limit` < 0 means no limit.
    - `config_yaml()`: the loaded configuration as YAML text.
    - `reload()`: re-reads the configuration; raises (any exception, message shown
      to the caller) when the new one is bad, keeping the old one.
    - `tsdb_stats(limit)`: the `data` of `/api/v1/status/tsdb`.
    - `importer(stream, content_type)`: backfills exposition text, returns a report
      dict; raises `ValueError` with a line-numbered message on bad input.
    - `self_metrics`: callables returning `MetricTuple`s, published on /metrics.
    - `external_labels`: added to federated series that lack them.
    """

    storage: Any
    engine: QueryEngine | None = None
    targets: Callable[[], Mapping[str, Any]] = _empty_targets
    metadata: Callable[..., Mapping[str, list[dict[str, str]]]] = _empty_metadata
    config_yaml: Callable[[], str] = lambda: ""
    flags: Mapping[str, str] = field(default_factory=dict)
    reload: Callable[[], None] = _no_reload
    tsdb_stats: Callable[..., Mapping[str, Any]] | None = None
    importer: Callable[[BinaryIO, str | None], Mapping[str, Any]] = _no_import
    self_metrics: Sequence[Callable[[], Sequence[MetricTuple]]] = ()
    ready: Callable[[], bool] = lambda: True
    now: Callable[[], float] = time.time
    build_info: Mapping[str, str] = field(default_factory=_default_build_info)
    runtime_info: Callable[[], Mapping[str, Any]] = dict
    wal_replay: Callable[[], Mapping[str, int]] = lambda: {"min": 0, "max": 0, "current": 0}
    external_labels: Mapping[str, str] = field(default_factory=dict)
    lookback_delta_ms: int = 5 * 60 * 1000
    query_concurrency: int = 20
    """Queries evaluated at once (Prometheus's --query.max-concurrency); more wait."""
    inline_query_budget_s: float = 0.002
    """Query shapes whose last evaluation took less run inline on the event loop
    (see `web/query_runner.py`); 0 sends every query to a query thread."""
    remote_write_max_bytes: int = 32 << 20
    """Largest accepted remote-write or import body, after decompression (413 above)."""
    remote_write_max_ahead_ms: int = 10 * 60 * 1000
    """Samples further in the future than this are refused (400), as in Prometheus."""
