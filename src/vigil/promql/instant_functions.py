"""Functions over instant vectors and scalars: math, clamp, dates, labels, sort.

Each implementation is ``fn(ev, call) -> Value`` and evaluates its own arguments,
because several need the argument's AST (absent, timestamp) or a string literal.
Label sets are static across steps, so label functions work per series, once.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from vigil.model.labels import METRIC_NAME, Labels
from vigil.model.matchers import InvalidRegexError, MatchType, compile_anchored
from vigil.promql.errors import ExecutionError
from vigil.promql.eval_types import ScalarBlock, Value, VectorBlock
from vigil.promql.parser import ast

if TYPE_CHECKING:
    from vigil.promql.evaluator import Evaluator

InstantFn = Callable[["Evaluator", ast.Call], Value]


def _math(fn: Callable[[np.ndarray], np.ndarray]) -> InstantFn:
    def impl(ev: Evaluator, call: ast.Call) -> Value:
        v = ev.eval_vector(call.args[0])
        with np.errstate(all="ignore"):
            out = fn(v.values)
        return VectorBlock(v.labels, np.ones(v.n_series, dtype=bool), out, v.present)

    return impl


def _sgn(x: np.ndarray) -> np.ndarray:
    return np.sign(x)


MATH_FUNCTIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "abs": np.abs,
    "ceil": np.ceil,
    "floor": np.floor,
    "exp": np.exp,
    "sqrt": np.sqrt,
    "ln": np.log,
    "log2": np.log2,
    "log10": np.log10,
    "sin": np.sin,
    "cos": np.cos,
    "tan": np.tan,
    "asin": np.arcsin,
    "acos": np.arccos,
    "atan": np.arctan,
    "sinh": np.sinh,
    "cosh": np.cosh,
    "tanh": np.tanh,
    "asinh": np.arcsinh,
    "acosh": np.arccosh,
    "atanh": np.arctanh,
    "deg": np.degrees,
    "rad": np.radians,
    "sgn": _sgn,
}


def _round(ev: Evaluator, call: ast.Call) -> Value:
    v = ev.eval_vector(call.args[0])
    to = ev.eval_scalar(call.args[1]) if len(call.args) > 1 else np.ones(ev.n_steps)
    with np.errstate(all="ignore"):
        inv = 1.0 / to
        out = np.floor(v.values * inv[None, :] + 0.5) / inv[None, :]
    return VectorBlock(v.labels, np.ones(v.n_series, dtype=bool), out, v.present)


def _clamp(ev: Evaluator, call: ast.Call) -> Value:
    v = ev.eval_vector(call.args[0])
    lo = ev.eval_scalar(call.args[1])
    hi = ev.eval_scalar(call.args[2])
    out = _go_max(lo[None, :], _go_min(hi[None, :], v.values))
    present = v.present & ~(hi < lo)[None, :]
    return VectorBlock(v.labels, np.ones(v.n_series, dtype=bool), out, present).compact()


def _go_max(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum(a, b)  # NaN propagates, as Go's math.Max does


def _go_min(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.minimum(a, b)


def _clamp_min(ev: Evaluator, call: ast.Call) -> Value:
    v = ev.eval_vector(call.args[0])
    lo = ev.eval_scalar(call.args[1])
    return VectorBlock(
        v.labels, np.ones(v.n_series, dtype=bool), _go_max(lo[None, :], v.values), v.present
    )


def _clamp_max(ev: Evaluator, call: ast.Call) -> Value:
    v = ev.eval_vector(call.args[0])
    hi = ev.eval_scalar(call.args[1])
    return VectorBlock(
        v.labels, np.ones(v.n_series, dtype=bool), _go_min(hi[None, :], v.values), v.present
    )


def _time(ev: Evaluator, call: ast.Call) -> Value:
    return ScalarBlock(ev.steps / 1000.0)


def _pi(ev: Evaluator, call: ast.Call) -> Value:
    return ScalarBlock(np.full(ev.n_steps, np.pi))


def _query_param(which: str) -> InstantFn:
    """step(), range(), start(), end(): the query's own parameters, in seconds
    (step and range are 0 for an instant query)."""

    def impl(ev: Evaluator, call: ast.Call) -> Value:
        c = ev.ctx
        value = {
            "step": c.query_step_ms,
            "range": c.query_end - c.query_start,
            "start": c.query_start,
            "end": c.query_end,
        }[which]
        return ScalarBlock(np.full(ev.n_steps, value / 1000.0))

    return impl


def _extreme_of(fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> InstantFn:
    """min_of / max_of over scalars; NaN in any argument gives NaN (Go math.Min/Max)."""

    def impl(ev: Evaluator, call: ast.Call) -> Value:
        vals = [ev.eval_scalar(a) for a in call.args]
        out = vals[0]
        for v in vals[1:]:
            out = fn(out, v)
        return ScalarBlock(out)

    return impl


def _vector(ev: Evaluator, call: ast.Call) -> Value:
    s = ev.eval_scalar(call.args[0])
    return VectorBlock(
        [Labels.EMPTY],
        np.zeros(1, dtype=bool),
        s[None, :].copy(),
        np.ones((1, ev.n_steps), dtype=bool),
    )


def _scalar(ev: Evaluator, call: ast.Call) -> Value:
    v = ev.eval_vector(call.args[0])
    cnt = v.present.sum(axis=0)
    total = np.where(v.present, v.values, 0.0).sum(axis=0) if v.n_series else np.zeros(ev.n_steps)
    return ScalarBlock(np.where(cnt == 1, total, np.nan))


def _timestamp(ev: Evaluator, call: ast.Call) -> Value:
    from vigil.promql.evaluator import unwrap

    arg = unwrap(call.args[0])
    if isinstance(arg, ast.VectorSelector):
        v, stamps = ev.vector_selector(arg)
        return VectorBlock(v.labels, np.ones(v.n_series, dtype=bool), stamps / 1000.0, v.present)
    v = ev.eval_vector(arg)
    out = np.broadcast_to(ev.steps / 1000.0, v.values.shape).copy()
    return VectorBlock(v.labels, np.ones(v.n_series, dtype=bool), out, v.present)


# --- dates ----------------------------------------------------------------------------


def _date_parts(secs: np.ndarray) -> dict[str, np.ndarray]:
    with np.errstate(invalid="ignore"):
        s = np.nan_to_num(np.floor(secs), nan=0.0, posinf=0.0, neginf=0.0).astype(np.int64)
    dt = s.astype("datetime64[s]")
    days = dt.astype("datetime64[D]")
    months = dt.astype("datetime64[M]")
    years = dt.astype("datetime64[Y]")
    month0 = (months - years).astype(np.int64)
    next_month = (months + 1).astype("datetime64[D]")
    sec_of_day = (dt - days).astype(np.int64)
    return {
        "year": years.astype(np.int64) + 1970,
        "month": month0 + 1,
        "day_of_month": (days - months.astype("datetime64[D]")).astype(np.int64) + 1,
        "day_of_year": (days - years.astype("datetime64[D]")).astype(np.int64) + 1,
        # 1970-01-01 was a Thursday (4).
        "day_of_week": (days.astype(np.int64) + 4) % 7,
        "hour": sec_of_day // 3600,
        "minute": (sec_of_day % 3600) // 60,
        "days_in_month": (next_month - months.astype("datetime64[D]")).astype(np.int64),
    }


def _date_fn(part: str) -> InstantFn:
    def impl(ev: Evaluator, call: ast.Call) -> Value:
        if not call.args:
            secs = (ev.steps / 1000.0)[None, :]
            out = _date_parts(secs)[part].astype(np.float64)
            return VectorBlock(
                [Labels.EMPTY], np.zeros(1, dtype=bool), out, np.ones((1, ev.n_steps), dtype=bool)
            )
        v = ev.eval_vector(call.args[0])
        out = _date_parts(v.values)[part].astype(np.float64)
        out = np.where(np.isnan(v.values), np.nan, out)
        return VectorBlock(v.labels, np.ones(v.n_series, dtype=bool), out, v.present)

    return impl


# --- labels -----------------------------------------------------------------------------

_EXPAND_RE = re.compile(r"\$(?:\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+)|(\$))")


def _expand(template: str, match: object) -> str:
    """Go's regexp.Expand: $1, ${1}, $name, ${name}, $$; unknown names expand to ''."""

    def repl(m: re.Match[str]) -> str:
        if m.group(3):
            return "$"
        name = m.group(1) or m.group(2)
        try:
            g = match.group(int(name)) if name.isdigit() else match.group(name)  # type: ignore[attr-defined]
        except (IndexError, KeyError, ValueError, Exception):
            return ""
        return g or ""

    return _EXPAND_RE.sub(repl, template)


