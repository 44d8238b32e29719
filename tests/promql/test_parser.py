"""Parser: tree shapes, precedence, type checks and Prometheus-shaped errors."""

from __future__ import annotations

import math
import threading
from pathlib import Path

import pytest

from vigil.model.matchers import MatchType
from vigil.promql.errors import ParseError
from vigil.promql.parser import (
    MAX_DEPTH,
    PromQLParseError,
    ast,
    format_expr,
    parse_duration,
    parse_expr,
    parse_series_selector,
)

FIXTURES = Path(__file__).parent / "fixtures"


def _error_cases() -> list[tuple[str, str]]:
    out = []
    for line in (FIXTURES / "errors.txt").read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or "\t" not in line:
            continue
        query, expected = line.split("\t", 1)
        out.append((query.replace("\\n", "\n"), expected))
    return out


@pytest.mark.parametrize(("query", "expected"), _error_cases())
def test_errors_match_prometheus(query: str, expected: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_expr(query)
    assert str(info.value) == expected
    assert isinstance(info.value, PromQLParseError)
    assert info.value.error_type == "bad_data"
    assert 0 <= (info.value.position or 0) <= len(query)


def test_number_forms() -> None:
    for text, value in [("1", 1), ("0x1f", 31), (".5", 0.5), ("1e3", 1000), ("-2", -2)]:
        node = parse_expr(text)
        assert isinstance(node, ast.NumberLiteral) and node.value == value
    assert math.isinf(parse_expr("+Inf").value)  # type: ignore[attr-defined]
    assert math.isnan(parse_expr("NaN").value)  # type: ignore[attr-defined]
    assert parse_expr("1m").value == 60.0  # type: ignore[attr-defined]


def test_unary_minus_binds_looser_than_power() -> None:
    node = parse_expr("-2^2")
    assert isinstance(node, ast.UnaryExpr) and node.op == "-"
    assert isinstance(node.expr, ast.BinaryExpr) and node.expr.op == "^"
    folded = parse_expr("-2 * 3")
    assert isinstance(folded, ast.BinaryExpr) and folded.lhs == ast.NumberLiteral(-2.0, (0, 2))


def test_precedence_and_associativity() -> None:
    def shape(n: ast.Expr) -> object:
        if isinstance(n, ast.BinaryExpr):
            return (n.op, shape(n.lhs), shape(n.rhs))
        if isinstance(n, ast.VectorSelector):
            return n.name
        return "?"

    assert shape(parse_expr("a + b * c")) == ("+", "a", ("*", "b", "c"))
    assert shape(parse_expr("a - b - c")) == ("-", ("-", "a", "b"), "c")
    assert shape(parse_expr("a ^ b ^ c")) == ("^", "a", ("^", "b", "c"))
    assert shape(parse_expr("a or b and c")) == ("or", "a", ("and", "b", "c"))
    assert shape(parse_expr("a and b unless c")) == ("unless", ("and", "a", "b"), "c")
    assert shape(parse_expr("a > b + c")) == (">", "a", ("+", "b", "c"))
    assert shape(parse_expr("a atan2 b * c")) == ("*", ("atan2", "a", "b"), "c")


def test_selector_shapes() -> None:
    node = parse_expr('foo{a="1", b!="2", c=~"3", d!~"4"}')
    assert isinstance(node, ast.VectorSelector) and node.name == "foo"
    assert [(m.name, m.type) for m in node.matchers] == [
        ("a", MatchType.EQUAL),
        ("b", MatchType.NOT_EQUAL),
        ("c", MatchType.REGEX),
        ("d", MatchType.NOT_REGEX),
        ("__name__", MatchType.EQUAL),
    ]
    quoted = parse_expr('{"my.metric", "a.b"="x"}')
    assert isinstance(quoted, ast.VectorSelector) and quoted.name is None
    assert {(m.name, m.value) for m in quoted.matchers} == {
        ("__name__", "my.metric"),
        ("a.b", "x"),
    }


def test_modifiers_in_either_order() -> None:
    a = parse_expr("x offset 5m @ 100")
    b = parse_expr("x @ 100 offset 5m")
    for n in (a, b):
        assert isinstance(n, ast.VectorSelector)
        assert (n.offset_ms, n.at, n.at_modifier) == (300_000, 100_000, None)
    m = parse_expr("x[5m] offset -1h @ end()")
    assert isinstance(m, ast.MatrixSelector) and m.range_ms == 300_000
    assert (m.selector.offset_ms, m.selector.at_modifier) == (-3_600_000, "end")
    s = parse_expr("rate(x[1m])[1h:5m] @ start() offset 10s")
    assert isinstance(s, ast.SubqueryExpr)
    assert (s.range_ms, s.step_ms, s.offset_ms, s.at_modifier) == (
        3_600_000,
        300_000,
        10_000,
        "start",
    )
    assert parse_expr("x[5m:]").step_ms == 0  # type: ignore[attr-defined]
    assert parse_expr("x @ 1.0005").at == 1001  # type: ignore[attr-defined]


def test_binary_matching_is_normalised() -> None:
    n = parse_expr("a and b")
    assert isinstance(n, ast.BinaryExpr) and n.matching is not None
    assert n.matching.card == "many-to-many"
    g = parse_expr("a * on(x) group_left(y) b")
    assert isinstance(g, ast.BinaryExpr) and g.matching == ast.VectorMatching(
        "many-to-one", ("x",), True, ("y",)
    )
    s = parse_expr("a * 2")
    assert isinstance(s, ast.BinaryExpr) and s.matching is None
    assert parse_expr("1 == bool 2").type() == "scalar"


def test_aggregations() -> None:
    n = parse_expr("topk by (a, b) (5, x)")
    assert isinstance(n, ast.AggregateExpr)
    assert (n.op, n.grouping, n.without) == ("topk", ("a", "b"), False)
    assert n.param == ast.NumberLiteral(5.0, (16, 17))
    w = parse_expr("sum(x) without (instance)")
    assert isinstance(w, ast.AggregateExpr) and w.without and w.grouping == ("instance",)
    assert parse_expr("count_values('v', x)").param == ast.StringLiteral("v", (13, 16))  # type: ignore[attr-defined]


def test_calls_carry_return_type() -> None:
    n = parse_expr("scalar(x)")
    assert isinstance(n, ast.Call) and n.return_type == "scalar" and n.type() == "scalar"
    assert parse_expr("time()").type() == "scalar"
    assert parse_expr("label_join(x, 'a', ',', 'b', 'c', 'd')").type() == "vector"


def test_keywords_usable_as_names() -> None:
    for q in ("sum", "by", "offset", "min{a='b'}", "start", "x + without"):
        parse_expr(q)
    n = parse_expr("sum by (by, on, offset) (x)")
    assert isinstance(n, ast.AggregateExpr) and n.grouping == ("by", "on", "offset")


def test_experimental_functions_opt_in() -> None:
    with pytest.raises(ParseError, match="is not enabled"):
        parse_expr('sort_by_label(x, "a")')
    node = parse_expr('sort_by_label(x, "a")', experimental=True)
    assert isinstance(node, ast.Call) and node.func == "sort_by_label"
    assert parse_expr("limitk(2, x)", experimental=True).type() == "vector"


def test_depth_limit_is_a_clear_error_not_a_crash() -> None:
    deep = "(" * (MAX_DEPTH + 5) + "1" + ")" * (MAX_DEPTH + 5)
    with pytest.raises(ParseError, match="nesting depth exceeds"):
        parse_expr(deep)
    chain = " + ".join(["x"] * (MAX_DEPTH + 5))
    with pytest.raises(ParseError, match="nesting depth exceeds"):
        parse_expr(chain)
    unary = "-" * 10_000 + "x"
    with pytest.raises(ParseError, match="nesting depth exceeds"):
        parse_expr(unary)
    ok = "(" * 50 + "1" + ")" * 50
    assert format_expr(parse_expr(ok)).count("(") == 50


def test_long_queries_are_fine() -> None:
    selector = "x{" + ",".join(f'l{i}="{"v" * 50}"' for i in range(2000)) + "}"
    assert len(parse_expr(selector).matchers) == 2001  # type: ignore[attr-defined]
    wide = "sum(" + " or ".join(["up"] * 150) + ")"
    assert isinstance(parse_expr(wide), ast.AggregateExpr)


def test_bad_input_types_are_errors() -> None:
    with pytest.raises(ParseError, match="must be a string"):
        parse_expr(b"up")  # type: ignore[arg-type]
    with pytest.raises(ParseError, match="no expression found"):
        parse_expr("   # only a comment")


def test_parse_series_selector() -> None:
    sel = parse_series_selector('up{job="api"}')
    assert sel.name == "up" and len(sel.matchers) == 2
    assert parse_series_selector('{__name__=~"x.*"}').name is None
    # Like Prometheus's ParseMetricSelector, empty-matching selectors parse; the
    # HTTP API rejects them with its own "match[] must contain ..." message.
    assert parse_series_selector('{a=""}').matchers[0].name == "a"
    for bad, msg in [
        ("rate(x[5m])", "unexpected"),
        ("up[5m]", "unexpected"),
        ("", "no expression found"),
    ]:
        with pytest.raises(ParseError, match=msg):
            parse_series_selector(bad)


def test_parse_duration_public() -> None:
    assert parse_duration("1h30m") == 5_400_000
    with pytest.raises(ParseError, match='not a valid duration string: "5m1h"'):
        parse_duration("5m1h")


def test_thread_safe_parsing() -> None:
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(200):
                n = parse_expr("sum by (job) (rate(x{a=~'b.*'}[5m])) / on(job) group_left y")
                assert isinstance(n, ast.BinaryExpr)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
