"""Instant-vector functions: math, clamp, dates, labels, sort, absent, histograms."""

from __future__ import annotations

import math

import pytest

from vigil.model.labels import Labels
from vigil.model.matchers import Matcher, MatchType
from vigil.promql import errors
from vigil.promql.engine import Engine
from vigil.promql.parser import ast
from vigil.storage.memory import MemoryStorage

MIN = 60_000


def _store(rows: list[tuple[dict[str, str], float]]) -> MemoryStorage:
    s = MemoryStorage()
    app = s.appender()
    for lbls, v in rows:
        app.append(Labels.from_dict(lbls), 0, v)
    app.commit()
    return s


def sel(name: str, **labels: str) -> ast.VectorSelector:
    ms = [Matcher(MatchType.EQUAL, "__name__", name)] + [
        Matcher(MatchType.EQUAL, k, v) for k, v in labels.items()
    ]
    return ast.VectorSelector(name, tuple(ms))


def call(name: str, *args: ast.Expr | float | str) -> ast.Call:
    conv: list[ast.Expr] = []
    for a in args:
        if isinstance(a, ast.Expr):
            conv.append(a)
        elif isinstance(a, str):
            conv.append(ast.StringLiteral(a))
        else:
            conv.append(ast.NumberLiteral(float(a)))
    return ast.Call(name, tuple(conv))


def vec(e: Engine, expr: ast.Expr, t: int = 0) -> dict[str, float]:
    res = e.instant_query(expr, t)
    assert res.result_type == "vector"
    return {s.labels.format(): s.v for s in res.value}


@pytest.fixture
def eng() -> Engine:
    rows = [
        ({"__name__": "m", "k": "a"}, -2.5),
        ({"__name__": "m", "k": "b"}, 0.5),
        ({"__name__": "m", "k": "c"}, math.nan),
        ({"__name__": "ts", "k": "x"}, 1_700_000_000.0),  # 2023-11-14T22:13:20Z, a Tuesday
    ]
    for le, c in [("0.1", 1.0), ("0.5", 4.0), ("1", 8.0), ("+Inf", 10.0)]:
        rows.append(({"__name__": "h_bucket", "le": le, "job": "j"}, c))
    return Engine(_store(rows))


def test_math(eng: Engine) -> None:
    assert vec(eng, call("abs", sel("m", k="a"))) == {'{k="a"}': 2.5}
    assert vec(eng, call("ceil", sel("m", k="a"))) == {'{k="a"}': -2.0}
    assert vec(eng, call("floor", sel("m", k="b"))) == {'{k="b"}': 0.0}
    assert vec(eng, call("sgn", sel("m", k="a"))) == {'{k="a"}': -1.0}
    assert math.isnan(vec(eng, call("sqrt", sel("m", k="a")))['{k="a"}'])
    assert vec(eng, call("ln", sel("m", k="b")))['{k="b"}'] == pytest.approx(math.log(0.5))
    assert vec(eng, call("exp", sel("m", k="b")))['{k="b"}'] == pytest.approx(math.exp(0.5))
    assert vec(eng, call("deg", sel("m", k="b")))['{k="b"}'] == pytest.approx(math.degrees(0.5))
    assert eng.instant_query(call("pi"), 0).value.v == math.pi


def test_round_and_clamp(eng: Engine) -> None:
    assert vec(eng, call("round", sel("m", k="a"))) == {'{k="a"}': -2.0}  # Go rounds half up here
    assert vec(eng, call("round", sel("m", k="b"), 0.25)) == {'{k="b"}': 0.5}
    assert vec(eng, call("clamp", sel("m", k="a"), -1, 1)) == {'{k="a"}': -1.0}
    assert vec(eng, call("clamp", sel("m", k="a"), 1, -1)) == {}
    assert vec(eng, call("clamp_min", sel("m", k="a"), 0)) == {'{k="a"}': 0.0}
    assert vec(eng, call("clamp_max", sel("m", k="b"), 0)) == {'{k="b"}': 0.0}


def test_scalar_vector_time(eng: Engine) -> None:
    assert eng.instant_query(call("time"), 5_000).value.v == 5.0
    assert eng.instant_query(call("scalar", sel("m", k="a")), 0).value.v == -2.5
    assert math.isnan(eng.instant_query(call("scalar", sel("m")), 0).value.v)
    assert vec(eng, call("vector", 3)) == {"{}": 3.0}
    assert vec(eng, call("timestamp", sel("m", k="a")), 30_000) == {'{k="a"}': 0.0}