def _valid_label_name(name: str) -> bool:
    if not name:
        return False
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\ufffd" not in name


def _relabelled(ev: Evaluator, v: VectorBlock, new_labels: list[Labels], dst: str) -> VectorBlock:
    drop = v.drop_name.copy()
    if dst == METRIC_NAME:
        drop[:] = False
    out = VectorBlock(new_labels, drop, v.values, v.present)
    _check_duplicates(out)
    return out


def _check_duplicates(v: VectorBlock) -> None:
    seen: dict[Labels, int] = {}
    for i, lbls in enumerate(v.labels):
        j = seen.get(lbls)
        if j is None:
            seen[lbls] = i
        elif (v.present[i] & v.present[j]).any():
            raise ExecutionError("vector cannot contain metrics with the same labelset")


def _label_replace(ev: Evaluator, call: ast.Call) -> Value:
    v = ev.eval_vector(call.args[0])
    dst, repl, src, regex = (ev.eval_string(a) for a in call.args[1:5])
    try:
        rx = compile_anchored(regex)
    except InvalidRegexError:
        raise ExecutionError(f"invalid regular expression in label_replace(): {regex}") from None
    if not _valid_label_name(dst):
        raise ExecutionError(f"invalid destination label name in label_replace(): {dst}")
    out = []
    for lbls in v.labels:
        m = rx.match(lbls.get(src))
        if m is None:
            out.append(lbls)
            continue
        out.append(lbls.set(dst, _expand(repl, m)))
    return _relabelled(ev, v, out, dst)


