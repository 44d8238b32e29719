"""Error paths and annotations (warnings / infos) of the engine."""

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


def sel(name: str, **labels: str) -> ast.VectorSelector:
    ms = [Matcher(MatchType.EQUAL, "__name__", name)] + [
        Matcher(MatchType.EQUAL, k, v) for k, v in labels.items()
    ]
    return ast.VectorSelector(name, tuple(ms))


@pytest.fixture
def eng() -> Engine:
    s = MemoryStorage()
    app = s.appender()
    for i in range(6):
        app.append(Labels.from_dict({"__name__": "gauge", "k": str(i)}), 0, float(i))
        for t in range(0, 10):
            app.append(
                Labels.from_dict({"__name__": "req_total", "k": str(i)}), t * MIN, float(t * i)
            )
    for le, c in [("1", 2.0), ("bogus", 3.0)]:
        app.append(Labels.from_dict({"__name__": "h_bucket", "le": le}), 0, c)
    app.commit()
    return Engine(s)


def test_type_errors_are_execution_errors(eng: Engine) -> None:
    with pytest.raises(errors.ExecutionError, match="expected range vector"):
        eng.instant_query(ast.Call("rate", (sel("gauge"),)), 0)
    with pytest.raises(errors.ExecutionError, match="expected instant vector"):
        eng.instant_query(ast.Call("abs", (ast.NumberLiteral(1),)), 0)
    with pytest.raises(errors.ExecutionError, match="not implemented"):
        eng.instant_query(ast.Call("no_such_fn", (sel("gauge"),)), 0)
    with pytest.raises(errors.ExecutionError, match="expected scalar"):
        eng.instant_query(ast.AggregateExpr("topk", sel("gauge"), param=sel("gauge")), 0)


def test_count_values_bad_label(eng: Engine) -> None:
    expr = ast.AggregateExpr("count_values", sel("gauge"), param=ast.StringLiteral("a\udcc5z"))
    with pytest.raises(errors.ExecutionError, match=r'invalid label name "a\\xc5z"'):
        eng.instant_query(expr, 0)


def test_quantile_warning(eng: Engine) -> None:
    res = eng.instant_query("quantile(1.5, gauge)", 0)
    assert res.value[0].v == math.inf
    # the position is line:column of the offending parameter, as Prometheus prints it
    assert res.warnings == [
        "PromQL warning: quantile value should be between 0 and 1, got 1.5 (1:10)"
    ]


def test_bucket_label_warning(eng: Engine) -> None:
    res = eng.instant_query(
        ast.Call("histogram_quantile", (ast.NumberLiteral(0.5), sel("h_bucket"))), 0
    )
    # only the `le="1"` bucket is usable: no +Inf bucket, so the result is NaN
    assert len(res.value) == 1 and math.isnan(res.value[0].v)
    assert any('malformed value of "bogus" for metric name "h_bucket"' in w for w in res.warnings)


def test_non_counter_info_and_sort_warning(eng: Engine) -> None:
    m = ast.MatrixSelector(sel("gauge"), 5 * MIN)
    res = eng.instant_query(ast.Call("rate", (m,)), 0)
    assert res.value == []  # single samples: nothing, hence no info either
    res = eng.instant_query(
        ast.Call("rate", (ast.MatrixSelector(sel("req_total"), 5 * MIN),)), 5 * MIN
    )
    assert res.infos == []
    res = eng.range_query(ast.Call("sort", (sel("gauge"),)), 0, MIN, MIN)
    assert res.warnings and "sort is ineffective" in res.warnings[0]


def test_limit_ratio_complement(eng: Engine) -> None:
    def count(r: float) -> set[str]:
        res = eng.instant_query(
            ast.AggregateExpr("limit_ratio", sel("req_total"), param=ast.NumberLiteral(r)), 5 * MIN
        )
        return {s.labels.get("k") for s in res.value}

    a, b = count(0.3), count(-0.7)
    assert a | b == {str(i) for i in range(6)} and not a & b
    assert count(1.0) == {str(i) for i in range(6)}
    res = eng.instant_query("count(limit_ratio(1.1, req_total))", 5 * MIN)
    assert res.value[0].v == 6
    assert res.warnings == [
        "PromQL warning: ratio value should be between -1 and 1, got 1.1, capping to 1 (1:19)"
    ]


def test_string_query_uses_parser(eng: Engine) -> None:
    res = eng.instant_query('sum(rate(req_total{k="2"}[5m]))', 9 * MIN)
    assert res.value[0].v == pytest.approx(2 / 60)
    with pytest.raises(errors.ParseError):
        eng.instant_query("sum(", 0)
