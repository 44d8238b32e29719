"""Printer: canonical output and parse(print(parse(q))) == parse(q) for fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from vigil.model.matchers import Matcher
from vigil.promql.parser import ast, ast_equal, format_expr, parse_expr

FIXTURES = Path(__file__).parent / "fixtures"


def _queries(name: str) -> list[str]:
    lines = (FIXTURES / name).read_text(encoding="utf-8").splitlines()
    return [ln for ln in lines if ln.strip() and not ln.startswith("#")]


@pytest.mark.parametrize("query", _queries("roundtrip.txt"))
def test_roundtrip(query: str) -> None:
    tree = parse_expr(query)
    printed = format_expr(tree)
    again = parse_expr(printed)
    assert ast_equal(tree, again), (query, printed)
    # Printing is a fixed point: canonical text prints to itself.
    assert format_expr(again) == printed


@pytest.mark.parametrize(
    ("query", "canonical"),
    [
        ("sum(rate(x[5m])) by (job)", "sum by (job) (rate(x[5m]))"),
        ("SUM WITHOUT(a,b)(x)", "sum without (a, b) (x)"),
        ('x{b="2",a="1"}', 'x{a="1",b="2"}'),
        ('{"my.metric"}', '{__name__="my.metric"}'),
        ('x{"a.b"="c"}', 'x{"a.b"="c"}'),
        ("x offset 5m @ 10", "x @ 10.000 offset 5m"),
        ("x[90s] offset -1h30m", "x[1m30s] offset -1h30m"),
        ("rate(x[5m])[1h:]", "rate(x[5m])[1h:]"),
        ("a/on(b)group_left(c)d", "a / on (b) group_left (c) d"),
        ("a and b", "a and b"),
        ("a>bool 1", "a > bool 1"),
        ("1e3", "1000"),
        ("0x10", "16"),
        ("-inf", "-Inf"),
        ("1e21", "1000000000000000000000"),
        ("5m", "300"),
        ('"\\x41\\u00e9\\n"', '"Aé\\n"'),
        ("'it''s'", None),
        ("count_values('v', x)", 'count_values("v", x)'),
        ("topk(3,x)", "topk(3, x)"),
    ],
)
def test_canonical_text(query: str, canonical: str | None) -> None:
    if canonical is None:
        with pytest.raises(Exception):  # noqa: B017 - any parse error
            parse_expr(query)
        return
    assert format_expr(parse_expr(query)) == canonical


def test_hand_built_tree_gets_needed_parentheses() -> None:
    a = ast.VectorSelector("a", (Matcher.equal("__name__", "a"),))
    b = ast.VectorSelector("b", (Matcher.equal("__name__", "b"),))
    one = ast.NumberLiteral(1.0)
    tree = ast.BinaryExpr("*", ast.BinaryExpr("+", a, b), one)
    assert format_expr(tree) == "(a + b) * 1"
    right = ast.BinaryExpr("-", one, ast.BinaryExpr("-", a, b))
    assert format_expr(right) == "1 - (a - b)"
    power = ast.BinaryExpr("^", ast.NumberLiteral(-2.0), ast.NumberLiteral(2.0))
    assert format_expr(power) == "(-2) ^ 2"
    assert parse_expr(format_expr(power)).type() == "scalar"


def test_ast_equal_ignores_positions_and_matcher_order() -> None:
    assert ast_equal(parse_expr("x{a='1',b='2'}"), parse_expr('  x{b="2", a="1"}'))
    assert ast_equal(parse_expr("NaN"), parse_expr("nan"))
    assert not ast_equal(parse_expr("x offset 1m"), parse_expr("x"))
    assert not ast_equal(parse_expr("a + b"), parse_expr("a - b"))
