"""Function name -> implementation, and the dispatch of `Call` nodes.

Signatures (argument types, arity) are the parser's business
(`vigil.promql.parser.functions`); this table only says how to compute.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from vigil.model.labels import METRIC_NAME
from vigil.promql import histogram, range_functions
from vigil.promql.errors import ExecutionError
from vigil.promql.eval_types import MatrixBlock, Value, VectorBlock
from vigil.promql.instant_functions import INSTANT_FUNCTIONS, absent_labels
from vigil.promql.parser import ast

if TYPE_CHECKING:
    from vigil.promql.evaluator import Evaluator


def unwrap(node: ast.Expr) -> ast.Expr:
    while isinstance(node, ast.ParenExpr):
        node = node.expr
    return node


def _from_range(m: MatrixBlock, name: str, result: tuple[np.ndarray, np.ndarray]) -> VectorBlock:
    values, present = result
    if name in range_functions.KEEP_NAME_RANGE_FUNCTIONS:
        drop = m.drop_name
    else:
        drop = np.ones(m.n_series, dtype=bool)
    return VectorBlock(m.labels, drop, values, present).compact()


_COUNTER_SUFFIXES = ("_total", "_sum", "_count", "_bucket")


def _non_counter_info(ev: Evaluator, out: VectorBlock, arg: ast.Expr) -> None:
    # Checked once per distinct metric name, in first-seen order; `__name__`
    # usually sorts first, which saves the scan through each label set.
    names = dict.fromkeys(
        lbls[0][1] if lbls and lbls[0][0] == METRIC_NAME else lbls.metric_name
        for lbls in out.labels
    )
    for name in names:
        if name and not name.endswith(_COUNTER_SUFFIXES):
            ev.ctx.info(
                f'metric might not be a counter, name does not end in _total/_sum/_count/_bucket: "{name}"',
                getattr(arg, "pos", None),
            )


def check_quantile(ev: Evaluator, q: np.ndarray, arg: ast.Expr) -> None:
    """Warn, as Prometheus does, about quantiles outside [0, 1]."""
    bad = q[np.isnan(q) | (q < 0) | (q > 1)]
    for v in np.unique(bad).tolist():
        ev.ctx.warn(
            f"quantile value should be between 0 and 1, got {go_g(v)}", getattr(arg, "pos", None)
        )


def go_g(v: float) -> str:
    """Go's %g for the values annotations print."""
    if v != v:
        return "NaN"
    if v in (float("inf"), float("-inf")):
        return "+Inf" if v > 0 else "-Inf"
    return f"{v:g}" if abs(v) < 1e21 else repr(v)


def _quantile_over_time(ev: Evaluator, call: ast.Call) -> Value:
    q = ev.eval_scalar(call.args[0])
    m = ev.eval_matrix(call.args[1])
    if (m.hi > m.lo).any():
        check_quantile(ev, q, call.args[0])
    return _from_range(m, "quantile_over_time", range_functions.quantile_over_time(m, q))


def _predict_linear(ev: Evaluator, call: ast.Call) -> Value:
    m = ev.eval_matrix(call.args[0])
    d = ev.eval_scalar(call.args[1])
    # The intercept is taken at the evaluation time, not at the selector's
    # `@`/offset-shifted time: Prometheus predicts from "now" either way.
    return _from_range(m, "predict_linear", range_functions.predict_linear(m, d, ev.steps))


def _double_exp(ev: Evaluator, call: ast.Call) -> Value:
    m = ev.eval_matrix(call.args[0])
    sf = ev.eval_scalar(call.args[1])
    tf = ev.eval_scalar(call.args[2])
    return _from_range(
        m, "double_exponential_smoothing", range_functions.double_exponential_smoothing(m, sf, tf)
    )


def _absent_over_time(ev: Evaluator, call: ast.Call) -> Value:
    m = ev.eval_matrix(call.args[0])
    if m.n_series:
        missing = ~((m.hi - m.lo) > 0).any(axis=0)
    else:
        missing = np.ones(ev.n_steps, dtype=bool)
    return VectorBlock(
        [absent_labels(call.args[0])],
        np.zeros(1, dtype=bool),
        np.ones((1, ev.n_steps)),
        missing[None, :],
    ).compact()


SPECIAL_FUNCTIONS = {
    "quantile_over_time": _quantile_over_time,
    "predict_linear": _predict_linear,
    "double_exponential_smoothing": _double_exp,
    "absent_over_time": _absent_over_time,
    "histogram_quantile": histogram.histogram_quantile,
    "histogram_quantiles": histogram.histogram_quantiles,
    "histogram_fraction": histogram.histogram_fraction,
}


def implemented() -> frozenset[str]:
    """Names of every function the engine can evaluate."""
    return (
        frozenset(range_functions.SIMPLE_RANGE_FUNCTIONS)
        | frozenset(SPECIAL_FUNCTIONS)
        | frozenset(INSTANT_FUNCTIONS)
    )


def call(ev: Evaluator, node: ast.Call) -> Value:
    name = node.func
    simple = range_functions.SIMPLE_RANGE_FUNCTIONS.get(name)
    if simple is not None:
        m = ev.eval_matrix(node.args[0])
        out = _from_range(m, name, simple(m))
        if name in ("rate", "increase") and isinstance(unwrap(node.args[0]), ast.MatrixSelector):
            _non_counter_info(ev, out, node.args[0])
        return out
    special = SPECIAL_FUNCTIONS.get(name)
    if special is not None:
        return special(ev, node)
    inst = INSTANT_FUNCTIONS.get(name)
    if inst is not None:
        return inst(ev, node)
    raise ExecutionError(f"function {name!r} is not implemented")
