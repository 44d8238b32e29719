"""Range-vector functions: rate family, *_over_time, regression, smoothing."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vigil.model.labels import Labels
from vigil.model.matchers import Matcher, MatchType
from vigil.promql import errors, range_functions
from vigil.promql.engine import Engine
from vigil.promql.parser import ast
from vigil.storage.memory import MemoryStorage

MIN = 60_000


def _store(series: dict[str, list[float | None]], interval: int) -> MemoryStorage:
    s = MemoryStorage()
    app = s.appender()
    for name, vals in series.items():
        lbls = Labels.from_dict({"__name__": name})
        for i, v in enumerate(vals):
            if v is not None:
                app.append(lbls, i * interval, v)
    app.commit()
    return s


def _call(
    func: str, name: str, range_ms: int, *extra: float, first: float | None = None
) -> ast.Call:
    m = ast.MatrixSelector(
        ast.VectorSelector(name, (Matcher(MatchType.EQUAL, "__name__", name),)), range_ms
    )
    args: list[ast.Expr] = []
    if first is not None:
        args.append(ast.NumberLiteral(first))
    args.append(m)
    args += [ast.NumberLiteral(x) for x in extra]
    return ast.Call(func, tuple(args))


def _one(e: Engine, expr: ast.Expr, t: int) -> float | None:
    res = e.instant_query(expr, t)
    assert res.result_type == "vector"
    if not res.value:
        return None
    assert len(res.value) == 1
    return res.value[0].v


@pytest.fixture
def eng() -> Engine:
    return Engine(
        _store(
            {
                "counter": [1, 2, 3, 0, 1, 0, 0, 1, 2, 0, 1],
                "gauge": [1, 4, 2, 8, 5, 7, 1, 1, 3, 9, 2],
                "nanny": [1, math.nan, 3],
                "infy": [1, math.inf, 3],
                "single": [5],
                "linear": [float(i * 2) for i in range(11)],
            },
            5 * MIN,
        )
    )


def test_resets_and_changes(eng: Engine) -> None:
    assert _one(eng, _call("resets", "counter", 50 * MIN), 50 * MIN) == 3
    assert _one(eng, _call("resets", "counter", 20 * MIN), 50 * MIN) == 1
    assert _one(eng, _call("changes", "counter", 50 * MIN), 50 * MIN) == 8
    assert _one(eng, _call("changes", "nanny", 20 * MIN), 10 * MIN) == 2
    assert _one(eng, _call("changes", "single", 5 * MIN), 0) == 0


def test_rate_increase_delta_extrapolation(eng: Engine) -> None:
    # linear: 0, 2, 4, ... every 5m. Window (20m, 50m] holds 25m..50m: 6 samples.
    inc = _one(eng, _call("increase", "linear", 30 * MIN), 50 * MIN)
    assert inc == pytest.approx(12.0)
    assert _one(eng, _call("rate", "linear", 30 * MIN), 50 * MIN) == pytest.approx(12.0 / 1800)
    assert _one(eng, _call("delta", "gauge", 50 * MIN), 50 * MIN) == pytest.approx(
        (2 - 4) * 50 / 45
    )
    # counter resets are added back: 1,2,3,0,1,0,0,1,2,0,1 over the whole range
    assert _one(eng, _call("increase", "counter", 51 * MIN), 50 * MIN) == pytest.approx(
        6 * 3060 / 3000
    )
    # single sample: no result
    assert _one(eng, _call("rate", "single", 5 * MIN), 0) is None


def test_rate_zero_point_clamp() -> None:
    e = Engine(_store({"c": [None, 1.0, 11.0, 21.0]}, MIN))
    # Samples at 1m, 2m, 3m; window (0, 3m]. Extrapolating 60 s to the start would
    # go below zero, so it stops at the zero point: 120 s * 1/20 = 6 s.
    got = _one(e, _call("increase", "c", 3 * MIN), 3 * MIN)
    assert got == pytest.approx(20 * (120 + 6) / 120)


def test_irate_idelta(eng: Engine) -> None:
    assert _one(eng, _call("irate", "counter", 50 * MIN), 50 * MIN) == pytest.approx(1 / 300)
    assert _one(eng, _call("irate", "counter", 50 * MIN), 45 * MIN) == pytest.approx(0.0)
    assert _one(eng, _call("idelta", "gauge", 50 * MIN), 50 * MIN) == -7


def test_over_time_reductions(eng: Engine) -> None:
    vals = np.array([1, 4, 2, 8, 5, 7, 1, 1, 3, 9, 2], dtype=float)
    t = 50 * MIN
    r = 50 * MIN  # left-open: drops the sample at 0
    w = vals[1:]
    assert _one(eng, _call("sum_over_time", "gauge", r), t) == w.sum()
    assert _one(eng, _call("avg_over_time", "gauge", r), t) == pytest.approx(w.mean())
    assert _one(eng, _call("count_over_time", "gauge", r), t) == len(w)
    assert _one(eng, _call("max_over_time", "gauge", r), t) == w.max()
    assert _one(eng, _call("min_over_time", "gauge", r), t) == w.min()
    assert _one(eng, _call("last_over_time", "gauge", r), t) == 2
    assert _one(eng, _call("first_over_time", "gauge", r), t) == 4
    assert _one(eng, _call("present_over_time", "gauge", r), t) == 1
    assert _one(eng, _call("stdvar_over_time", "gauge", r), t) == pytest.approx(w.var())
    assert _one(eng, _call("stddev_over_time", "gauge", r), t) == pytest.approx(w.std())
    assert _one(eng, _call("quantile_over_time", "gauge", r, first=0.5), t) == pytest.approx(
        np.quantile(w, 0.5)
    )
    assert _one(eng, _call("quantile_over_time", "gauge", r, first=2), t) == math.inf
    assert _one(eng, _call("quantile_over_time", "gauge", r, first=-1), t) == -math.inf
    med = np.median(w)
    assert _one(eng, _call("mad_over_time", "gauge", r), t) == pytest.approx(
        np.median(np.abs(w - med))
    )
    assert _one(eng, _call("ts_of_last_over_time", "gauge", r), t) == 3000.0


def test_over_time_nan_and_inf(eng: Engine) -> None:
    t = 10 * MIN
    assert math.isnan(_one(eng, _call("sum_over_time", "nanny", 15 * MIN), t))
    assert _one(eng, _call("max_over_time", "nanny", 15 * MIN), t) == 3
    assert _one(eng, _call("min_over_time", "nanny", 15 * MIN), t) == 1
    assert _one(eng, _call("sum_over_time", "infy", 15 * MIN), t) == math.inf
    assert _one(eng, _call("avg_over_time", "infy", 15 * MIN), t) == math.inf
    assert math.isnan(_one(eng, _call("stddev_over_time", "infy", 15 * MIN), t))


def test_sum_over_time_compensated() -> None:
    e = Engine(_store({"big": [1e100, 1.0, -1e100]}, MIN))
    assert _one(e, _call("sum_over_time", "big", 5 * MIN), 2 * MIN) == 1.0


def test_deriv_predict_linear(eng: Engine) -> None:
    t = 50 * MIN
    assert _one(eng, _call("deriv", "linear", 30 * MIN), t) == pytest.approx(2 / 300)
    got = _one(eng, _call("predict_linear", "linear", 30 * MIN, 600), t)
    assert got == pytest.approx(20 + 600 * 2 / 300)
    assert _one(eng, _call("deriv", "single", 5 * MIN), 0) is None


def test_double_exponential_smoothing(eng: Engine) -> None:
    got = _one(eng, _call("double_exponential_smoothing", "linear", 50 * MIN, 0.5, 0.5), 50 * MIN)
    assert got == pytest.approx(20.0)
    with pytest.raises(errors.ExecutionError, match="smoothing factor"):
        _one(eng, _call("double_exponential_smoothing", "linear", 50 * MIN, 1.5, 0.5), 50 * MIN)


def test_absent_over_time(eng: Engine) -> None:
    sel = ast.VectorSelector(
        "nope", (Matcher(MatchType.EQUAL, "__name__", "nope"), Matcher(MatchType.EQUAL, "job", "x"))
    )
    res = eng.instant_query(ast.Call("absent_over_time", (ast.MatrixSelector(sel, MIN),)), 0)
    assert [(s.labels.format(), s.v) for s in res.value] == [('{job="x"}', 1.0)]
    assert _one(eng, _call("absent_over_time", "gauge", MIN), 0) is None


def test_range_query_rate_matches_instant(eng: Engine) -> None:
    expr = _call("rate", "counter", 15 * MIN)
    res = eng.range_query(expr, 0, 50 * MIN, MIN)
    s = res.value[0]
    for t, v in zip(s.timestamps.tolist(), s.values.tolist(), strict=True):
        assert _one(eng, expr, t) == pytest.approx(v)


def test_prefix_sums_do_not_leak_precision_across_series() -> None:
    s = MemoryStorage()
    app = s.appender()
    for i in range(200):
        app.append(Labels.from_dict({"__name__": "m", "s": "a_big"}), i * 1000, 9.99e11 + i)
        app.append(Labels.from_dict({"__name__": "m", "s": "b_small"}), i * 1000, 0.1)
    app.commit()
    e = Engine(s)
    expr = ast.Call(
        "sum_over_time",
        (
            ast.MatrixSelector(
                ast.VectorSelector("m", (Matcher(MatchType.EQUAL, "s", "b_small"),)), 3000
            ),
        ),
    )
    assert _one(e, expr, 199_000) == pytest.approx(0.3, rel=1e-12)
    both = ast.Call(
        "sum_over_time",
        (
            ast.MatrixSelector(
                ast.VectorSelector("m", (Matcher(MatchType.EQUAL, "__name__", "m"),)), 3000
            ),
        ),
    )
    res = {x.labels.get("s"): x.v for x in e.instant_query(both, 199_000).value}
    assert res["b_small"] == pytest.approx(0.3, rel=1e-12)


def test_variance_of_constant_window_is_exactly_zero() -> None:
    e = Engine(_store({"c": [0.1] * 6}, 10_000))
    expr = ast.Call(
        "stdvar_over_time",
        (
            ast.MatrixSelector(
                ast.VectorSelector("c", (Matcher(MatchType.EQUAL, "__name__", "c"),)), MIN
            ),
        ),
    )
    assert _one(e, expr, 50_000) == 0.0


def test_counter_reset_series_followed_by_others_in_range_query() -> None:
    # Series "a" resets and ends early; "b" follows it in the flat arrays. Steps
    # after "a" ends must neither crash nor borrow "b"'s samples.
    s = MemoryStorage()
    app = s.appender()
    for k, vals in (("a", [5.0, 6.0, 1.0, 2.0]), ("b", [float(i) for i in range(10)])):
        for i, v in enumerate(vals):
            app.append(Labels.from_dict({"__name__": "c_total", "k": k}), i * MIN, v)
    app.commit()
    e = Engine(s)
    sel = ast.VectorSelector("c_total", (Matcher(MatchType.EQUAL, "__name__", "c_total"),))
    res = e.range_query(ast.Call("increase", (ast.MatrixSelector(sel, 3 * MIN),)), 0, 9 * MIN, MIN)
    got = {
        x.labels.get("k"): dict(zip(x.timestamps.tolist(), x.values.tolist(), strict=True))
        for x in res.value
    }
    # (0, 3m] holds 6, 1, 2: 2 - 6 + 6 (reset) = 2, extrapolated by 180/120 -> 3
    assert got["a"][3 * MIN] == pytest.approx(3.0)
    # (1m, 4m] holds 1, 2: 1, extrapolated 60 s on each side -> 3
    assert got["a"][4 * MIN] == pytest.approx(3.0)
    assert 5 * MIN not in got["a"] and 9 * MIN not in got["a"]
    assert got["b"][9 * MIN] == pytest.approx(3.0)


def test_quantile_over_time_orders_nan_first_as_go_does() -> None:
    e = Engine(_store({"q": [2.0, math.nan, 1.0]}, MIN))
    # Go sorts NaN before every number: [NaN, 1, 2] -> the median is 1
    assert _one(e, _call("quantile_over_time", "q", 5 * MIN, first=0.5), 2 * MIN) == 1.0
    assert math.isnan(_one(e, _call("quantile_over_time", "q", 5 * MIN, first=0), 2 * MIN))
    assert _one(e, _call("quantile_over_time", "q", 5 * MIN, first=1), 2 * MIN) == 2.0


def test_long_loops_honour_the_query_deadline(eng: Engine) -> None:
    from vigil.promql.eval_types import query_deadline
    from vigil.promql.evaluator import Evaluator, QueryContext

    ctx = QueryContext(eng.queryable, 300_000, 10**9, float("inf"), 0, 0, MIN)
    m = Evaluator(ctx, np.arange(0, 50 * MIN + 1, MIN)).matrix_selector(
        ast.MatrixSelector(
            ast.VectorSelector("gauge", (Matcher(MatchType.EQUAL, "__name__", "gauge"),)), 10 * MIN
        )
    )
    token = query_deadline.set(0.0)  # long past
    try:
        with pytest.raises(errors.QueryTimeoutError):
            range_functions.extrapolated_rate(m, True, True)
        with pytest.raises(errors.QueryTimeoutError):
            range_functions.quantile_over_time(m, np.full(51, 0.5))
    finally:
        query_deadline.reset(token)