def _label_join(ev: Evaluator, call: ast.Call) -> Value:
    v = ev.eval_vector(call.args[0])
    dst = ev.eval_string(call.args[1])
    sep = ev.eval_string(call.args[2])
    srcs = [ev.eval_string(a) for a in call.args[3:]]
    if not _valid_label_name(dst):
        raise ExecutionError(f"invalid destination label name in label_join(): {dst}")
    for s in srcs:
        if not _valid_label_name(s):
            raise ExecutionError(f"invalid source label name in label_join(): {s}")
    out = [lbls.set(dst, sep.join(lbls.get(s) for s in srcs)) for lbls in v.labels]
    return _relabelled(ev, v, out, dst)


# --- sorting (meaningful for instant queries; range results are sorted by labels) ------


def _sort_values(desc: bool) -> InstantFn:
    def impl(ev: Evaluator, call: ast.Call) -> Value:
        v = ev.eval_vector(call.args[0])
        if ev.n_steps > 1 or ev.ctx.query_start != ev.ctx.query_end:
            ev.ctx.warn(
                "sort is ineffective for range queries since results are always ordered by labels",
                call.pos,
            )
        if ev.n_steps != 1 or v.n_series == 0:
            return v
        col = v.values[:, 0]
        nan = np.isnan(col)
        key = np.where(nan, 0.0, -col if desc else col)
        order = np.lexsort((key, nan))
        return v.select_rows(order)

    return impl


