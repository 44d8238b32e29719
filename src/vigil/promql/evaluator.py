"""The tree walker: evaluates a PromQL AST for all steps of a query at once.

An `Evaluator` is bound to one query and one step grid; subqueries create child
evaluators on their own grid that share the query's `QueryContext` (limits,
deadline, annotations). Evaluators are not shared between threads: the `Engine`
builds a fresh one per query, which is what makes the engine thread-safe.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from vigil.model.labels import Labels
from vigil.model.matchers import Matcher
from vigil.model.samples import stale_mask
from vigil.promql import aggregations, binops, functions_table
from vigil.promql.errors import ExecutionError, QueryTimeoutError, TooManySamplesError
from vigil.promql.eval_types import (
    MatrixBlock,
    ScalarBlock,
    StringValue,
    Value,
    VectorBlock,
    count_le,
)
from vigil.promql.parser import ast
from vigil.storage.interface import Queryable, SelectHints, SeriesData
from vigil.storage.interface import concat_runs as _concat_runs
from vigil.storage.interface import flat_samples as _flat_samples


@dataclass
class QueryContext:
    """Per-query state shared by an evaluator and its subquery children."""

    queryable: Queryable
    lookback_ms: int
    max_samples: int
    deadline: float
    query_start: int
    query_end: int
    subquery_step_ms: int
    query_step_ms: int = 0
    query_text: str = ""
    samples_loaded: int = 0
    peak_samples: int = 0
    warnings: list[str] = field(default_factory=list)
    infos: list[str] = field(default_factory=list)

    def position(self, pos: ast.Pos) -> str:
        """`line:col` (1-based) of a node's start in the query text, as Prometheus
        prints positions in annotations (line 1 when the query came as an AST)."""
        before = self.query_text[: pos[0]]
        line = before.count("\n") + 1
        col = pos[0] - (before.rfind("\n") + 1) + 1
        return f"{line}:{col}"

    def warn(self, message: str, pos: ast.Pos | None = None) -> None:
        text = f"PromQL warning: {message}"
        if pos is not None:
            text += f" ({self.position(pos)})"
        if text not in self.warnings:
            self.warnings.append(text)

    def info(self, message: str, pos: ast.Pos | None = None) -> None:
        text = f"PromQL info: {message}"
        if pos is not None:
            text += f" ({self.position(pos)})"
        if text not in self.infos:
            self.infos.append(text)

    def check_deadline(self) -> None:
        if time.monotonic() > self.deadline:
            raise QueryTimeoutError()

    def account(self, n: int) -> None:
        """Record `n` samples about to be held in memory at once (a selection, or
        one [series x steps] block). Raises TooManySamplesError when a single
        holding exceeds `max_samples`, before anything that large is allocated;
        `samples_loaded` keeps the running total for statistics."""
        self.samples_loaded += n
        self.peak_samples = max(self.peak_samples, n)
        if n > self.max_samples:
            raise TooManySamplesError(self.max_samples)


def unwrap(node: ast.Expr) -> ast.Expr:
    while isinstance(node, ast.ParenExpr):
        node = node.expr
    return node


class Evaluator:
    """Evaluates nodes over the step timestamps `steps` (int64 ms, ascending)."""

    def __init__(self, ctx: QueryContext, steps: np.ndarray) -> None:
        self.ctx = ctx
        self.steps = steps
        self.n_steps = len(steps)

    # --- dispatch -----------------------------------------------------------------

    def eval(self, node: ast.Expr) -> Value:
        self.ctx.check_deadline()
        if isinstance(node, ast.ParenExpr):
            return self.eval(node.expr)
        if isinstance(node, ast.NumberLiteral):
            return ScalarBlock(np.full(self.n_steps, float(node.value)))
        if isinstance(node, ast.StringLiteral):
            return StringValue(node.value)
        if isinstance(node, ast.VectorSelector):
            return self.vector_selector(node)[0]
        if isinstance(node, ast.MatrixSelector):
            return self.matrix_selector(node)
        if isinstance(node, ast.SubqueryExpr):
            return self.subquery(node)
        if isinstance(node, ast.UnaryExpr):
            return self.unary(node)
        if isinstance(node, ast.Call):
            return functions_table.call(self, node)
        if isinstance(node, ast.AggregateExpr):
            return aggregations.aggregate(self, node)
        if isinstance(node, ast.BinaryExpr):
            return binops.binary(self, node)
        raise ExecutionError(f"unsupported expression node {type(node).__name__}")

    def eval_vector(self, node: ast.Expr) -> VectorBlock:
        v = self.eval(node)
        if not isinstance(v, VectorBlock):
            raise ExecutionError(f"expected instant vector, got {_kind(v)}")
        return v

    def eval_scalar(self, node: ast.Expr) -> np.ndarray:
        v = self.eval(node)
        if not isinstance(v, ScalarBlock):
            raise ExecutionError(f"expected scalar, got {_kind(v)}")
        return v.values

    def eval_string(self, node: ast.Expr) -> str:
        v = self.eval(node)
        if not isinstance(v, StringValue):
            raise ExecutionError(f"expected string, got {_kind(v)}")
        return v.value

    def eval_matrix(self, node: ast.Expr) -> MatrixBlock:
        v = self.eval(node)
        if not isinstance(v, MatrixBlock):
            raise ExecutionError(f"expected range vector, got {_kind(v)}")
        return v

    # --- selectors ----------------------------------------------------------------

    def effective_times(
        self, at: int | None, at_modifier: ast.AtModifier, offset_ms: int
    ) -> np.ndarray:
        """Per-step times a selector reads at, after `@` and `offset`."""
        if at is not None:
            base = np.full(self.n_steps, at, dtype=np.int64)
        elif at_modifier == "start":
            base = np.full(self.n_steps, self.ctx.query_start, dtype=np.int64)
        elif at_modifier == "end":
            base = np.full(self.n_steps, self.ctx.query_end, dtype=np.int64)
        else:
            base = self.steps.astype(np.int64)
        return base - offset_ms

    def select(
        self, matchers: Sequence[Matcher], mint: int, maxt: int, hints: SelectHints
    ) -> list[SeriesData]:
        q = self.ctx.queryable.querier(mint, maxt)
        try:
            series = q.select(list(matchers), mint, maxt, hints)
        finally:
            q.close()
        self.ctx.account(sum(len(s.timestamps) for s in series))
        self.ctx.check_deadline()
        return series

    def vector_selector(self, node: ast.VectorSelector) -> tuple[VectorBlock, np.ndarray]:
        """The selector's instant vector and the timestamps (ms) of the samples used."""
        teff = self.effective_times(node.at, node.at_modifier, node.offset_ms)
        lookback = self.ctx.lookback_ms
        if self.n_steps == 0:
            return VectorBlock.empty(0), np.zeros((0, 0), dtype=np.int64)
        mint = int(teff.min()) - lookback + 1
        maxt = int(teff.max())
        hints = SelectHints(start=int(self.steps[0]), end=int(self.steps[-1]))
        series = self.select(node.matchers, mint, maxt, hints)
        n = len(series)
        if n == 0:
            return VectorBlock.empty(self.n_steps), np.zeros((0, self.n_steps), dtype=np.int64)
        self.ctx.account(n * self.n_steps)
        ts, vs, offsets = _flat_samples(series)
        # Index of the newest sample at or before each step, for all series at once.
        idx = count_le(ts, offsets, teff) - 1
        present = idx >= offsets[:-1, None]
        np.maximum(idx, 0, out=idx)
        stamps = ts[idx]
        values = vs[idx]
        present &= stamps > (teff - lookback)[None, :]
        present &= ~stale_mask(values)
        block = VectorBlock([s.labels for s in series], np.zeros(n, dtype=bool), values, present)
        keep = present.any(axis=1)
        if not keep.all():
            rows = np.flatnonzero(keep)
            return block.select_rows(rows), stamps[rows]
        return block, stamps

    def matrix_selector(self, node: ast.MatrixSelector) -> MatrixBlock:
        sel = node.selector
        teff = self.effective_times(sel.at, sel.at_modifier, sel.offset_ms)
        rng = node.range_ms
        if self.n_steps == 0:
            return self._matrix_from([], [], [], teff, rng)
        mint = int(teff.min()) - rng + 1
        maxt = int(teff.max())
        hints = SelectHints(start=int(self.steps[0]), end=int(self.steps[-1]), range_ms=rng)
        series = self.select(sel.matchers, mint, maxt, hints)
        tss = [s.timestamps for s in series]
        vss = [s.values for s in series]
        flat_given = None
        if series:
            # One pass over all samples for staleness markers; only series that
            # hold one are filtered.
            flat_given = _flat_samples(series)
            stale = stale_mask(flat_given[1])
            if stale.any():
                flat_given = None
                lens = np.array([len(v) for v in vss], dtype=np.int64)
                bounds = np.zeros(len(series) + 1, dtype=np.int64)
                np.cumsum(lens, out=bounds[1:])
                hit = np.searchsorted(bounds, np.flatnonzero(stale), side="right") - 1
                for i in np.unique(hit).tolist():
                    keep = ~stale[bounds[i] : bounds[i + 1]]
                    tss[i] = tss[i][keep]
                    vss[i] = vss[i][keep]
        return self._matrix_from([s.labels for s in series], tss, vss, teff, rng, flat=flat_given)

    def _matrix_from(
        self,
        labels: list[Labels],
        tss: list[np.ndarray],
        vss: list[np.ndarray],
        teff: np.ndarray,
        rng: int,
        drop_name: np.ndarray | None = None,
        flat: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    ) -> MatrixBlock:
        """`flat`: (timestamps, values, offsets) of `tss`/`vss` back to back, when
        the caller has them already."""
        n = len(labels)
        self.ctx.account(n * len(teff))
        ts, vs, offsets = flat if flat is not None else _concat_runs(tss, vss)
        starts = teff - rng
        if len(teff) == 1 and (
            ts.size == 0 or (int(ts.min()) > starts[0] and int(ts.max()) <= teff[0])
        ):
            # One window holding every sample given (what a selector's select
            # returns for an instant query): each series' whole run.
            return MatrixBlock(
                labels,
                np.zeros(n, dtype=bool) if drop_name is None else drop_name,
                ts,
                vs,
                offsets,
                offsets[:-1, None].copy(),
                offsets[1:, None].copy(),
                rng,
                starts,
                teff,
            )
        hi = count_le(ts, offsets, teff)
        # When windows start where earlier windows ended (range a multiple of a
        # regular step), the start indices are the earlier end indices.
        shift = 0
        if len(teff) > 1 and rng > 0:
            d = np.diff(teff)
            if (d == d[0]).all() and d[0] > 0 and rng % int(d[0]) == 0:
                shift = rng // int(d[0])
        if 0 < shift < len(teff):
            lo = np.empty_like(hi)
            lo[:, shift:] = hi[:, :-shift]
            lo[:, :shift] = count_le(ts, offsets, starts[:shift])
        else:
            lo = count_le(ts, offsets, starts)
        if drop_name is None:
            drop_name = np.zeros(n, dtype=bool)
        return MatrixBlock(labels, drop_name, ts, vs, offsets, lo, hi, rng, starts, teff)

    def subquery(self, node: ast.SubqueryExpr) -> MatrixBlock:
        teff = self.effective_times(node.at, node.at_modifier, node.offset_ms)
        step = node.step_ms or self.ctx.subquery_step_ms
        if step <= 0:
            raise ExecutionError("subquery step must be positive")
        rng = node.range_ms
        if self.n_steps == 0:
            return self._matrix_from([], [], [], teff, rng)
        bound = int(teff.min()) - rng
        # First multiple of the step strictly after the earliest window start, so
        # inner steps sit on absolute multiples of the step as in Prometheus.
        first = (bound // step + 1) * step
        last = int(teff.max())
        # Every inner step becomes at least one value in the child's blocks: refuse
        # a subquery whose step count alone is over the limit before allocating it
        # (`x[10000d:1s]` would otherwise need gigabytes just for its timestamps).
        self.ctx.account(max(0, (last - first) // step + 1))
        inner_steps = np.arange(first, last + 1, step, dtype=np.int64)
        child = Evaluator(self.ctx, inner_steps)
        inner = child.eval(node.expr)
        if isinstance(inner, ScalarBlock):
            inner = VectorBlock(
                [Labels.EMPTY],
                np.zeros(1, dtype=bool),
                inner.values[None, :],
                np.ones((1, len(inner_steps)), dtype=bool),
            )
        if not isinstance(inner, VectorBlock):
            raise ExecutionError(f"subquery is only allowed on instant vector, got {_kind(inner)}")
        tss = [inner_steps[inner.present[i]] for i in range(inner.n_series)]
        vss = [inner.values[i][inner.present[i]] for i in range(inner.n_series)]
        self.ctx.account(int(inner.present.sum()))
        return self._matrix_from(list(inner.labels), tss, vss, teff, rng, inner.drop_name.copy())

    # --- unary ----------------------------------------------------------------------

    def unary(self, node: ast.UnaryExpr) -> Value:
        v = self.eval(node.expr)
        if node.op != "-":
            return v
        if isinstance(v, ScalarBlock):
            return ScalarBlock(-v.values)
        if isinstance(v, VectorBlock):
            return VectorBlock(v.labels, np.ones(v.n_series, dtype=bool), -v.values, v.present)
        raise ExecutionError(f"unary minus is not defined on {_kind(v)}")


def _kind(v: Value) -> str:
    if isinstance(v, VectorBlock):
        return "instant vector"
    if isinstance(v, ScalarBlock):
        return "scalar"
    if isinstance(v, MatrixBlock):
        return "range vector"
    return "string"
