"""Aggregation operators (`sum by (job) (...)`, `topk`, `quantile`, ...).

Series are grouped by their label signature once per query; reductions then run
over [series, steps] arrays with grouped numpy reductions (`reduceat` over rows
sorted by group). Selection aggregations (topk, bottomk, limitk, limit_ratio)
return input series with a per-step presence mask.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from vigil.model.labels import LABEL_NAME_RE, METRIC_NAME, Labels
from vigil.promql.errors import ExecutionError
from vigil.promql.eval_types import VectorBlock, check_deadline
from vigil.promql.parser import ast
from vigil.promql.range_functions import kahan_mean, quantile_sorted
from vigil.promql.xxhash64 import labels_hash

if TYPE_CHECKING:
    from vigil.promql.evaluator import Evaluator

# Sums of values this large lose precision without compensation; above it the
# grouped sum switches to a Kahan loop over rows.
_PLAIN_SUM_ABS = 1e15
_ROW_CHUNK = 128


GroupKey = tuple[tuple[str, str], ...]


def group_key_fn(grouping: tuple[str, ...], without: bool) -> Callable[[Labels], GroupKey]:
    """The grouping labels of a series as a plain tuple (sorted pairs, as in
    `Labels`): about half the cost of making a `Labels` per row, so callers turn
    only the distinct keys into `Labels`."""
    names = frozenset(grouping)
    if without:
        drop = names | {METRIC_NAME}
        return lambda lbls: tuple([p for p in lbls if p[0] not in drop])
    return lambda lbls: tuple([p for p in lbls if p[0] in names])


def _groups(block: VectorBlock, node: ast.AggregateExpr) -> tuple[list[Labels], np.ndarray]:
    """Output label sets in first-seen order and the group index of every row."""
    key = group_key_fn(node.grouping, node.without)
    index: dict[GroupKey, int] = {}
    gidx = np.empty(block.n_series, dtype=np.int64)
    setdefault = index.setdefault
    for i, lbls in enumerate(block.labels):
        gidx[i] = setdefault(key(lbls), len(index))
    return [Labels(k) for k in index], gidx


def aggregate(ev: Evaluator, node: ast.AggregateExpr) -> VectorBlock:
    op = node.op
    param: np.ndarray | str | None = None
    if node.param is not None:
        param = ev.eval_string(node.param) if op == "count_values" else ev.eval_scalar(node.param)
    block = ev.eval_vector(node.expr)
    n_steps = ev.n_steps
    if op in ("topk", "bottomk", "limitk", "limit_ratio"):
        assert isinstance(param, np.ndarray)
        if op == "limit_ratio" and node.param is not None:
            for r in np.unique(param[(param < -1) | (param > 1)]).tolist():
                cap = 1 if r > 1 else -1
                ev.ctx.warn(
                    f"ratio value should be between -1 and 1, got {format_float(r)}, capping to {cap}",
                    getattr(node.param, "pos", None),
                )
        return _select(op, block, node, param)
    if op == "count_values":
        assert isinstance(param, str)
        return _count_values(block, node, param)
    if block.n_series == 0:
        return VectorBlock.empty(n_steps)
    out_labels, gidx = _groups(block, node)
    ng = len(out_labels)
    drop = np.zeros(ng, dtype=bool)
    np.logical_or.at(drop, gidx, block.drop_name)
    if op in ("sum", "avg", "count", "group"):
        fast = _chunked_reduce(op, block, gidx, ng)
        if fast is not None:
            out, present = fast
            return VectorBlock(out_labels, drop, out, present).compact()
    order = np.argsort(gidx, kind="stable")
    sg = gidx[order]
    starts = np.flatnonzero(np.r_[True, sg[1:] != sg[:-1]])
    vals = block.values[order]
    pres = block.present[order]
    count = np.add.reduceat(pres.astype(np.float64), starts, axis=0)
    present = count > 0
    with np.errstate(all="ignore"):
        if op == "sum":
            out = _grouped_sum(vals, pres, starts)
        elif op == "avg":
            out = _grouped_avg(vals, pres, starts, count)
        elif op == "count":
            out = count
        elif op == "group":
            out = np.ones_like(count)
        elif op in ("max", "min"):
            fill = np.where(pres, vals, np.nan)
            fn = np.fmax if op == "max" else np.fmin
            out = fn.reduceat(fill, starts, axis=0)
        elif op in ("stddev", "stdvar"):
            out = _grouped_var(vals, pres, starts, count)
            if op == "stddev":
                out = np.sqrt(out)
        elif op == "quantile":
            assert isinstance(param, np.ndarray) and node.param is not None
            from vigil.promql.functions_table import check_quantile

            check_quantile(ev, param, node.param)
            out = _grouped_quantile(vals, pres, starts, param)
        else:
            raise ExecutionError(f"unknown aggregation operator {op!r}")
    return VectorBlock(out_labels, drop, np.where(present, out, 0.0), present).compact()


def _chunked_reduce(
    op: str, block: VectorBlock, gidx: np.ndarray, ng: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """sum/avg/count/group over rows taken in group order, a chunk at a time.

    Each chunk is reduced with `reduceat` and its partial sums added to the
    groups, so temporaries stay small and in cache. Plain summation is exact
    enough only when every value is finite and moderate (huge values need the
    compensated path); returns None otherwise."""
    n, steps = block.values.shape
    count = np.zeros((ng, steps))
    total = np.zeros((ng, steps))
    want_sum = op in ("sum", "avg")
    order = np.argsort(gidx, kind="stable")
    sorted_g = gidx[order]
    for a in range(0, n, _ROW_CHUNK):
        check_deadline()
        rows = order[a : a + _ROW_CHUNK]
        g = sorted_g[a : a + _ROW_CHUNK]
        starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
        groups = g[starts]
        p = block.present[rows]
        count[groups] += np.add.reduceat(p, starts, axis=0, dtype=np.float64)
        if want_sum:
            x = np.where(p, block.values[rows], 0.0)
            if not np.isfinite(x).all() or float(np.abs(x).max(initial=0.0)) >= _PLAIN_SUM_ABS:
                return None
            total[groups] += np.add.reduceat(x, starts, axis=0)
    present = count > 0
    if op == "count":
        return count, present
    if op == "group":
        return present.astype(np.float64), present
    if op == "avg":
        with np.errstate(all="ignore"):
            total = np.where(present, total / np.maximum(count, 1), 0.0)
    return total, present


def _grouped_sum(vals: np.ndarray, pres: np.ndarray, starts: np.ndarray) -> np.ndarray:
    x = np.where(pres, vals, 0.0)
    finite = np.isfinite(x)
    if finite.all() and (np.abs(x) < _PLAIN_SUM_ABS).all():
        return np.add.reduceat(x, starts, axis=0)
    return _kahan_grouped(x, starts)


def _kahan_grouped(x: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Neumaier-compensated grouped sum, vectorised across steps."""
    bounds = [*list(starts.tolist()), x.shape[0]]
    out = np.zeros((len(starts), x.shape[1]))
    for g in range(len(starts)):
        s = np.zeros(x.shape[1])
        c = np.zeros(x.shape[1])
        for r in range(bounds[g], bounds[g + 1]):
            v = x[r]
            t = s + v
            big = np.abs(s) >= np.abs(v)
            c = np.where(np.isinf(t), 0.0, c + np.where(big, (s - t) + v, (v - t) + s))
            s = t
        out[g] = np.where(np.isinf(s), s, s + c)
    return out