_NAT_RE = re.compile(r"(\d+)")


def _natural_key(s: str) -> tuple:
    parts = _NAT_RE.split(s)
    return tuple((0, int(p), p) if i % 2 else (1, 0, p) for i, p in enumerate(parts))


def _sort_by_label(desc: bool) -> InstantFn:
    def impl(ev: Evaluator, call: ast.Call) -> Value:
        v = ev.eval_vector(call.args[0])
        names = [ev.eval_string(a) for a in call.args[1:]]
        if ev.n_steps > 1 or ev.ctx.query_start != ev.ctx.query_end:
            ev.ctx.warn(
                "sort is ineffective for range queries since results are always ordered by labels",
                call.pos,
            )
        if v.n_series == 0:
            return v

        def key(i: int) -> tuple:
            lbls = v.labels[i]
            return (tuple(_natural_key(lbls.get(n)) for n in names), lbls)

        order = sorted(range(v.n_series), key=key, reverse=desc)
        return v.select_rows(order)

    return impl


# --- absent ------------------------------------------------------------------------------


def absent_labels(node: ast.Expr) -> Labels:
    """Labels `absent()` reports: each label's first equality matcher; a label that
    also has any other matcher is left out (Prometheus's historic behaviour). Only
    a bare selector argument contributes labels."""
    if isinstance(node, ast.MatrixSelector):
        node = node.selector
    if not isinstance(node, ast.VectorSelector):
        return Labels.EMPTY
    out: dict[str, str] = {}
    has: set[str] = set()
    for m in node.matchers:
        if m.name == METRIC_NAME:
            continue
        if m.type is MatchType.EQUAL and m.name not in has:
            out[m.name] = m.value
            has.add(m.name)
        else:
            out.pop(m.name, None)
    return Labels.from_dict(out)


def _absent(ev: Evaluator, call: ast.Call) -> Value:
    v = ev.eval_vector(call.args[0])
    missing = np.asarray(~v.present.any(axis=0)) if v.n_series else np.ones(ev.n_steps, dtype=bool)
    return VectorBlock(
        [absent_labels(call.args[0])],
        np.zeros(1, dtype=bool),
        np.ones((1, ev.n_steps)),
        missing[None, :],
    ).compact()


def _native_only(ev: Evaluator, call: ast.Call) -> Value:
    """Native-histogram functions: float samples carry no histogram, so nothing."""
    for a in call.args:
        ev.eval(a)
    return VectorBlock.empty(ev.n_steps)


INSTANT_FUNCTIONS: dict[str, InstantFn] = {
    **{name: _math(fn) for name, fn in MATH_FUNCTIONS.items()},
    "round": _round,
    "clamp": _clamp,
    "clamp_min": _clamp_min,
    "clamp_max": _clamp_max,
    "time": _time,
    "pi": _pi,
    "vector": _vector,
    "step": _query_param("step"),
    "range": _query_param("range"),
    "start": _query_param("start"),
    "end": _query_param("end"),
    "min_of": _extreme_of(np.minimum),
    "max_of": _extreme_of(np.maximum),
    "scalar": _scalar,
    "timestamp": _timestamp,
    **{
        name: _date_fn(name)
        for name in (
            "year",
            "month",
            "day_of_month",
            "day_of_year",
            "day_of_week",
            "hour",
            "minute",
            "days_in_month",
        )
    },
    "label_replace": _label_replace,
    "label_join": _label_join,
    "sort": _sort_values(False),
    "sort_desc": _sort_values(True),
    "sort_by_label": _sort_by_label(False),
    "sort_by_label_desc": _sort_by_label(True),
    "absent": _absent,
    **{
        name: _native_only
        for name in (
            "histogram_count",
            "histogram_sum",
            "histogram_avg",
            "histogram_stddev",
            "histogram_stdvar",
        )
    },
}
"""Instant-vector and scalar functions, by name."""
