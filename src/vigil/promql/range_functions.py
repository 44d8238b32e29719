"""Functions over range vectors (`rate`, `*_over_time`, ...), vectorised over steps.

Each implementation takes a `MatrixBlock` (all series' samples plus per-step index
windows) and returns ``(values, present)`` arrays of shape [series, steps]. Cheap
reductions use prefix sums over the flat sample arrays; order statistics and
regressions gather the windows into padded 2-D chunks; a few rare functions fall
back to exact per-window loops. Semantics follow Prometheus 3's functions.go
(extrapolation, Kahan-compensated sums, NaN handling).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np

from vigil.promql.errors import ExecutionError
from vigil.promql.eval_types import MatrixBlock, check_deadline

Arr = np.ndarray
RangeResult = tuple[Arr, Arr]

# Gathered chunks are bounded to this many elements so memory stays flat.
_GATHER_ELEMS = 1 << 22
# Prefix sums are exact enough when every value is finite and below this bound.
_PREFIX_SAFE_ABS = 1e12


def _ends(m: MatrixBlock) -> tuple[Arr, Arr, Arr]:
    """Counts, clipped first and last indices of every window."""
    n = m.hi - m.lo
    if len(m.vs) == 0:
        z = np.zeros_like(m.lo)
        return n, z, z
    last = len(m.vs) - 1
    return n, np.clip(m.lo, 0, last), np.clip(m.hi - 1, 0, last)


def _empty_like(m: MatrixBlock) -> RangeResult:
    return np.zeros(m.lo.shape), np.zeros(m.lo.shape, dtype=bool)


def _series_start_mask(m: MatrixBlock) -> Arr:
    """True at the first sample of every series (pairs must not cross series)."""
    mask = np.zeros(len(m.vs), dtype=bool)
    starts = m.offsets[:-1]
    starts = starts[starts < len(m.vs)]
    mask[starts] = True
    return mask


def _pair_prefix(m: MatrixBlock, per_pair: Arr) -> Arr:
    """Prefix sum C with C[i] = sum of per_pair[j] for j <= i, where per_pair[j]
    describes the pair (j-1, j) and is zeroed at series starts."""
    per_pair = per_pair.copy()
    per_pair[_series_start_mask(m)] = 0
    return segmented_cumsum(per_pair, m.offsets)


def segmented_cumsum(x: Arr, offsets: Arr) -> Arr:
    """Inclusive cumulative sum restarting at every series start.

    Summing each series on its own keeps the running totals (and so the
    rounding error) at that series' own magnitude, not at the magnitude of every
    series before it."""
    lens = np.diff(offsets)
    n = len(lens)
    if n == 0 or len(x) == 0:
        return np.cumsum(x)
    nonzero = np.flatnonzero(x)
    if len(nonzero) * 8 < len(x):
        # Sparse input (counter resets): only series holding a non-zero need work.
        out = np.zeros_like(x)
        for i in np.unique(np.searchsorted(offsets, nonzero, side="right") - 1).tolist():
            a, b = int(offsets[i]), int(offsets[i + 1])
            np.cumsum(x[a:b], out=out[a:b])
        return out
    width = int(lens.max())
    if n * width <= 2 * len(x) + 4096:
        mask = np.arange(width)[None, :] < lens[:, None]
        pad = np.zeros((n, width), dtype=x.dtype)
        pad[mask] = x
        return np.cumsum(pad, axis=1)[mask]
    out = np.empty_like(x)
    for i in range(n):
        a, b = int(offsets[i]), int(offsets[i + 1])
        np.cumsum(x[a:b], out=out[a:b])
    return out


def kahan_inc(inc: float, total: float, c: float) -> tuple[float, float]:
    """One step of Neumaier/Kahan summation as Prometheus's kahanSumInc does it."""
    t = total + inc
    if math.isinf(t):
        c = 0.0
    elif abs(total) >= abs(inc):
        c += (total - t) + inc
    else:
        c += (inc - t) + total
    return t, c


# --- rate family ---------------------------------------------------------------


