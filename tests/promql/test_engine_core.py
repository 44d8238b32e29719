"""Engine core: selectors, staleness, offset/@, subqueries, operators, aggregations,
limits, errors and thread safety. ASTs are built by hand so these tests do not
depend on the parser."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest

from vigil.model.labels import Labels
from vigil.model.matchers import Matcher, MatchType
from vigil.model.samples import STALE_NAN
from vigil.promql import errors
from vigil.promql.engine import Engine
from vigil.promql.parser import ast
from vigil.promql.result import QueryResult
from vigil.storage.memory import MemoryStorage

MIN = 60_000


def sel(
    name: str | None = None, offset: int = 0, at: int | None = None, **labels: str
) -> ast.VectorSelector:
    ms = []
    if name:
        ms.append(Matcher(MatchType.EQUAL, "__name__", name))
    ms += [Matcher(MatchType.EQUAL, k, v) for k, v in labels.items()]
    return ast.VectorSelector(name, tuple(ms), offset_ms=offset, at=at)


def rng(s: ast.VectorSelector, ms: int) -> ast.MatrixSelector:
    return ast.MatrixSelector(s, ms)


def fn(name: str, *args: ast.Expr) -> ast.Call:
    return ast.Call(name, tuple(args))


def num(v: float) -> ast.NumberLiteral:
    return ast.NumberLiteral(v)


def binop(
    op: str,
    a: ast.Expr,
    b: ast.Expr,
    matching: ast.VectorMatching | None = None,
    bool_: bool = False,
) -> ast.BinaryExpr:
    return ast.BinaryExpr(op, a, b, return_bool=bool_, matching=matching)


def agg(
    op: str,
    e: ast.Expr,
    by: tuple[str, ...] = (),
    without: bool = False,
    param: ast.Expr | None = None,
) -> ast.AggregateExpr:
    return ast.AggregateExpr(op, e, param=param, grouping=by, without=without)


def load(
    store: MemoryStorage,
    series: dict[str, list[float | None]],
    interval: int,
    labels: dict[str, dict[str, str]] | None = None,
) -> None:
    app = store.appender()
    for key, vals in series.items():
        name, _, rest = key.partition("{")
        d = {"__name__": name}
        if rest:
            for part in rest.rstrip("}").split(","):
                k, v = part.split("=")
                d[k.strip()] = v.strip().strip('"')
        lbls = Labels.from_dict(d)
        for i, v in enumerate(vals):
            if v is not None:
                app.append(lbls, i * interval, v)
    app.commit()


def vec(res: QueryResult) -> dict[str, float]:
    assert res.result_type == "vector"
    return {s.labels.format(): s.v for s in res.value}


@pytest.fixture
def store() -> MemoryStorage:
    s = MemoryStorage()
    load(
        s,
        {
            'http_requests{job="api",instance="0"}': [float(i * 10) for i in range(11)],
            'http_requests{job="api",instance="1"}': [float(i * 20) for i in range(11)],
            'http_requests{job="web",instance="0"}': [float(i * 30) for i in range(11)],
            'up{job="api",instance="0"}': [1.0] * 11,
            'up{job="web",instance="0"}': [0.0] * 11,
        },
        5 * MIN,
    )
    return s


def test_instant_selector_and_lookback(store: MemoryStorage) -> None:
    e = Engine(store)
    r = vec(e.instant_query(sel("http_requests", job="api"), 50 * MIN))
    assert r == {
        'http_requests{instance="0", job="api"}': 100.0,
        'http_requests{instance="1", job="api"}': 200.0,
    }
    # Lookback is left-open: a sample exactly 5m old is no longer visible.
    assert vec(e.instant_query(sel("up", job="api"), 55 * MIN - 1)) != {}
    assert vec(e.instant_query(sel("up", job="api"), 55 * MIN)) == {}


def test_staleness_marker_ends_series() -> None:
    s = MemoryStorage()
    load(s, {"m": [0.0, 1.0, STALE_NAN, 2.0]}, 10_000)
    e = Engine(s)
    assert vec(e.instant_query(sel("m"), 10_000)) == {"m": 1.0}
    assert vec(e.instant_query(sel("m"), 20_000)) == {}
    assert vec(e.instant_query(sel("m"), 30_000)) == {"m": 2.0}
    r = vec(e.instant_query(fn("count_over_time", rng(sel("m"), MIN)), 30_000))
    assert r == {"{}": 3.0}


def test_offset_and_at(store: MemoryStorage) -> None:
    e = Engine(store)
    r = vec(e.instant_query(sel("http_requests", offset=10 * MIN, job="web"), 50 * MIN))
    assert r == {'http_requests{instance="0", job="web"}': 240.0}
    r = vec(e.instant_query(sel("http_requests", at=(10 * MIN), job="web"), 50 * MIN))
    assert r == {'http_requests{instance="0", job="web"}': 60.0}
    res = e.range_query(sel("http_requests", at=(10 * MIN), job="web"), 0, 20 * MIN, 5 * MIN)
    assert res.value[0].values.tolist() == [60.0] * 5


def test_range_query_matrix_and_scalar(store: MemoryStorage) -> None:
    e = Engine(store)
    res = e.range_query(sel("http_requests", job="web"), 0, 20 * MIN, 5 * MIN)
    assert res.result_type == "matrix"
    assert res.value[0].timestamps.tolist() == [0, 5 * MIN, 10 * MIN, 15 * MIN, 20 * MIN]
    assert res.value[0].values.tolist() == [0.0, 30.0, 60.0, 90.0, 120.0]
    res = e.range_query(num(3), 0, 10_000, 5_000)
    assert res.value[0].labels == Labels.EMPTY and res.value[0].values.tolist() == [3.0] * 3
    with pytest.raises(errors.ExecutionError):
        e.range_query(ast.StringLiteral("x"), 0, 10, 5)
    with pytest.raises(errors.ExecutionError):
        e.range_query(rng(sel("up"), MIN), 0, 10, 5)
    with pytest.raises(errors.ExecutionError, match="step"):
        e.range_query(num(1), 0, 10, 0)


def test_range_vector_at_top_level(store: MemoryStorage) -> None:
    e = Engine(store)
    res = e.instant_query(rng(sel("up", job="api"), 10 * MIN), 50 * MIN)
    assert res.result_type == "matrix"
    assert res.value[0].timestamps.tolist() == [45 * MIN, 50 * MIN]  # (t-10m, t]


def test_rate_and_name_dropping(store: MemoryStorage) -> None:
    e = Engine(store)
    r = vec(e.instant_query(fn("rate", rng(sel("http_requests"), 50 * MIN)), 50 * MIN))
    assert r['{instance="0", job="api"}'] == pytest.approx(10 / 300)
    r = vec(e.instant_query(fn("last_over_time", rng(sel("up", job="web"), 10 * MIN)), 50 * MIN))
    assert r == {'up{instance="0", job="web"}': 0.0}


def test_arithmetic_and_comparison(store: MemoryStorage) -> None:
    e = Engine(store)
    r = vec(e.instant_query(binop("*", sel("up"), num(2)), 50 * MIN))
    assert r == {'{instance="0", job="api"}': 2.0, '{instance="0", job="web"}': 0.0}
    r = vec(e.instant_query(binop(">", sel("up"), num(0)), 50 * MIN))
    assert r == {'up{instance="0", job="api"}': 1.0}
    r = vec(e.instant_query(binop("<", num(0), sel("up")), 50 * MIN))
    assert r == {'up{instance="0", job="api"}': 1.0}  # keeps the vector's value
    r = vec(e.instant_query(binop(">", sel("up"), num(0), bool_=True), 50 * MIN))
    assert r == {'{instance="0", job="api"}': 1.0, '{instance="0", job="web"}': 0.0}
    s = e.instant_query(binop("/", num(1), num(0)), 0)
    assert s.value.v == math.inf
    s = e.instant_query(binop("%", num(-7), num(3)), 0)
    assert s.value.v == -1.0


def test_vector_matching(store: MemoryStorage) -> None:
    e = Engine(store)
    m = ast.VectorMatching("one-to-one", ("job", "instance"), on=True)
    r = vec(e.instant_query(binop("+", sel("http_requests"), sel("up"), m), 50 * MIN))
    assert r == {'{instance="0", job="api"}': 101.0, '{instance="0", job="web"}': 300.0}
    # many-to-one without group_left is an error
    m = ast.VectorMatching("one-to-one", ("job",), on=True)
    with pytest.raises(errors.ExecutionError, match="many-to-one matching must be explicit"):
        e.instant_query(
            binop("+", sel("http_requests"), agg("sum", sel("up"), by=("job",)), m), 50 * MIN
        )
    m = ast.VectorMatching("many-to-one", ("job",), on=True)
    r = vec(
        e.instant_query(
            binop("/", sel("http_requests"), agg("sum", sel("http_requests"), by=("job",)), m),
            50 * MIN,
        )
    )
    assert r['{instance="1", job="api"}'] == pytest.approx(2 / 3)
    # duplicate on the one side
    m = ast.VectorMatching("many-to-one", ("job",), on=True)
    with pytest.raises(errors.ExecutionError, match="found duplicate series for the match group"):
        e.instant_query(binop("/", sel("up"), sel("http_requests"), m), 50 * MIN)


def test_set_operators(store: MemoryStorage) -> None:
    e = Engine(store)
    on_job = ast.VectorMatching("many-to-many", ("job",), on=True)
    r = vec(
        e.instant_query(
            binop("and", sel("http_requests"), binop("==", sel("up"), num(1)), on_job), 50 * MIN
        )
    )
    assert set(r) == {
        'http_requests{instance="0", job="api"}',
        'http_requests{instance="1", job="api"}',
    }
    r = vec(
        e.instant_query(
            binop("unless", sel("http_requests"), binop("==", sel("up"), num(1)), on_job), 50 * MIN
        )
    )
    assert set(r) == {'http_requests{instance="0", job="web"}'}
    r = vec(
        e.instant_query(
            binop("or", sel("up", job="api"), sel("http_requests", instance="1")), 50 * MIN
        )
    )
    assert set(r) == {'up{instance="0", job="api"}', 'http_requests{instance="1", job="api"}'}


def test_aggregations(store: MemoryStorage) -> None:
    e = Engine(store)
    t = 50 * MIN
    assert vec(e.instant_query(agg("sum", sel("http_requests"), by=("job",)), t)) == {
        '{job="api"}': 300.0,
        '{job="web"}': 300.0,
    }
    assert vec(e.instant_query(agg("avg", sel("http_requests")), t)) == {"{}": 200.0}
    assert vec(
        e.instant_query(agg("count", sel("http_requests"), by=("instance",), without=True), t)
    ) == {
        '{job="api"}': 2.0,
        '{job="web"}': 1.0,
    }
    assert vec(e.instant_query(agg("max", sel("http_requests")), t)) == {"{}": 300.0}
    assert vec(e.instant_query(agg("min", sel("http_requests")), t)) == {"{}": 100.0}
    assert vec(e.instant_query(agg("group", sel("http_requests")), t)) == {"{}": 1.0}
    sd = vec(e.instant_query(agg("stddev", sel("http_requests")), t))["{}"]
    assert sd == pytest.approx(float(np.std([100, 200, 300])))
    q = vec(e.instant_query(agg("quantile", sel("http_requests"), param=num(0.5)), t))
    assert q == {"{}": 200.0}
    top = e.instant_query(agg("topk", sel("http_requests"), param=num(2)), t)
    assert [s.v for s in top.value] == [300.0, 200.0]
    bottom = e.instant_query(agg("bottomk", sel("http_requests"), param=num(1)), t)
    assert [s.v for s in bottom.value] == [100.0]
    cv = vec(e.instant_query(agg("count_values", sel("up"), param=ast.StringLiteral("v")), t))
    assert cv == {'{v="0"}': 1.0, '{v="1"}': 1.0}
    lk = e.instant_query(agg("limitk", sel("http_requests"), param=num(1), by=("job",)), t)
    assert len(lk.value) == 2
    with pytest.raises(errors.ExecutionError, match="NaN"):
        e.instant_query(agg("topk", sel("http_requests"), param=num(math.nan)), t)


def test_avg_does_not_overflow() -> None:
    s = MemoryStorage()
    load(s, {'m{a="1"}': [1.7e308], 'm{a="2"}': [1.7e308]}, MIN)
    e = Engine(s)
    assert vec(e.instant_query(agg("avg", sel("m")), 0)) == {"{}": 1.7e308}
    assert vec(e.instant_query(agg("sum", sel("m")), 0)) == {"{}": math.inf}


def test_subquery(store: MemoryStorage) -> None:
    e = Engine(store)
    sq = ast.SubqueryExpr(sel("http_requests", job="web"), range_ms=20 * MIN, step_ms=5 * MIN)
    r = vec(e.instant_query(fn("sum_over_time", sq), 50 * MIN))
    # steps at 35m, 40m, 45m, 50m (left-open window): 210 + 240 + 270 + 300
    assert r == {'{instance="0", job="web"}': 1020.0}
    r = vec(
        e.instant_query(
            fn(
                "max_over_time",
                ast.SubqueryExpr(
                    fn("rate", rng(sel("http_requests", job="web"), 10 * MIN)), 30 * MIN, MIN
                ),
            ),
            50 * MIN,
        )
    )
    assert r['{instance="0", job="web"}'] == pytest.approx(0.1)


def test_delayed_name_removal_collision(store: MemoryStorage) -> None:
    e = Engine(store)
    expr = ast.UnaryExpr(
        "-",
        ast.VectorSelector(
            None,
            (
                Matcher(MatchType.REGEX, "__name__", "up|http_requests"),
                Matcher(MatchType.EQUAL, "instance", "0"),
                Matcher(MatchType.EQUAL, "job", "api"),
            ),
        ),
    )
    with pytest.raises(errors.ExecutionError, match="same labelset"):
        e.instant_query(expr, 50 * MIN)


def test_range_query_or_merges_after_name_drop() -> None:
    s = MemoryStorage()
    load(s, {"metric_a": [1.0], "metric_b": [3.0, 4.0]}, 10 * MIN)
    e = Engine(s, lookback_delta_ms=5 * MIN)
    res = e.range_query(
        binop("or", ast.UnaryExpr("-", sel("metric_a")), ast.UnaryExpr("-", sel("metric_b"))),
        0,
        20 * MIN,
        10 * MIN,
    )
    assert len(res.value) == 1
    assert res.value[0].values.tolist() == [-1.0, -4.0]


def test_max_samples_and_timeout(store: MemoryStorage) -> None:
    e = Engine(store, max_samples=5)
    with pytest.raises(errors.TooManySamplesError):
        e.instant_query(rng(sel("http_requests"), 50 * MIN), 50 * MIN)
    e = Engine(store)
    with pytest.raises(errors.QueryTimeoutError):
        e.instant_query(sel("up"), 0, timeout_s=-1.0)


def test_bad_constructor_arguments(store: MemoryStorage) -> None:
    with pytest.raises(ValueError, match="lookback"):
        Engine(store, lookback_delta_ms=0)


def test_concurrent_queries(store: MemoryStorage) -> None:
    e = Engine(store)
    expr = agg("sum", fn("rate", rng(sel("http_requests"), 10 * MIN)), by=("job",))
    expected = vec(e.instant_query(expr, 50 * MIN))
    failures: list[object] = []

    def worker() -> None:
        for _ in range(20):
            got = vec(e.instant_query(expr, 50 * MIN))
            if got != expected:
                failures.append(got)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures


def test_stddev_of_identical_values_is_exactly_zero() -> None:
    s = MemoryStorage()
    load(s, {'m{a="1"}': [0.1], 'm{a="2"}': [0.1], 'm{a="3"}': [0.1]}, MIN)
    e = Engine(s)
    assert vec(e.instant_query(agg("stddev", sel("m")), 0)) == {"{}": 0.0}


def test_huge_subquery_is_refused_before_allocating() -> None:
    import time as _time

    store = MemoryStorage()
    app = store.appender()
    app.append(Labels.from_dict({"__name__": "up"}), 1_000, 1.0)
    app.commit()
    engine = Engine(store, max_samples=1_000_000)
    t0 = _time.monotonic()
    with pytest.raises(errors.TooManySamplesError):
        engine.instant_query("count_over_time(up[10000d:1s])", 2_000)
    assert _time.monotonic() - t0 < 5
