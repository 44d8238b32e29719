"""Fixtures for the HTTP layer: a pre-filled MemoryStorage, a tiny real engine that
answers bare series selectors, and an in-process client."""

from __future__ import annotations

import socket
import warnings
from typing import Any

import numpy as np

from vigil.model.labels import Labels
from vigil.promql.errors import ParseError, QueryTimeoutError
from vigil.promql.result import QueryResult, Sample, Scalar, Series, String
from vigil.storage.memory import MemoryStorage
from vigil.web import WebContext, create_app
from vigil.web.selectors import SelectorError, parse_selector

with warnings.catch_warnings():
    # Starlette deprecates its httpx-based TestClient in favour of httpx2; still works.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

NOW_S = 1_700_000_000.0
NOW_MS = int(NOW_S * 1000)
LOOKBACK = 300_000


class SelectorEngine:
    """Evaluates only series selectors, numbers and strings: enough to exercise the
    API without the PromQL engine; `timeout_me` raises a timeout."""

    def __init__(self, storage: MemoryStorage) -> None:
        self.storage = storage
        self.calls: list[tuple[Any, ...]] = []

    def _literal(self, expr: str, t: int) -> QueryResult | None:
        e = expr.strip()
        if e == "timeout_me":
            raise QueryTimeoutError()
        if e.startswith('"') and e.endswith('"'):
            return QueryResult("string", String(t, e[1:-1]))
        try:
            return QueryResult("scalar", Scalar(t, float(e)))
        except ValueError:
            return None

    def _matchers(self, expr: str) -> Any:
        try:
            return parse_selector(expr)
        except SelectorError as exc:
            raise ParseError(str(exc), 0) from None

    def instant_query(self, expr: str, t_ms: int, *, timeout_s: float | None = None) -> QueryResult:
        self.calls.append(("instant", expr, t_ms, timeout_s))
        lit = self._literal(expr, t_ms)
        if lit is not None:
            return lit
        ms = self._matchers(expr)
        q = self.storage.querier(t_ms - LOOKBACK, t_ms)
        out = [
            Sample(sd.labels, t_ms, float(sd.values[-1]))
            for sd in q.select(ms, t_ms - LOOKBACK, t_ms)
        ]
        return QueryResult("vector", out, warnings=["a warning"] if "warn" in expr else [])

    def range_query(
        self, expr: str, start_ms: int, end_ms: int, step_ms: int, *, timeout_s: float | None = None
    ) -> QueryResult:
        self.calls.append(("range", expr, start_ms, end_ms, step_ms, timeout_s))
        ms = self._matchers(expr)
        q = self.storage.querier(start_ms, end_ms)
        out = [Series(sd.labels, sd.timestamps, sd.values) for sd in q.select(ms, start_ms, end_ms)]
        return QueryResult("matrix", out)


def fill(storage: MemoryStorage) -> None:
    app = storage.appender()
    for i in range(3):
        for inst in ("a:1", "b:2"):
            labels = Labels.from_dict({"__name__": f"metric_{i}", "job": "node", "instance": inst})
            for k in range(5):
                app.append(labels, NOW_MS - 60_000 + k * 15_000, float(i * 10 + k) + 0.5)
    app.append(Labels.from_dict({"__name__": "up", "job": "node"}), NOW_MS - 1000, 1.0)
    app.commit()


def make_client(ctx: WebContext) -> TestClient:
    return TestClient(create_app(ctx))


def values_of(series: Any) -> list[float]:
    return list(np.asarray(series.values))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
