"""PromQL printer: AST -> canonical query text, as Prometheus's `String()` prints it.

For a parsed tree the output matches Prometheus (`sum by (job) (rate(x[5m]))`), and
parsing it back yields an equal tree (`ast_equal`). Trees built by hand without
`ParenExpr` nodes get the parentheses their structure needs, so the text always
parses back to the same meaning. Pure functions; thread-safe.
"""

from __future__ import annotations

import dataclasses
import math
from decimal import Decimal

from vigil.model.duration import format_duration
from vigil.model.labels import LABEL_NAME_RE, METRIC_NAME
from vigil.model.matchers import Matcher, MatchType
from vigil.promql.parser import ast
from vigil.promql.parser.lexer import go_quote
from vigil.promql.parser.parser import BINARY_PRECEDENCE as _PREC


def format_number(v: float) -> str:
    """Go's `strconv.FormatFloat(v, 'f', -1, 64)`: shortest digits, no exponent."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    text = format(Decimal(repr(float(v))).normalize(), "f")
    return text


def format_label_name(name: str) -> str:
    return name if LABEL_NAME_RE.match(name) else go_quote(name)


def format_matcher(m: Matcher) -> str:
    return f"{format_label_name(m.name)}{m.type.value}{go_quote(m.value)}"


def _offset_str(ms: int) -> str:
    if ms > 0:
        return f" offset {format_duration(ms)}"
    if ms < 0:
        return f" offset -{format_duration(-ms)}"
    return ""


def _at_str(at: int | None, modifier: ast.AtModifier) -> str:
    if at is not None:
        return f" @ {at / 1000.0:.3f}"
    if modifier is not None:
        return f" @ {modifier}()"
    return ""


def _selector_body(node: ast.VectorSelector) -> str:
    parts = []
    for m in node.matchers:
        if (
            node.name
            and m.name == METRIC_NAME
            and m.type is MatchType.EQUAL
            and m.value == node.name
        ):
            continue
        parts.append(format_matcher(m))
    name = node.name or ""
    if not parts:
        return name
    parts.sort()
    return name + "{" + ",".join(parts) + "}"


def _grouping(labels: tuple[str, ...]) -> str:
    return ", ".join(format_label_name(label) for label in labels)


def _needs_parens(child: ast.Expr, parent_op: str, right: bool) -> bool:
    """Whether a hand-built child needs parentheses to keep its place in the tree."""
    if isinstance(child, ast.BinaryExpr):
        cp, pp = _PREC[child.op], _PREC[parent_op]
        if cp != pp:
            return cp < pp
        # Equal precedence: `^` groups to the right, everything else to the left.
        return not right if parent_op == "^" else right
    if parent_op == "^" and not right:
        if isinstance(child, ast.UnaryExpr):
            return True
        if isinstance(child, ast.NumberLiteral):
            return child.value < 0 or math.copysign(1.0, child.value) < 0
    return False


def _wrap(child: ast.Expr, parent_op: str, right: bool) -> str:
    text = format_expr(child)
    return f"({text})" if _needs_parens(child, parent_op, right) else text


def format_expr(node: ast.Expr) -> str:
    """Canonical PromQL text for `node`."""
    if isinstance(node, ast.NumberLiteral):
        return format_number(node.value)
    if isinstance(node, ast.StringLiteral):
        return go_quote(node.value)
    if isinstance(node, ast.ParenExpr):
        return f"({format_expr(node.expr)})"
    if isinstance(node, ast.VectorSelector):
        return (
            _selector_body(node) + _at_str(node.at, node.at_modifier) + _offset_str(node.offset_ms)
        )
    if isinstance(node, ast.MatrixSelector):
        vs = node.selector
        return (
            f"{_selector_body(vs)}[{format_duration(node.range_ms)}]"
            + _at_str(vs.at, vs.at_modifier)
            + _offset_str(vs.offset_ms)
        )
    if isinstance(node, ast.SubqueryExpr):
        inner = format_expr(node.expr)
        if isinstance(node.expr, (ast.BinaryExpr, ast.UnaryExpr)):
            inner = f"({inner})"
        step = format_duration(node.step_ms) if node.step_ms else ""
        return (
            f"{inner}[{format_duration(node.range_ms)}:{step}]"
            + _at_str(node.at, node.at_modifier)
            + _offset_str(node.offset_ms)
        )
    if isinstance(node, ast.Call):
        return f"{node.func}({', '.join(format_expr(a) for a in node.args)})"
    if isinstance(node, ast.AggregateExpr):
        head = node.op
        if node.without:
            head += f" without ({_grouping(node.grouping)}) "
        elif node.grouping:
            head += f" by ({_grouping(node.grouping)}) "
        args = format_expr(node.expr)
        if node.param is not None:
            args = f"{format_expr(node.param)}, {args}"
        return f"{head}({args})"
    if isinstance(node, ast.UnaryExpr):
        inner = format_expr(node.expr)
        if isinstance(node.expr, ast.BinaryExpr) and _PREC[node.expr.op] < 6:
            inner = f"({inner})"
        return node.op + inner
    if isinstance(node, ast.BinaryExpr):
        return (
            f"{_wrap(node.lhs, node.op, False)} {node.op}"
            f"{' bool' if node.return_bool else ''}{_matching_str(node.matching)} "
            f"{_wrap(node.rhs, node.op, True)}"
        )
    raise TypeError(f"cannot format {type(node).__name__}")


def _matching_str(vm: ast.VectorMatching | None) -> str:
    if vm is None:
        return ""
    out = ""
    grouped = vm.card in ("many-to-one", "one-to-many")
    if vm.labels or vm.on or grouped:
        out = f" {'on' if vm.on else 'ignoring'} ({_grouping(vm.labels)})"
    if grouped:
        side = "left" if vm.card == "many-to-one" else "right"
        out += f" group_{side} ({_grouping(vm.include)})"
    return out


def ast_equal(a: object, b: object) -> bool:
    """Structural equality of two ASTs, ignoring `pos` spans; NaN equals NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        assert isinstance(b, float)
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, Matcher):
        return a == b
    if isinstance(a, ast.VectorSelector):
        assert isinstance(b, ast.VectorSelector)
        # Matcher order carries no meaning (the printer sorts them).
        if sorted(map(format_matcher, a.matchers)) != sorted(map(format_matcher, b.matchers)):
            return False
        return (a.name, a.offset_ms, a.at, a.at_modifier) == (
            b.name,
            b.offset_ms,
            b.at,
            b.at_modifier,
        )
    if isinstance(a, tuple):
        assert isinstance(b, tuple)
        return len(a) == len(b) and all(ast_equal(x, y) for x, y in zip(a, b, strict=True))
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        for f in dataclasses.fields(a):
            if f.name == "pos":
                continue
            if not ast_equal(getattr(a, f.name), getattr(b, f.name)):
                return False
        return True
    return a == b