def _reset_corrections(m: MatrixBlock) -> dict[int, Arr]:
    """Per series that has counter resets: prefix sums (over its own samples) of
    the value lost at each reset. Resets are rare, so only those series get an
    array; every other series needs no correction at all."""
    vs = m.vs
    if len(vs) < 2:
        return {}
    drops = np.flatnonzero(vs[1:] < vs[:-1]) + 1
    if len(drops) == 0:
        return {}
    # A drop across a series boundary is not a reset.
    series = np.searchsorted(m.offsets, drops, side="right") - 1
    inside = drops != m.offsets[series]
    drops, series = drops[inside], series[inside]
    out: dict[int, Arr] = {}
    for i in np.unique(series).tolist():
        a, b = int(m.offsets[i]), int(m.offsets[i + 1])
        add = np.zeros(b - a)
        local = drops[series == i] - a
        add[local] = vs[a:b][local - 1]
        out[i] = np.cumsum(add)
    return out


# Rows per chunk: keeps the temporaries of the rate arithmetic in cache.
_ROW_CHUNK = 64


def extrapolated_rate(m: MatrixBlock, is_counter: bool, is_rate: bool) -> RangeResult:
    """rate / increase / delta with Prometheus's boundary extrapolation.

    Works on row chunks with in-place operations: the arithmetic is a few dozen
    passes per element, and chunks keep those passes in cache."""
    shape = m.lo.shape
    if len(m.vs) == 0:
        return _empty_like(m)
    out = np.zeros(shape)
    present = (m.hi - m.lo) >= 2
    corrections = _reset_corrections(m) if is_counter else {}
    reset_rows = np.array(sorted(corrections), dtype=np.int64)
    last = len(m.vs) - 1
    vs = m.vs
    ts_f = m.ts.astype(np.float64)
    r_start = m.range_start.astype(np.float64)[None, :]
    r_end = m.range_end.astype(np.float64)[None, :]
    inv_range = 1000.0 / m.range_ms if is_rate else 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        for a in range(0, shape[0], _ROW_CHUNK):
            check_deadline()
            b = a + _ROW_CHUNK
            ok = present[a:b]
            if not ok.any():
                continue
            lo_c = np.minimum(m.lo[a:b], last)
            hi_c = m.hi[a:b] - 1
            np.maximum(hi_c, 0, out=hi_c)
            first_v = vs[lo_c]
            result = vs[hi_c]
            result -= first_v
            for row in reset_rows[(reset_rows >= a) & (reset_rows < b)].tolist():
                c = corrections[row]
                base = int(m.offsets[row])
                k = row - a
                top = len(c) - 1
                # Windows without samples point outside the series; they are
                # masked out below, the clip only keeps the lookup in bounds.
                hi_l = np.clip(hi_c[k] - base, 0, top)
                lo_l = np.clip(lo_c[k] - base, 0, top)
                result[k] += c[hi_l] - c[lo_l]
            first_t = ts_f[lo_c]
            last_t = ts_f[hi_c]
            sampled = last_t - first_t
            avg = sampled / (m.hi[a:b] - m.lo[a:b] - 1)
            thr = avg * 1.1
            avg *= 0.5  # from here on: half the average interval
            d_start = first_t - r_start
            np.copyto(d_start, avg, where=d_start >= thr)
            if is_counter:
                zero_ok = (result > 0) & (first_v >= 0)
                d_zero = sampled * first_v
                d_zero /= result
                zero_ok &= d_zero < d_start
                np.copyto(d_start, d_zero, where=zero_ok)
            d_end = r_end - last_t
            np.copyto(d_end, avg, where=d_end >= thr)
            d_start += d_end
            d_start += sampled
            d_start /= sampled
            if is_rate:
                d_start *= inv_range
            result *= d_start
            np.copyto(result, 0.0, where=~ok)
            out[a:b] = result
    return out, present


