"""The PromQL engine: the public entry point for instant and range queries.

The engine holds only configuration; every query builds its own evaluator and
context, so one `Engine` is safe to call from many threads at once (the HTTP API
and the rule manager do). It reads data only through the `Queryable` it is given.
"""

from __future__ import annotations

import functools
import time

import numpy as np

from vigil.model.labels import METRIC_NAME, Labels
from vigil.promql.errors import ExecutionError, PromQLError
from vigil.promql.eval_types import (
    MatrixBlock,
    ScalarBlock,
    StringValue,
    Value,
    VectorBlock,
    query_deadline,
)
from vigil.promql.evaluator import Evaluator, QueryContext, unwrap
from vigil.promql.parser import ast, parse_expr
from vigil.promql.result import QueryResult, QueryStats, Sample, Scalar, Series, String
from vigil.storage.interface import Queryable

_ORDERED_FUNCS = frozenset({"sort", "sort_desc", "sort_by_label", "sort_by_label_desc"})
_ORDERED_AGGS = frozenset({"topk", "bottomk"})


def _parse(expr: str | ast.Expr, experimental: bool) -> ast.Expr:
    if isinstance(expr, ast.Expr):
        return expr
    if not isinstance(expr, str):
        raise ExecutionError(f"query must be a string or an AST, got {type(expr).__name__}")
    return _parse_cached(expr, experimental)


# Dashboards and rules send the same query texts again and again; ASTs are frozen
# dataclasses, so one parse can serve every evaluation.
@functools.lru_cache(maxsize=2048)
def _parse_cached(expr: str, experimental: bool) -> ast.Expr:
    return parse_expr(expr, experimental=experimental)


class Engine:
    """Evaluates PromQL against a `Queryable`.

    `lookback_delta_ms`: how far back an instant selector looks for a sample.
    `max_samples`: the most samples a query may hold at once, per selection or
    per [series x steps] intermediate block; past it the query fails with
    `TooManySamplesError` before allocating. `timeout_s`: default per-query deadline
    (`QueryTimeoutError`). `subquery_step_ms`: the step of subqueries written
    without one (Prometheus uses the global evaluation interval).
    `experimental_functions`: accept Prometheus's experimental functions and
    aggregators (`limitk`, `sort_by_label`, ...) in query strings.
    Thread-safe: queries share no mutable state.
    """

    def __init__(
        self,
        queryable: Queryable,
        *,
        lookback_delta_ms: int = 300_000,
        max_samples: int = 50_000_000,
        timeout_s: float = 120.0,
        subquery_step_ms: int = 60_000,
        experimental_functions: bool = True,
    ) -> None:
        if lookback_delta_ms <= 0:
            raise ValueError(f"lookback_delta_ms must be positive, got {lookback_delta_ms}")
        if max_samples <= 0:
            raise ValueError(f"max_samples must be positive, got {max_samples}")
        self.queryable = queryable
        self.lookback_delta_ms = int(lookback_delta_ms)
        self.max_samples = int(max_samples)
        self.timeout_s = float(timeout_s)
        self.subquery_step_ms = int(subquery_step_ms)
        self.experimental_functions = bool(experimental_functions)

    def _context(self, start: int, end: int, timeout_s: float | None, text: str) -> QueryContext:
        t = self.timeout_s if timeout_s is None else timeout_s
        return QueryContext(
            query_text=text,
            queryable=self.queryable,
            lookback_ms=self.lookback_delta_ms,
            max_samples=self.max_samples,
            deadline=time.monotonic() + t,
            query_start=start,
            query_end=end,
            subquery_step_ms=self.subquery_step_ms,
        )

    def instant_query(
        self, expr: str | ast.Expr, t_ms: int, *, timeout_s: float | None = None
    ) -> QueryResult:
        """Evaluate `expr` at `t_ms` (int ms). Vector -> list[Sample] with t = t_ms;
        a range vector -> list[Series] of the raw samples in the window."""
        node = _parse(expr, self.experimental_functions)
        started = time.perf_counter()
        t_ms = int(t_ms)
        ctx = self._context(t_ms, t_ms, timeout_s, expr if isinstance(expr, str) else "")
        ev = Evaluator(ctx, np.array([t_ms], dtype=np.int64))
        token = query_deadline.set(ctx.deadline)
        try:
            val = ev.eval(node)
        finally:
            query_deadline.reset(token)
        result = self._instant_result(node, val, t_ms)
        result.warnings.extend(ctx.warnings)
        result.infos.extend(ctx.infos)
        result.stats = QueryStats(
            ctx.samples_loaded, ctx.peak_samples, time.perf_counter() - started
        )
        return result

    def range_query(
        self,
        expr: str | ast.Expr,
        start_ms: int,
        end_ms: int,
        step_ms: int,
        *,
        timeout_s: float | None = None,
    ) -> QueryResult:
        """Evaluate `expr` at start, start+step, ... <= end (inclusive, int ms).
        Returns a matrix: list[Series] sorted by labels, each holding only the steps
        where it has a value."""
        if step_ms <= 0:
            raise ExecutionError(
                f"zero or negative query resolution step widths are not accepted, got {step_ms}"
            )
        if end_ms < start_ms:
            raise ExecutionError(f"end timestamp {end_ms} must not be before start time {start_ms}")
        node = _parse(expr, self.experimental_functions)
        started = time.perf_counter()
        steps = np.arange(int(start_ms), int(end_ms) + 1, int(step_ms), dtype=np.int64)
        ctx = self._context(
            int(start_ms), int(end_ms), timeout_s, expr if isinstance(expr, str) else ""
        )
        ctx.query_step_ms = int(step_ms)
        ev = Evaluator(ctx, steps)
        token = query_deadline.set(ctx.deadline)
        try:
            val = ev.eval(node)
        finally:
            query_deadline.reset(token)
        if isinstance(val, StringValue):
            raise ExecutionError(
                'invalid expression type "string" for range query, must be Scalar or instant Vector'
            )
        if isinstance(val, MatrixBlock):
            raise ExecutionError(
                'invalid expression type "range vector" for range query, must be Scalar or instant Vector'
            )
        if isinstance(val, ScalarBlock):
            series = [Series(Labels.EMPTY, steps.copy(), val.values.copy())]
        else:
            block = finalize_names(val)
            series = []
            for i in range(block.n_series):
                p = block.present[i]
                if p.any():
                    series.append(Series(block.labels[i], steps[p], block.values[i][p]))
            series.sort(key=lambda s: s.labels)
        ctx.account(sum(len(s.timestamps) for s in series))
        return QueryResult(
            "matrix",
            series,
            warnings=list(ctx.warnings),
            infos=list(ctx.infos),
            stats=QueryStats(ctx.samples_loaded, ctx.peak_samples, time.perf_counter() - started),
        )

    def _instant_result(self, node: ast.Expr, val: Value, t_ms: int) -> QueryResult:
        if isinstance(val, ScalarBlock):
            return QueryResult("scalar", Scalar(t_ms, float(val.values[0])))
        if isinstance(val, StringValue):
            return QueryResult("string", String(t_ms, val.value))
        if isinstance(val, MatrixBlock):
            out = []
            for i in range(val.n_series):
                a, b = int(val.lo[i, 0]), int(val.hi[i, 0])
                if b > a:
                    lbls = val.labels[i].without_name() if val.drop_name[i] else val.labels[i]
                    out.append(Series(lbls, val.ts[a:b].copy(), val.vs[a:b].copy()))
            out.sort(key=lambda s: s.labels)
            return QueryResult("matrix", out)
        block = finalize_names(val)
        samples = [
            Sample(block.labels[i], t_ms, float(block.values[i, 0]))
            for i in range(block.n_series)
            if block.present[i, 0]
        ]
        if not _is_ordered(node):
            samples.sort(key=lambda s: s.labels)
        return QueryResult("vector", samples)