def test_dates(eng: Engine) -> None:
    x = sel("ts")
    assert vec(eng, call("year", x)) == {'{k="x"}': 2023.0}
    assert vec(eng, call("month", x)) == {'{k="x"}': 11.0}
    assert vec(eng, call("day_of_month", x)) == {'{k="x"}': 14.0}
    assert vec(eng, call("day_of_week", x)) == {'{k="x"}': 2.0}
    assert vec(eng, call("day_of_year", x)) == {'{k="x"}': 318.0}
    assert vec(eng, call("hour", x)) == {'{k="x"}': 22.0}
    assert vec(eng, call("minute", x)) == {'{k="x"}': 13.0}
    assert vec(eng, call("days_in_month", x)) == {'{k="x"}': 30.0}
    assert vec(eng, call("year")) == {"{}": 1970.0}


def test_label_replace_and_join(eng: Engine) -> None:
    got = vec(eng, call("label_replace", sel("m", k="a"), "dst", "v-$1", "k", "(.*)"))
    assert got == {'m{dst="v-a", k="a"}': -2.5}
    got = vec(eng, call("label_replace", sel("m", k="a"), "dst", "v-$1", "k", "zzz"))
    assert got == {'m{k="a"}': -2.5}
    got = vec(eng, call("label_join", sel("m", k="a"), "dst", "-", "__name__", "k"))
    assert got == {'m{dst="m-a", k="a"}': -2.5}
    with pytest.raises(errors.ExecutionError, match="invalid regular expression"):
        vec(eng, call("label_replace", sel("m"), "dst", "", "k", "(.*"))
    with pytest.raises(errors.ExecutionError, match="same labelset"):
        vec(eng, call("label_replace", sel("m"), "k", "", "", ""))


def test_sorting(eng: Engine) -> None:
    res = eng.instant_query(call("sort", sel("m")), 0)
    assert [s.labels.get("k") for s in res.value] == ["a", "b", "c"]
    res = eng.instant_query(call("sort_desc", sel("m")), 0)
    assert [s.labels.get("k") for s in res.value] == ["b", "a", "c"]
    res = eng.instant_query(call("sort_by_label_desc", sel("m"), "k"), 0)
    assert [s.labels.get("k") for s in res.value] == ["c", "b", "a"]


def test_absent(eng: Engine) -> None:
    assert vec(eng, call("absent", sel("m"))) == {}
    assert vec(eng, call("absent", sel("nope", job="x"))) == {'{job="x"}': 1.0}


def test_histogram_quantile_and_fraction(eng: Engine) -> None:
    h = sel("h_bucket")
    # rank 5 of 10 falls in (0.5, 1]: 0.5 + 0.5 * (5 - 4) / 4
    assert vec(eng, call("histogram_quantile", 0.5, h)) == {'{job="j"}': 0.625}
    # rank 9.9 is in the +Inf bucket: the highest finite bound
    assert vec(eng, call("histogram_quantile", 0.99, h)) == {'{job="j"}': 1.0}
    assert vec(eng, call("histogram_quantile", 1.5, h)) == {'{job="j"}': math.inf}
    assert vec(eng, call("histogram_fraction", 0, 0.5, h)) == {'{job="j"}': 0.4}
    assert vec(eng, call("histogram_fraction", 0.1, 1, h))['{job="j"}'] == pytest.approx(0.7)


def test_histogram_monotonicity_fixup() -> None:
    rows = [({"__name__": "b", "le": le}, c) for le, c in [("1", 5.0), ("2", 4.0), ("+Inf", 10.0)]]
    e = Engine(_store(rows))
    # the dip at le=2 is raised to 5, so rank 5 is reached in the first bucket
    assert vec(e, call("histogram_quantile", 0.5, sel("b"))) == {"{}": 1.0}


def test_query_parameter_functions(eng: Engine) -> None:
    res = eng.range_query(ast.BinaryExpr("+", call("start"), call("range")), 10_000, 50_000, 10_000)
    assert res.value[0].values.tolist() == [50.0] * 5
    res = eng.range_query(call("step"), 0, 10_000, 5_000)
    assert res.value[0].values.tolist() == [5.0] * 3
    assert eng.instant_query(call("end"), 50_000).value.v == 50.0
    assert eng.instant_query(call("range"), 50_000).value.v == 0.0
    assert eng.instant_query(call("min_of", 3, 5), 0).value.v == 3.0
    assert math.isnan(eng.instant_query(call("max_of", math.nan, 5), 0).value.v)