def instant_rate(m: MatrixBlock, is_rate: bool) -> RangeResult:
    """irate / idelta: from the last two samples of each window."""
    n, _lo_c, hi_c = _ends(m)
    ok = n >= 2
    if not ok.any():
        return _empty_like(m)
    prev_i = np.maximum(hi_c - 1, 0)
    v2, v1 = m.vs[hi_c], m.vs[prev_i]
    if is_rate:
        d = np.where(v2 < v1, v2, v2 - v1)
        dt = (m.ts[hi_c] - m.ts[prev_i]).astype(np.float64) / 1000.0
        ok = ok & (dt != 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            d = d / np.where(dt == 0, 1.0, dt)
    else:
        d = v2 - v1
    return np.where(ok, d, 0.0), ok


def _pair_count(m: MatrixBlock, indicator: Arr) -> RangeResult:
    n, lo_c, hi_c = _ends(m)
    ok = n >= 1
    if len(m.vs) == 0:
        return _empty_like(m)
    c = _pair_prefix(m, indicator.astype(np.float64))
    return np.where(ok, c[hi_c] - c[lo_c], 0.0), ok


def resets(m: MatrixBlock) -> RangeResult:
    vs = m.vs
    ind = np.zeros(len(vs), dtype=bool)
    ind[1:] = vs[1:] < vs[:-1]
    return _pair_count(m, ind)


def changes(m: MatrixBlock) -> RangeResult:
    vs = m.vs
    ind = np.zeros(len(vs), dtype=bool)
    a, b = vs[1:], vs[:-1]
    ind[1:] = ~((a == b) | (np.isnan(a) & np.isnan(b)))
    return _pair_count(m, ind)


# --- simple selections -----------------------------------------------------------


def count_over_time(m: MatrixBlock) -> RangeResult:
    n = m.hi - m.lo
    return n.astype(np.float64), n >= 1


def present_over_time(m: MatrixBlock) -> RangeResult:
    ok = (m.hi - m.lo) >= 1
    return np.ones(m.lo.shape), ok


def last_over_time(m: MatrixBlock) -> RangeResult:
    n, _, hi_c = _ends(m)
    return (m.vs[hi_c] if len(m.vs) else np.zeros(m.lo.shape)), n >= 1


def first_over_time(m: MatrixBlock) -> RangeResult:
    n, lo_c, _ = _ends(m)
    return (m.vs[lo_c] if len(m.vs) else np.zeros(m.lo.shape)), n >= 1


def ts_of_last_over_time(m: MatrixBlock) -> RangeResult:
    n, _, hi_c = _ends(m)
    return (m.ts[hi_c] / 1000.0 if len(m.ts) else np.zeros(m.lo.shape)), n >= 1


def ts_of_first_over_time(m: MatrixBlock) -> RangeResult:
    n, lo_c, _ = _ends(m)
    return (m.ts[lo_c] / 1000.0 if len(m.ts) else np.zeros(m.lo.shape)), n >= 1


# --- sums ------------------------------------------------------------------------


def _series_safe_for_prefix(m: MatrixBlock) -> Arr:
    """Per series: True when prefix sums give results as exact as Kahan would."""
    out = np.ones(m.n_series, dtype=bool)
    if len(m.vs) == 0:
        return out
    bad = ~np.isfinite(m.vs) | (np.abs(m.vs) > _PREFIX_SAFE_ABS)
    if not bad.any():
        return out
    cb = np.concatenate(([0], np.cumsum(bad)))
    return (cb[m.offsets[1:]] - cb[m.offsets[:-1]]) == 0


def _kahan_sum(vals: Arr) -> float:
    s, c = 0.0, 0.0
    for x in vals.tolist():
        s, c = kahan_inc(x, s, c)
    return s + c


def _kahan_avg(vals: Arr) -> float:
    return kahan_mean(vals.tolist())


def kahan_mean(xs: list[float]) -> float:
    """Mean as Prometheus 3 computes it: a compensated sum, switching to an
    incremental mean only when the sum would overflow to ±Inf."""
    total, mean, c = 0.0, 0.0, 0.0
    incremental = False
    for i, x in enumerate(xs):
        count = float(i + 1)
        if not incremental:
            ns, nc = kahan_inc(x, total, c)
            if count == 1 or not math.isinf(ns):
                total, c = ns, nc
                continue
            incremental = True
            mean = total / (count - 1)
            c = c / (count - 1)
        q = (count - 1) / count
        mean, c = kahan_inc(x / count, q * mean, q * c)
    if incremental:
        return mean + c
    return total / len(xs) + c / len(xs)


# Up to this many steps, window sums add up each window's own samples instead of
# building prefix sums over every selected sample.
_FEW_STEPS = 4


def _window_sums(m: MatrixBlock) -> Arr:
    """Plain sum of the finite samples of every window, step by step: only the
    samples inside the windows are read (and the sums carry no rounding error
    from a running total over earlier samples). Empty windows read 0."""
    vs = np.where(np.isfinite(m.vs), m.vs, 0.0)
    out = np.zeros(m.lo.shape)
    for j in range(m.lo.shape[1]):
        lo, hi = m.lo[:, j], m.hi[:, j]
        rows = np.flatnonzero(hi > lo)
        if len(rows) == 0:
            continue
        lo_r, hi_r = lo[rows], hi[rows]
        # Windows of one step never overlap and ascend with the series, so
        # reduceat over the interleaved bounds sums exactly [lo, hi) at the even
        # positions. A window ending at the last sample needs one slot past it.
        bounds = np.empty(2 * len(rows), dtype=np.int64)
        bounds[0::2] = lo_r
        bounds[1::2] = hi_r
        if hi_r[-1] >= len(vs):
            src = np.append(vs, 0.0)
        else:
            src = vs
        out[rows, j] = np.add.reduceat(src, bounds)[0::2]
    return out


def _prefix_or_exact(m: MatrixBlock, exact: Callable[[Arr], float], avg: bool) -> RangeResult:
    n, _lo_c, _hi_c = _ends(m)
    ok = n >= 1
    if len(m.vs) == 0:
        return _empty_like(m)
    last = len(m.vs) - 1
    # Huge values may overflow the running totals; those series are recomputed
    # exactly below, so the overflow is expected here.
    with np.errstate(over="ignore", invalid="ignore"):
        if m.lo.shape[1] <= _FEW_STEPS:
            out = _window_sums(m)
        else:
            c = segmented_cumsum(np.where(np.isfinite(m.vs), m.vs, 0.0), m.offsets)
            # Window sum = running total at its last sample minus the running total
            # just before it (zero when the window starts at its series' first sample).
            before = np.where(m.lo > m.offsets[:-1][:, None], c[np.clip(m.lo - 1, 0, last)], 0.0)
            out = c[np.clip(m.hi - 1, 0, last)] - before
    if avg:
        with np.errstate(divide="ignore", invalid="ignore"):
            out = out / np.maximum(n, 1)
    safe = _series_safe_for_prefix(m)
    for i in np.flatnonzero(~safe).tolist():
        check_deadline()
        for j in np.flatnonzero(ok[i]).tolist():
            out[i, j] = exact(m.vs[m.lo[i, j] : m.hi[i, j]])
    return np.where(ok, out, 0.0), ok


def sum_over_time(m: MatrixBlock) -> RangeResult:
    return _prefix_or_exact(m, _kahan_sum, avg=False)


def avg_over_time(m: MatrixBlock) -> RangeResult:
    return _prefix_or_exact(m, _kahan_avg, avg=True)


# --- min / max via a sparse table ------------------------------------------------


def _range_extreme(m: MatrixBlock, op: Callable[[Arr, Arr], Arr]) -> RangeResult:
    n = m.hi - m.lo
    ok = n >= 1
    if len(m.vs) == 0 or not ok.any():
        return _empty_like(m)
    levels = [m.vs]
    width = 1
    max_n = int(n.max())
    while width * 2 <= max_n:
        prev = levels[-1]
        levels.append(op(prev[:-width], prev[width:]))
        width *= 2
    nn = np.maximum(n, 1)
    k = np.floor(np.log2(nn)).astype(np.int64)
    out = np.zeros(m.lo.shape)
    for lvl in np.unique(k[ok]).tolist():
        sel = ok & (k == lvl)
        tab = levels[lvl]
        a = m.lo[sel]
        b = m.hi[sel] - (1 << lvl)
        out[sel] = op(tab[a], tab[b])
    return out, ok


def max_over_time(m: MatrixBlock) -> RangeResult:
    return _range_extreme(m, np.fmax)


def min_over_time(m: MatrixBlock) -> RangeResult:
    return _range_extreme(m, np.fmin)


def _ts_of_extreme(m: MatrixBlock, want_max: bool) -> RangeResult:
    """Timestamp of the (last-occurring, as Prometheus) min or max sample."""
    n = m.hi - m.lo
    ok = n >= 1
    out = np.zeros(m.lo.shape)
    for i, j in zip(*np.nonzero(ok), strict=True):
        check_deadline()
        vals = m.vs[m.lo[i, j] : m.hi[i, j]]
        best, best_k = vals[0], 0
        for k in range(1, len(vals)):
            x = vals[k]
            if (want_max and (x >= best or math.isnan(best))) or (
                not want_max and (x <= best or math.isnan(best))
            ):
                best, best_k = x, k
        out[i, j] = m.ts[m.lo[i, j] + best_k] / 1000.0
    return out, ok


def ts_of_max_over_time(m: MatrixBlock) -> RangeResult:
    return _ts_of_extreme(m, True)


def ts_of_min_over_time(m: MatrixBlock) -> RangeResult:
    return _ts_of_extreme(m, False)


# --- gathered windows ------------------------------------------------------------


def gather_windows(
    m: MatrixBlock, ok: Arr, with_times: bool = True
) -> Iterator[tuple[tuple[Arr, Arr], Arr, Arr, Arr]]:
    """Yield (row/col index of windows, values [k, W], times [k, W], mask [k, W])
    for the windows selected by `ok`, in chunks of bounded size. Padding holds NaN
    values and is False in the mask. Without `with_times` the third item is the
    gather index array instead of timestamps (saves a gather)."""
    rows, cols = np.nonzero(ok)
    if len(rows) == 0:
        return
    lo = m.lo[rows, cols]
    n = m.hi[rows, cols] - lo
    width = int(n.max())
    chunk = max(1, _GATHER_ELEMS // max(width, 1))
    ar = np.arange(width)
    last = len(m.vs) - 1
    for a in range(0, len(rows), chunk):
        check_deadline()
        b = a + chunk
        idx = lo[a:b, None] + ar[None, :]
        mask = ar[None, :] < n[a:b, None]
        idx = np.minimum(idx, last)
        vals = np.where(mask, m.vs[idx], np.nan)
        times = m.ts[idx] if with_times else idx
        yield (rows[a:b], cols[a:b]), vals, times, mask


def _sorted_go_order(vals: Arr, mask: Arr) -> tuple[Arr, Arr]:
    """Rows sorted as Go's sort.Float64s would (NaN first), padding at the end.
    Returns (sorted values, count of real values per row)."""
    cnt = mask.sum(axis=1)
    nan_cnt = (np.isnan(vals) & mask).sum(axis=1)
    padded = np.where(mask, vals, np.inf)
    # np.sort puts NaN last; real +Inf and padding compare equal, which is harmless.
    s = np.sort(padded, axis=1)
    if not nan_cnt.any():
        return s, cnt
    width = vals.shape[1]
    pos = np.arange(width)[None, :]
    src = np.clip(pos - nan_cnt[:, None], 0, width - 1)
    out = np.take_along_axis(s, src, axis=1)
    out = np.where(pos < nan_cnt[:, None], np.nan, out)
    return out, cnt


def quantile_sorted(q: Arr, s: Arr, cnt: Arr) -> Arr:
    """Prometheus's quantile over each row's first cnt sorted values; q per row."""
    n = cnt.astype(np.float64)
    rank = q * (n - 1)
    lower = np.maximum(0, np.floor(np.nan_to_num(rank))).astype(np.int64)
    lower = np.minimum(lower, np.maximum(cnt - 1, 0))
    upper = np.minimum(cnt - 1, lower + 1)
    upper = np.maximum(upper, 0)
    weight = rank - np.floor(rank)
    lv = np.take_along_axis(s, lower[:, None], axis=1)[:, 0]
    uv = np.take_along_axis(s, upper[:, None], axis=1)[:, 0]
    with np.errstate(invalid="ignore"):
        out = lv * (1 - weight) + uv * weight
    out = np.where(q < 0, -np.inf, out)
    out = np.where(q > 1, np.inf, out)
    return np.where(np.isnan(q), np.nan, out)


def quantile_over_time(m: MatrixBlock, q_steps: Arr) -> RangeResult:
    ok = (m.hi - m.lo) >= 1
    out = np.zeros(m.lo.shape)
    for (r, c), vals, _t, mask in gather_windows(m, ok, with_times=False):
        s, cnt = _sorted_go_order(vals, mask)
        out[r, c] = quantile_sorted(q_steps[c], s, cnt)
    return out, ok


def mad_over_time(m: MatrixBlock) -> RangeResult:
    ok = (m.hi - m.lo) >= 1
    out = np.zeros(m.lo.shape)
    for (r, c), vals, _t, mask in gather_windows(m, ok, with_times=False):
        half = np.full(len(r), 0.5)
        s, cnt = _sorted_go_order(vals, mask)
        med = quantile_sorted(half, s, cnt)
        dev = np.abs(vals - med[:, None])
        s2, _ = _sorted_go_order(dev, mask)
        has_nan = (np.isnan(vals) & mask).any(axis=1)
        out[r, c] = np.where(has_nan, np.nan, quantile_sorted(half, s2, cnt))
    return out, ok


def kahan_inc_arrays(inc: Arr, total: Arr, c: Arr) -> tuple[Arr, Arr]:
    """`kahan_inc` element-wise over arrays."""
    t = total + inc
    big = np.abs(total) >= np.abs(inc)
    c = np.where(np.isinf(t), 0.0, c + np.where(big, (total - t) + inc, (inc - t) + total))
    return t, c


def _variance(m: MatrixBlock) -> RangeResult:
    """Welford's online variance with Kahan-compensated updates, as Prometheus's
    stdvar_over_time computes it (so constant windows give exactly 0). Runs one
    update per window position, vectorised across all windows."""
    ok = (m.hi - m.lo) >= 1
    out = np.zeros(m.lo.shape)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        for (r, c), vals, _t, mask in gather_windows(m, ok, with_times=False):
            k = len(r)
            count = np.zeros(k)
            mean, c_mean = np.zeros(k), np.zeros(k)
            aux, c_aux = np.zeros(k), np.zeros(k)
            for j in range(vals.shape[1]):
                live = mask[:, j]
                x = vals[:, j]
                count = count + live
                delta = x - (mean + c_mean)
                nm, ncm = kahan_inc_arrays(delta / np.maximum(count, 1), mean, c_mean)
                mean = np.where(live, nm, mean)
                c_mean = np.where(live, ncm, c_mean)
                na, nca = kahan_inc_arrays(delta * (x - (mean + c_mean)), aux, c_aux)
                aux = np.where(live, na, aux)
                c_aux = np.where(live, nca, c_aux)
            out[r, c] = (aux + c_aux) / count
    return out, ok


def stdvar_over_time(m: MatrixBlock) -> RangeResult:
    return _variance(m)


def stddev_over_time(m: MatrixBlock) -> RangeResult:
    v, ok = _variance(m)
    return np.sqrt(v), ok


def _regression(m: MatrixBlock, intercept_at: Arr | None) -> tuple[Arr, Arr, Arr]:
    """Least-squares slope and intercept per window; intercept time is the
    window's first sample (deriv) or the given per-step time (predict_linear)."""
    ok = (m.hi - m.lo) >= 2
    slope = np.zeros(m.lo.shape)
    icpt = np.zeros(m.lo.shape)
    for (r, c), vals, times, mask in gather_windows(m, ok):
        t0 = times[:, :1] if intercept_at is None else intercept_at[c][:, None]
        x = np.where(mask, (times - t0) / 1000.0, 0.0)
        y = np.where(mask, vals, 0.0)
        n = mask.sum(axis=1).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            sx, sy = x.sum(axis=1), y.sum(axis=1)
            sxy, sx2 = (x * y).sum(axis=1), (x * x).sum(axis=1)
            cov = sxy - sx * sy / n
            varx = sx2 - sx * sx / n
            sl = cov / varx
            ic = sy / n - sl * sx / n
        first = vals[:, :1]
        const = (np.where(mask, vals == first, True)).all(axis=1)
        sl = np.where(const, np.where(np.isinf(first[:, 0]), np.nan, 0.0), sl)
        ic = np.where(const, np.where(np.isinf(first[:, 0]), np.nan, first[:, 0]), ic)
        slope[r, c] = sl
        icpt[r, c] = ic
    return slope, icpt, ok


def deriv(m: MatrixBlock) -> RangeResult:
    slope, _, ok = _regression(m, None)
    return slope, ok


def predict_linear(m: MatrixBlock, duration_s: Arr, eval_ts: Arr) -> RangeResult:
    slope, icpt, ok = _regression(m, eval_ts)
    return slope * duration_s[None, :] + icpt, ok


def double_exponential_smoothing(m: MatrixBlock, sf: Arr, tf: Arr) -> RangeResult:
    ok = (m.hi - m.lo) >= 2
    out = np.zeros(m.lo.shape)
    for j in range(m.lo.shape[1]):
        s, t = float(sf[j]), float(tf[j])
        if not ok[:, j].any():
            continue
        if not (0 < s < 1):
            raise ExecutionError(f"invalid smoothing factor. Expected: 0 < sf < 1, got: {s:f}")
        if not (0 < t < 1):
            raise ExecutionError(f"invalid trend factor. Expected: 0 < tf < 1, got: {t:f}")
        check_deadline()
        for i in np.flatnonzero(ok[:, j]).tolist():
            v = m.vs[m.lo[i, j] : m.hi[i, j]].tolist()
            s0, s1, b = 0.0, v[0], v[1] - v[0]
            for k in range(1, len(v)):
                x = s * v[k]
                if k > 1:
                    b = t * (s1 - s0) + (1 - t) * b
                y = (1 - s) * (s1 + b)
                s0, s1 = s1, x + y
            out[i, j] = s1
    return out, ok


SIMPLE_RANGE_FUNCTIONS: dict[str, Callable[[MatrixBlock], RangeResult]] = {
    "rate": lambda m: extrapolated_rate(m, True, True),
    "increase": lambda m: extrapolated_rate(m, True, False),
    "delta": lambda m: extrapolated_rate(m, False, False),
    "irate": lambda m: instant_rate(m, True),
    "idelta": lambda m: instant_rate(m, False),
    "resets": resets,
    "changes": changes,
    "count_over_time": count_over_time,
    "present_over_time": present_over_time,
    "last_over_time": last_over_time,
    "first_over_time": first_over_time,
    "ts_of_last_over_time": ts_of_last_over_time,
    "ts_of_first_over_time": ts_of_first_over_time,
    "ts_of_max_over_time": ts_of_max_over_time,
    "ts_of_min_over_time": ts_of_min_over_time,
    "sum_over_time": sum_over_time,
    "avg_over_time": avg_over_time,
    "max_over_time": max_over_time,
    "min_over_time": min_over_time,
    "stddev_over_time": stddev_over_time,
    "stdvar_over_time": stdvar_over_time,
    "mad_over_time": mad_over_time,
    "deriv": deriv,
}
"""Range functions whose only argument is the range vector."""

KEEP_NAME_RANGE_FUNCTIONS = frozenset({"last_over_time", "first_over_time"})
"""Range functions that keep `__name__` (every other one drops it)."""
