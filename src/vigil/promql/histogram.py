"""Classic (`le`-bucket) histogram functions: histogram_quantile(s), histogram_fraction.

Buckets are grouped by their labels without `le` and `__name__` once per query;
each group is then solved for all steps at once (steps sharing the same set of
present buckets are processed together). Semantics follow Prometheus's
quantile.go: +Inf bucket required, equal bounds coalesced, counts forced
monotonic with a 1e-12 relative tolerance, linear interpolation within a bucket.
"""

from __future__ import annotations

import math
import threading
from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from vigil.model.labels import METRIC_NAME, Labels
from vigil.promql.eval_types import Value, VectorBlock
from vigil.promql.parser import ast

if TYPE_CHECKING:
    from vigil.promql.evaluator import Evaluator

_TOLERANCE = 1e-12


class _Flag(threading.local):
    """Per-thread note that the last quantile computation forced monotonicity."""

    flag = False


_FORCED = _Flag()
_MIN_NORMAL = 2.2250738585072014e-308


def parse_le(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def _almost_equal(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        abs_sum = np.abs(a) + np.abs(b)
        diff = np.abs(a - b)
        tiny = (a == 0) | (b == 0) | (abs_sum < _MIN_NORMAL)
        rel = diff / np.minimum(abs_sum, np.finfo(np.float64).max)
        return (a == b) | np.where(tiny, diff < _TOLERANCE * _MIN_NORMAL, rel < _TOLERANCE)


def _prepare(bounds: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coalesce equal bounds and force monotonic counts. counts: [buckets, steps]."""
    uniq, inv = np.unique(bounds, return_inverse=True)
    c = np.zeros((len(uniq), counts.shape[1]))
    np.add.at(c, inv, counts)
    prev = c[0].copy()
    forced = False
    for i in range(1, len(uniq)):
        cur = c[i]
        close = _almost_equal(prev, cur)
        drop = (cur < prev) & ~close
        forced = forced or bool(drop.any())
        fix = close | drop
        c[i] = np.where(fix, prev, cur)
        prev = np.where(fix, prev, cur)
    _FORCED.flag = _FORCED.flag or forced
    return uniq, c


def bucket_quantile(q: np.ndarray, bounds: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Quantile per step. bounds sorted-or-not [k]; counts [k, steps]; q [steps]."""
    steps = counts.shape[1]
    nan = np.full(steps, np.nan)
    order = np.argsort(bounds, kind="stable")
    bounds, counts = bounds[order], counts[order]
    if not np.isposinf(bounds[-1]):
        return _q_edges(q, nan)
    b, c = _prepare(bounds, counts)
    k = len(b)
    if k < 2:
        return _q_edges(q, nan)
    total = c[-1]
    rank = q * total
    # First bucket among the first k-1 whose count reaches the rank.
    reach = c[: k - 1] >= rank[None, :]
    idx = np.where(reach.any(axis=0), reach.argmax(axis=0), k - 1)
    cols = np.arange(steps)
    end = b[np.minimum(idx, k - 1)]
    start = np.where(idx > 0, b[np.maximum(idx - 1, 0)], 0.0)
    prev = np.where(idx > 0, c[np.maximum(idx - 1, 0), cols], 0.0)
    cnt = c[np.minimum(idx, k - 1), cols] - prev
    with np.errstate(all="ignore"):
        res = start + (end - start) * ((rank - prev) / cnt)
    res = np.where((idx == 0) & (b[0] <= 0), b[0], res)
    res = np.where(idx == k - 1, b[k - 2], res)
    res = np.where(total == 0, np.nan, res)
    res = np.where(np.isnan(total), np.nan, res)
    return _q_edges(q, res)


def _q_edges(q: np.ndarray, res: np.ndarray) -> np.ndarray:
    res = np.where(q < 0, -np.inf, res)
    res = np.where(q > 1, np.inf, res)
    return np.where(np.isnan(q), np.nan, res)


def bucket_fraction(
    lower: np.ndarray, upper: np.ndarray, bounds: np.ndarray, counts: np.ndarray
) -> np.ndarray:
    """Estimated fraction of observations in [lower, upper] per step (no
    monotonicity fix-up here, as in Prometheus)."""
    steps = counts.shape[1]
    order = np.argsort(bounds, kind="stable")
    bounds, counts = bounds[order], counts[order]
    if not np.isposinf(bounds[-1]):
        return np.full(steps, np.nan)
    b, inv = np.unique(bounds, return_inverse=True)
    c = np.zeros((len(b), steps))
    np.add.at(c, inv, counts)
    total = c[-1]
    with np.errstate(all="ignore"):
        res = (_rank(upper, b, c, total) - _rank(lower, b, c, total)) / total
    res = np.where(lower >= upper, 0.0, res)
    return np.where((total == 0) | np.isnan(lower) | np.isnan(upper), np.nan, res)


def _rank(v: np.ndarray, b: np.ndarray, c: np.ndarray, total: np.ndarray) -> np.ndarray:
    """Interpolated count of observations below `v`, per step. The first bucket
    starts at 0 when its bound is positive, else at -Inf; nothing is interpolated
    inside an infinite-width bucket."""
    steps = c.shape[1]
    res = np.array(total, dtype=np.float64, copy=True)
    done = np.zeros(steps, dtype=bool)
    prev = np.zeros(steps)
    lb = 0.0 if b[0] > 0 else -np.inf
    with np.errstate(all="ignore"):
        for i in range(len(b)):
            if i > 0:
                lb = float(b[i - 1])
            ub = float(b[i])
            hit = ~done & (lb >= v)
            res = np.where(hit, prev, res)
            done |= hit
            inside = ~done & (lb < v) & (ub > v)
            if np.isneginf(lb):
                val = c[i]
            else:
                val = prev + (c[i] - prev) * (v - lb) / (ub - lb)
            res = np.where(inside, val, res)
            done |= inside
            prev = c[i]
    return np.where(res > total, total, res)


def _bucket_groups(
    ev: Evaluator, v: VectorBlock, arg: ast.Expr
) -> tuple[list[Labels], list[list[tuple[float, int]]]]:
    groups: dict[Labels, list[tuple[float, int]]] = defaultdict(list)
    for i, lbls in enumerate(v.labels):
        le = parse_le(lbls.get("le")) if lbls.has("le") else None
        if le is None:
            ev.ctx.warn(
                f'bucket label "le" is missing or has a malformed value of "{lbls.get("le")}" '
                f'for metric name "{lbls.metric_name}"',
                getattr(arg, "pos", None),
            )
            continue
        # Grouped with the metric name (delayed name removal): buckets of two
        # metrics never mix, and their results collide only at the very end.
        groups[lbls.without("le")].append((le, i))
    return [k.without(METRIC_NAME) for k in groups], list(groups.values())


def _solve(
    v: VectorBlock,
    members: list[tuple[float, int]],
    fn: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """Run `fn(bounds, counts, cols)` per distinct presence pattern of the group."""
    rows = [i for _, i in members]
    bounds = np.array([le for le, _ in members])
    pres = v.present[rows]
    steps = pres.shape[1]
    out = np.zeros(steps)
    ok = np.asarray(pres.any(axis=0), dtype=bool)
    patterns: dict[bytes, list[int]] = defaultdict(list)
    for j in np.flatnonzero(ok).tolist():
        patterns[pres[:, j].tobytes()].append(j)
    for cols in patterns.values():
        sel = pres[:, cols[0]]
        cidx = np.array(cols)
        out[cidx] = fn(bounds[sel], v.values[np.array(rows)[sel]][:, cidx], cidx)
    return out, ok


def _monotonicity_info(
    ev: Evaluator, v: VectorBlock, members: list[tuple[float, int]], arg: ast.Expr
) -> None:
    ev.ctx.info(
        "input to histogram_quantile needed to be fixed for monotonicity (see "
        "https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) "
        f'for metric name "{v.labels[members[0][1]].metric_name}"',
        getattr(arg, "pos", None),
    )


def histogram_quantile(ev: Evaluator, call: ast.Call) -> Value:
    from vigil.promql.functions_table import check_quantile

    q = ev.eval_scalar(call.args[0])
    v = ev.eval_vector(call.args[1])
    check_quantile(ev, q, call.args[0])
    labels, groups = _bucket_groups(ev, v, call.args[1])
    vals = np.zeros((len(labels), ev.n_steps))
    pres = np.zeros((len(labels), ev.n_steps), dtype=bool)
    for g, members in enumerate(groups):
        _FORCED.flag = False
        vals[g], pres[g] = _solve(v, members, lambda b, c, cols: bucket_quantile(q[cols], b, c))
        if _FORCED.flag:
            _monotonicity_info(ev, v, members, call.args[1])
    return VectorBlock(labels, np.ones(len(labels), dtype=bool), vals, pres).compact()


def histogram_fraction(ev: Evaluator, call: ast.Call) -> Value:
    lo = ev.eval_scalar(call.args[0])
    hi = ev.eval_scalar(call.args[1])
    v = ev.eval_vector(call.args[2])
    labels, groups = _bucket_groups(ev, v, call.args[2])
    vals = np.zeros((len(labels), ev.n_steps))
    pres = np.zeros((len(labels), ev.n_steps), dtype=bool)
    for g, members in enumerate(groups):
        vals[g], pres[g] = _solve(
            v, members, lambda b, c, cols: bucket_fraction(lo[cols], hi[cols], b, c)
        )
    return VectorBlock(labels, np.ones(len(labels), dtype=bool), vals, pres).compact()


def _q_label(q: float) -> str:
    """Prometheus's FormatOpenMetricsFloat: shortest form, integers get ".0"."""
    if math.isnan(q):
        return "NaN"
    if math.isinf(q):
        return "+Inf" if q > 0 else "-Inf"
    s = repr(q)
    if "e" not in s and "." not in s:
        s += ".0"
    return s


def histogram_quantiles(ev: Evaluator, call: ast.Call) -> Value:
    v = ev.eval_vector(call.args[0])
    label = ev.eval_string(call.args[1])
    qs = [ev.eval_scalar(a) for a in call.args[2:]]
    from vigil.promql.functions_table import check_quantile

    for qv, arg in zip(qs, call.args[2:], strict=True):
        check_quantile(ev, qv, arg)
    labels, groups = _bucket_groups(ev, v, call.args[0])
    out_labels: list[Labels] = []
    vals, pres = [], []
    for qv in qs:
        for g, members in enumerate(groups):

            def solve(
                b: np.ndarray, c: np.ndarray, cols: np.ndarray, qv: np.ndarray = qv
            ) -> np.ndarray:
                return bucket_quantile(qv[cols], b, c)

            _FORCED.flag = False
            r, ok = _solve(v, members, solve)
            if _FORCED.flag:
                _monotonicity_info(ev, v, members, call.args[0])
            out_labels.append(labels[g].set(label, _q_label(float(qv[0]))))
            vals.append(r)
            pres.append(ok)
    if not out_labels:
        return VectorBlock.empty(ev.n_steps)
    return VectorBlock(
        out_labels, np.ones(len(out_labels), dtype=bool), np.array(vals), np.array(pres)
    ).compact()