def _grouped_avg(
    vals: np.ndarray, pres: np.ndarray, starts: np.ndarray, count: np.ndarray
) -> np.ndarray:
    total = _grouped_sum(vals, pres, starts)
    out = total / count
    # A sum that overflowed while its inputs are finite: recompute as Prometheus
    # does, with an incremental mean that cannot overflow.
    overflow = np.isinf(total)
    if overflow.any():
        bounds = [*list(starts.tolist()), vals.shape[0]]
        for g, j in zip(*np.nonzero(overflow), strict=True):
            col = vals[bounds[g] : bounds[g + 1], j][pres[bounds[g] : bounds[g + 1], j]]
            if np.isfinite(col).all():
                out[g, j] = kahan_mean(col.tolist())
    return out


def _grouped_var(
    vals: np.ndarray, pres: np.ndarray, starts: np.ndarray, count: np.ndarray
) -> np.ndarray:
    """Welford's online variance per group, in input order, as Prometheus does it
    (so identical values give exactly 0). Rows are sorted by group; update k
    handles the k-th member of every group at once."""
    ng, steps = len(starts), vals.shape[1]
    sizes = np.diff(np.r_[starts, vals.shape[0]])
    n = np.zeros((ng, steps))
    mean = np.zeros((ng, steps))
    acc = np.zeros((ng, steps))
    for k in range(int(sizes.max())):
        groups = np.flatnonzero(sizes > k)
        rows = starts[groups] + k
        live = pres[rows]
        x = vals[rows]
        n_g = n[groups] + live
        delta = x - mean[groups]
        new_mean = mean[groups] + delta / np.maximum(n_g, 1)
        new_acc = acc[groups] + delta * (x - new_mean)
        n[groups] = n_g
        mean[groups] = np.where(live, new_mean, mean[groups])
        acc[groups] = np.where(live, new_acc, acc[groups])
    return acc / count