def _is_ordered(node: ast.Expr) -> bool:
    node = unwrap(node)
    if isinstance(node, ast.Call):
        return node.func in _ORDERED_FUNCS
    if isinstance(node, ast.AggregateExpr):
        return node.op in _ORDERED_AGGS
    return False


def finalize_names(block: VectorBlock) -> VectorBlock:
    """Apply delayed `__name__` removal and merge series that end up identical.

    Raises ExecutionError when two series with the same final labels have values at
    the same step, as Prometheus does."""
    if not block.drop_name.any():
        labels = block.labels
    else:
        labels = [
            lbls.without_name() if d and lbls.has(METRIC_NAME) else lbls
            for lbls, d in zip(block.labels, block.drop_name.tolist(), strict=True)
        ]
    index: dict[Labels, int] = {}
    rows: list[list[int]] = []
    for i, lbls in enumerate(labels):
        j = index.get(lbls)
        if j is None:
            index[lbls] = len(rows)
            rows.append([i])
        else:
            rows[j].append(i)
    if len(rows) == len(labels):
        return VectorBlock(labels, np.zeros(len(labels), dtype=bool), block.values, block.present)
    out_labels, vals, pres = [], [], []
    for group in rows:
        p = block.present[group]
        if (p.sum(axis=0) > 1).any():
            raise ExecutionError("vector cannot contain metrics with the same labelset")
        out_labels.append(labels[group[0]])
        vals.append(np.where(p, block.values[group], 0.0).sum(axis=0))
        pres.append(p.any(axis=0))
    return VectorBlock(
        out_labels, np.zeros(len(out_labels), dtype=bool), np.array(vals), np.array(pres)
    )


__all__ = ["Engine", "PromQLError", "finalize_names"]