def _grouped_quantile(
    vals: np.ndarray, pres: np.ndarray, starts: np.ndarray, q: np.ndarray
) -> np.ndarray:
    bounds = [*list(starts.tolist()), vals.shape[0]]
    out = np.zeros((len(starts), vals.shape[1]))
    for g in range(len(starts)):
        v = vals[bounds[g] : bounds[g + 1]].T  # [steps, rows]
        m = pres[bounds[g] : bounds[g + 1]].T
        cnt = m.sum(axis=1)
        nan_cnt = (np.isnan(v) & m).sum(axis=1)
        s = np.sort(np.where(m, v, np.inf), axis=1)
        pos = np.arange(v.shape[1])[None, :]
        src = np.clip(pos - nan_cnt[:, None], 0, v.shape[1] - 1)
        s = np.where(pos < nan_cnt[:, None], np.nan, np.take_along_axis(s, src, axis=1))
        out[g] = quantile_sorted(q, s, cnt)
    return out


def _param_k(param: np.ndarray, op: str) -> np.ndarray:
    if np.isnan(param).any():
        if op == "limit_ratio":
            raise ExecutionError("Ratio value is NaN")
        raise ExecutionError("Parameter value is NaN")
    if op == "limit_ratio":
        return param
    if (param > 2.0**63).any():
        raise ExecutionError(f"Scalar value {param.max()} overflows int64")
    return np.floor(param)


def _select(op: str, block: VectorBlock, node: ast.AggregateExpr, param: np.ndarray) -> VectorBlock:
    k = _param_k(param, op)
    if op == "limit_ratio":
        ratio = np.clip(k, -1.0, 1.0)
        offs = np.array([labels_hash(lbls) / float(2**64 - 1) for lbls in block.labels])
        keep = np.where(
            ratio[None, :] >= 0,
            offs[:, None] < ratio[None, :],
            offs[:, None] >= 1.0 + ratio[None, :],
        )
        return VectorBlock(
            block.labels, block.drop_name, block.values, block.present & keep
        ).compact()
    if block.n_series == 0:
        return block
    _labels, gidx = _groups(block, node)
    keep = np.zeros_like(block.present)
    rank_out = np.zeros(block.present.shape, dtype=np.int64)
    for g in np.unique(gidx).tolist():
        rows = np.flatnonzero(gidx == g)
        v = block.values[rows]
        p = block.present[rows]
        if op == "limitk":
            rank = np.cumsum(p, axis=0) - 1
        else:
            nan = np.isnan(v)
            cat = np.where(p, np.where(nan, 1, 0), 2)
            sortv = np.where(nan | ~p, 0.0, -v if op == "topk" else v)
            order = np.lexsort(
                (np.broadcast_to(np.arange(len(rows))[:, None], v.shape), sortv, cat), axis=0
            )
            rank = np.empty_like(order)
            np.put_along_axis(
                rank, order, np.arange(len(rows))[:, None].repeat(v.shape[1], axis=1), axis=0
            )
        keep[rows] = p & (rank < k[None, :])
        rank_out[rows] = rank
    out = VectorBlock(block.labels, block.drop_name, block.values, keep)
    if keep.shape[1] == 1:
        # Instant queries list each group's selection best first, as Prometheus does.
        chosen = np.flatnonzero(keep[:, 0]).tolist()
        first_seen = {g: i for i, g in reversed(list(enumerate(gidx.tolist())))}
        chosen.sort(key=lambda r: (first_seen[int(gidx[r])], rank_out[r, 0]))
        return out.select_rows(chosen)
    return out.compact()


def go_quote(s: str) -> str:
    """Go's %q for a string that may carry undecodable bytes as surrogate escapes."""
    out = []
    for ch in s:
        o = ord(ch)
        if 0xDC80 <= o <= 0xDCFF:
            out.append(f"\\x{o - 0xDC00:02x}")
        elif ch in '"\\':
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return '"' + "".join(out) + '"'


def format_float(v: float) -> str:
    """Go's strconv.FormatFloat(v, 'f', -1, 64)."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return np.format_float_positional(v, trim="-")


def _count_values(block: VectorBlock, node: ast.AggregateExpr, label: str) -> VectorBlock:
    if not LABEL_NAME_RE.match(label) and (
        not label or not label.isprintable() or "\ufffd" in label
    ):
        raise ExecutionError(f"invalid label name {go_quote(label)}")
    n_steps = block.values.shape[1]
    key = group_key_fn(node.grouping, node.without)
    counts: dict[Labels, np.ndarray] = {}
    for i, lbls in enumerate(block.labels):
        if i % 256 == 0:
            check_deadline()
        base = Labels(key(lbls))
        for j in np.flatnonzero(block.present[i]).tolist():
            out = base.set(label, format_float(float(block.values[i, j])))
            arr = counts.get(out)
            if arr is None:
                arr = counts[out] = np.zeros(n_steps)
            arr[j] += 1
    if not counts:
        return VectorBlock.empty(n_steps)
    labels = list(counts)
    vals = np.array([counts[x] for x in labels])
    return VectorBlock(labels, np.zeros(len(labels), dtype=bool), vals, vals > 0)
