"""PromQL parser: tokens -> AST, then Prometheus's type checks.

A hand-written precedence-climbing parser that accepts the language Prometheus 3.x's
yacc grammar accepts for float samples, with the same operator precedence
(`or` < `and unless` < comparisons < `+ -` < `* / % atan2` < `^`, `^` right
associative, unary minus binding like `*`, and `[...]`, `offset`, `@` binding
tightest) and the same error messages. Experimental syntax (duration expressions,
`fill()` modifiers, `anchored`/`smoothed`, experimental functions) is refused with a
clear error unless `experimental=True` enables the experimental functions.

Recursion is bounded: expressions nested deeper than `MAX_DEPTH` are refused with a
parse error rather than exhausting the Python stack. One `Parser` per query; not
thread-safe, but `parse_expr` builds a fresh one per call, so that is thread-safe.
"""

from __future__ import annotations

import dataclasses
import math
import re

from vigil.model.duration import parse_duration
from vigil.model.labels import METRIC_NAME
from vigil.model.matchers import InvalidRegexError, Matcher, MatchType
from vigil.promql.parser import ast
from vigil.promql.parser.functions import get_function
from vigil.promql.parser.lexer import (
    AGGREGATORS,
    AGGREGATORS_WITH_PARAM,
    DURATION,
    EOF,
    IDENT,
    KEYWORDS,
    METRIC_IDENT,
    NUMBER,
    STRING,
    Lexer,
    PromQLParseError,
    Token,
    go_quote,
    parse_number,
)

MAX_DEPTH = 200
"""Deepest accepted expression nesting (parentheses, calls, operator chains)."""

BINARY_PRECEDENCE = {
    "or": 1,
    "and": 2,
    "unless": 2,
    "==": 3,
    "!=": 3,
    "<": 3,
    "<=": 3,
    ">": 3,
    ">=": 3,
    "+": 4,
    "-": 4,
    "*": 5,
    "/": 5,
    "%": 5,
    "atan2": 5,
    "^": 6,
}
COMPARISON_OPS = frozenset({"==", "!=", "<", "<=", ">", ">="})
SET_OPS = frozenset({"and", "or", "unless"})
_UNARY_OPERAND_PREC = 6  # unary +/- has the precedence of `*`: only `^` binds tighter
_MATCH_OPS = {
    "=": MatchType.EQUAL,
    "!=": MatchType.NOT_EQUAL,
    "=~": MatchType.REGEX,
    "!~": MatchType.NOT_REGEX,
}
# Keywords that may also stand for a metric name (Prometheus's `metric_identifier`).
_METRIC_NAME_KEYWORDS = (
    AGGREGATORS
    | {"by", "without", "offset", "and", "or", "unless", "fill", "fill_left", "fill_right"}
    | {"start", "end", "step", "range", "anchored", "smoothed", "max_of", "min_of"}
)
_DURATION_KEYWORDS = frozenset({"step", "range", "max_of", "min_of"})
_EXPERIMENTAL_AGGREGATORS = frozenset({"limitk", "limit_ratio"})
_MAX_DURATION_SECONDS = (1 << 63) / 1e9

DOCUMENTED_TYPE = {
    "scalar": "scalar",
    "vector": "instant vector",
    "matrix": "range vector",
    "string": "string",
}


def _round_half_away(x: float) -> int:
    """Go's math.Round (half away from zero), as int."""
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def _valid_label_name(name: str) -> bool:
    # Prometheus 3 (UTF-8 names): any non-empty valid UTF-8 string.
    if name == "":
        return False
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class Parser:
    """Parses one query. Use `parse()` once."""

    def __init__(self, query: str, *, experimental: bool = False) -> None:
        self.query = query
        self.lex = Lexer(query)
        self.experimental = experimental
        self.buf: list[Token] = []
        self.tok = self._pull()
        self.prev_end = 0
        self.nesting = 0
        self._depths: dict[int, int] = {}
        self._op_pos: dict[int, int] = {}

    # -- token plumbing -----------------------------------------------------------------

    def _pull(self) -> Token:
        return self.buf.pop(0) if self.buf else self.lex.next()

    def advance(self) -> Token:
        t = self.tok
        self.prev_end = t.end
        self.tok = self._pull()
        return t

    def peek2(self) -> Token:
        """The token after the current one."""
        if not self.buf:
            self.buf.append(self.lex.next())
        return self.buf[0]

    def error(self, message: str, pos: int, end: int | None = None) -> PromQLParseError:
        return PromQLParseError(message, pos, end, self.query)

    def unexpected(self, context: str = "", expected: str = "") -> PromQLParseError:
        msg = "unexpected " + self.tok.describe()
        if context:
            msg += " in " + context
        if expected:
            msg += ", expected " + expected
        return self.error(msg, self.tok.pos)

    def expect(self, kind: str, context: str = "", expected: str = "") -> Token:
        if self.tok.kind != kind:
            raise self.unexpected(context, expected)
        return self.advance()

    def _d(self, node: ast.Expr, *children: ast.Expr | None) -> ast.Expr:
        """Record `node`'s depth (from its children's) and enforce MAX_DEPTH."""
        depth = 1 + max((self._depths.get(id(c), 1) for c in children if c is not None), default=0)
        if depth > MAX_DEPTH:
            raise self.error(
                f"expression nesting depth exceeds the limit of {MAX_DEPTH}", node_pos(node)[0]
            )
        self._depths[id(node)] = depth
        return node

    # -- entry points ---------------------------------------------------------------------

    def parse(self) -> ast.Expr:
        if self.tok.kind == EOF:
            raise self.error("no expression found in input", 0)
        expr = self.parse_expr(1)
        if self.tok.kind != EOF:
            raise self.unexpected()
        return Checker(self).check(expr)[0]

    def parse_selector(self) -> ast.VectorSelector:
        """A bare series selector (`name{...}`), as the API's `match[]` takes."""
        if self.tok.kind == EOF:
            raise self.error("no expression found in input", 0)
        t = self.tok
        if t.kind in (IDENT, METRIC_IDENT) or t.kind in _METRIC_NAME_KEYWORDS:
            self.advance()
            sel = self.vector_selector(t.val, t.pos)
        elif t.kind == "{":
            sel = self.vector_selector(None, t.pos)
        else:
            raise self.unexpected("", "vector selector")
        if self.tok.kind != EOF:
            raise self.unexpected()
        checker = Checker(self)
        # As Prometheus's ParseMetricSelector: the API itself rejects selectors
        # whose matchers all match the empty string, with its own message.
        checker.bypass_empty_check.add(id(sel))
        checker.check(sel)
        return sel

    # -- expressions ----------------------------------------------------------------------

    def parse_expr(self, min_prec: int) -> ast.Expr:
        self.nesting += 1
        if self.nesting > MAX_DEPTH:
            raise self.error(
                f"expression nesting depth exceeds the limit of {MAX_DEPTH}", self.tok.pos
            )
        lhs = self.parse_unary()
        while True:
            t = self.tok
            prec = BINARY_PRECEDENCE.get(t.kind)
            if prec is None:
                if t.kind in ("</", ">/"):
                    raise self.error(
                        f"binary operator {go_quote(t.val)} is experimental and not enabled",
                        t.pos,
                    )
                break
            if prec < min_prec:
                break
            self.advance()
            return_bool, matching = self.binary_modifiers()
            rhs = self.parse_expr(prec if t.kind == "^" else prec + 1)
            start = node_pos(lhs)[0]
            node = ast.BinaryExpr(
                t.kind, lhs, rhs, return_bool, matching, (start, node_pos(rhs)[1])
            )
            self._op_pos[id(node)] = t.pos
            lhs = self._d(node, lhs, rhs)
        self.nesting -= 1
        return lhs

    def binary_modifiers(self) -> tuple[bool, ast.VectorMatching]:
        return_bool = False
        if self.tok.kind == "bool":
            self.advance()
            return_bool = True
        card: ast.Cardinality = "one-to-one"
        labels: tuple[str, ...] = ()
        include: tuple[str, ...] = ()
        on = False
        if self.tok.kind in ("on", "ignoring"):
            on = self.advance().kind == "on"
            labels = self.grouping_labels()
            if self.tok.kind in ("group_left", "group_right"):
                card = "many-to-one" if self.advance().kind == "group_left" else "one-to-many"
                if self.tok.kind == "(":
                    include = self.grouping_labels()
        if self.tok.kind in ("fill", "fill_left", "fill_right"):
            raise self.error("binop fill modifiers are experimental and not enabled", self.tok.pos)
        return return_bool, ast.VectorMatching(card, labels, on, include)

    def parse_unary(self) -> ast.Expr:
        t = self.tok
        if t.kind not in ("+", "-"):
            return self.parse_postfix(self.parse_primary())
        self.advance()
        operand = self.parse_expr(_UNARY_OPERAND_PREC)
        end = node_pos(operand)[1]
        if isinstance(operand, ast.NumberLiteral):
            value = -operand.value if t.kind == "-" else operand.value
            return self._d(ast.NumberLiteral(value, (t.pos, end)))
        return self._d(ast.UnaryExpr(t.kind, operand, (t.pos, end)), operand)

    def parse_primary(self) -> ast.Expr:
        t = self.tok
        k = t.kind
        if k == NUMBER:
            self.advance()
            try:
                value = parse_number(t.val)
            except ValueError as exc:
                raise self.error(f"error parsing number: {exc}", t.pos) from None
            return self._d(ast.NumberLiteral(value, (t.pos, t.end)))
        if k == DURATION:
            self.advance()
            return self._d(ast.NumberLiteral(self.duration_ms(t) / 1000.0, (t.pos, t.end)))
        if k == STRING:
            self.advance()
            return self._d(ast.StringLiteral(t.text, (t.pos, t.end)))
        if k == "(":
            self.advance()
            inner = self.parse_expr(1)
            close = self.expect(")", "", "")
            return self._d(ast.ParenExpr(inner, (t.pos, close.end)), inner)
        if k == "{":
            return self.vector_selector(None, t.pos)
        if k == IDENT:
            self.advance()
            if self.tok.kind == "(":
                return self.call(t)
            return self.vector_selector(t.val, t.pos)
        if k == METRIC_IDENT:
            self.advance()
            return self.vector_selector(t.val, t.pos)
        if k in AGGREGATORS and self.peek2().kind in ("(", "by", "without"):
            return self.aggregation()
        if k in ("start", "end", "step", "range", "max_of", "min_of") and self.peek2().kind == "(":
            self.advance()
            return self.call(t)
        if k in _METRIC_NAME_KEYWORDS:
            self.advance()
            return self.vector_selector(t.val, t.pos)
        raise self.unexpected()

    # -- postfix modifiers: [range], [range:step], offset, @ --------------------------------

    def parse_postfix(self, expr: ast.Expr) -> ast.Expr:
        while True:
            k = self.tok.kind
            if k == "[":
                expr = self.bracket(expr)
            elif k == "offset":
                expr = self.offset(expr)
            elif k == "@":
                expr = self.at(expr)
            elif k in ("anchored", "smoothed"):
                raise self.error(f"{k} modifier is experimental and not enabled", node_pos(expr)[0])
            else:
                return expr

    def bracket(self, expr: ast.Expr) -> ast.Expr:
        lb = self.advance()
        if self.tok.kind in ("]", ":"):
            raise self.unexpected(
                "subquery or range selector", "number, duration, step(), or range()"
            )
        range_ms = self.positive_duration()
        if self.tok.kind == "]":
            rb = self.advance()
            err = None
            if not isinstance(expr, ast.VectorSelector):
                err = "ranges only allowed for vector selectors"
            elif expr.offset_ms != 0:
                err = "no offset modifiers allowed before range"
            elif expr.at is not None or expr.at_modifier is not None:
                err = "no @ modifiers allowed before range"
            if err is not None or not isinstance(expr, ast.VectorSelector):
                raise self.error(err or "", lb.pos, rb.end)
            pos = (node_pos(expr)[0], rb.end)
            return self._d(ast.MatrixSelector(expr, range_ms, pos), expr)
        if self.tok.kind != ":":
            if self.tok.kind in ("+", "-", "*", "/", "%", "^"):
                raise self.error("experimental duration expression is not enabled", lb.pos + 1)
            raise self.unexpected("subquery or range", '":" or "]"')
        self.advance()
        step_ms = 0
        if self.tok.kind != "]":
            step_ms = self.positive_duration()
            if self.tok.kind != "]":
                if self.tok.kind in ("+", "-", "*", "/", "%", "^"):
                    raise self.error("experimental duration expression is not enabled", lb.pos)
                raise self.unexpected("subquery selector", '"]"')
        rb = self.advance()
        pos = (node_pos(expr)[0], rb.end)
        return self._d(ast.SubqueryExpr(expr, range_ms, step_ms, pos=pos), expr)

    def duration_ms(self, t: Token) -> int:
        try:
            return parse_duration(t.val)
        except ValueError as exc:
            raise self.error(str(exc), t.pos) from None

    def signed_duration_literal(self, context: str, expected: str) -> tuple[int, int]:
        """`[+-](NUMBER|DURATION)` -> (milliseconds, start position)."""
        start = self.tok.pos
        sign = 1
        if self.tok.kind in ("+", "-"):
            sign = -1 if self.advance().kind == "-" else 1
        t = self.tok
        if t.kind == DURATION:
            self.advance()
            return sign * self.duration_ms(t), start
        if t.kind == NUMBER:
            self.advance()
            try:
                seconds = parse_number(t.val)
            except ValueError as exc:
                raise self.error(f"error parsing number: {exc}", t.pos) from None
            if not math.isfinite(seconds) or abs(seconds) > _MAX_DURATION_SECONDS:
                raise self.error("duration out of range", start)
            return sign * _round_half_away(seconds * 1000.0), start
        if t.kind == "(" or t.kind in _DURATION_KEYWORDS:
            raise self.error("experimental duration expression is not enabled", t.pos)
        raise self.unexpected(context, expected)

    def positive_duration(self) -> int:
        ms, start = self.signed_duration_literal(
            "subquery or range selector", "number, duration, step(), or range()"
        )
        if ms <= 0:
            raise self.error("duration must be greater than 0", start)
        return ms

    def offset(self, expr: ast.Expr) -> ast.Expr:
        self.advance()
        ms, _ = self.signed_duration_literal("offset", "number, duration, step(), or range()")
        target = expr.selector if isinstance(expr, ast.MatrixSelector) else expr
        if not isinstance(target, (ast.VectorSelector, ast.SubqueryExpr)):
            raise self.error(
                "offset modifier must be preceded by an instant vector selector or range "
                "vector selector or a subquery",
                node_pos(expr)[0],
            )
        if target.offset_ms != 0:
            raise self.error("offset may not be set multiple times", node_pos(expr)[0])
        return self._rewrap(expr, dataclasses.replace(target, offset_ms=ms))

    def at(self, expr: ast.Expr) -> ast.Expr:
        self.advance()
        at: int | None = None
        modifier: ast.AtModifier = None
        if self.tok.kind in ("start", "end"):
            modifier = "start" if self.advance().kind == "start" else "end"
            self.expect("(", "@", "timestamp")
            self.expect(")", "@", "timestamp")
        else:
            sign = 1.0
            if self.tok.kind in ("+", "-"):
                sign = -1.0 if self.advance().kind == "-" else 1.0
            t = self.tok
            if t.kind == NUMBER:
                try:
                    seconds = parse_number(t.val)
                except ValueError as exc:
                    raise self.error(f"error parsing number: {exc}", t.pos) from None
            elif t.kind == DURATION:
                seconds = self.duration_ms(t) / 1000.0
            else:
                raise self.unexpected("@", "timestamp")
            self.advance()
            seconds *= sign
            if not math.isfinite(seconds) or abs(seconds) >= 9.223372036854775e18:
                shown = "+Inf" if seconds == math.inf else "-Inf" if seconds == -math.inf else "NaN"
                if math.isfinite(seconds):
                    shown = f"{seconds:f}"
                raise self.error(
                    f"timestamp out of bounds for @ modifier: {shown}", node_pos(expr)[0]
                )
            at = _round_half_away(seconds * 1000.0)
        target = expr.selector if isinstance(expr, ast.MatrixSelector) else expr
        if not isinstance(target, (ast.VectorSelector, ast.SubqueryExpr)):
            raise self.error(
                "@ modifier must be preceded by an instant vector selector or range vector "
                "selector or a subquery",
                node_pos(expr)[0],
            )
        if target.at is not None or target.at_modifier is not None:
            raise self.error("@ <timestamp> may not be set multiple times", node_pos(expr)[0])
        return self._rewrap(expr, dataclasses.replace(target, at=at, at_modifier=modifier))

    def _rewrap(self, old: ast.Expr, target: ast.VectorSelector | ast.SubqueryExpr) -> ast.Expr:
        """Put a modified selector/subquery back where it came from, extending spans."""
        end = self.prev_end
        if isinstance(old, ast.MatrixSelector):
            assert isinstance(target, ast.VectorSelector)
            self._d(target)
            moved = dataclasses.replace(old, selector=target, pos=(old.pos[0], end))
            return self._d(moved, target)
        node = dataclasses.replace(target, pos=(target.pos[0], end))
        return self._d(node, *_children(node))

    # -- selectors --------------------------------------------------------------------------

    def vector_selector(self, name: str | None, start: int) -> ast.VectorSelector:
        matchers: list[Matcher] = []
        end = self.prev_end
        if self.tok.kind == "{":
            self.advance()
            while self.tok.kind != "}":
                matchers.append(self.label_matcher())
                if self.tok.kind == ",":
                    self.advance()
                elif self.tok.kind != "}":
                    raise self.unexpected("label matching", '"," or "}"')
            end = self.advance().end
        if name is not None:
            matchers.append(Matcher(MatchType.EQUAL, METRIC_NAME, name))
        node = ast.VectorSelector(name, tuple(matchers), pos=(start, end))
        self._d(node)
        return node

    def label_matcher(self) -> Matcher:
        t = self.tok
        if t.kind == IDENT:
            self.advance()
            label = t.val
            if self.tok.kind not in _MATCH_OPS:
                raise self.unexpected("label matching", "label matching operator")
        elif t.kind == STRING:
            self.advance()
            label = t.text
            if self.tok.kind not in _MATCH_OPS:
                # A lone quoted string is the metric name: {"my.metric"}.
                return Matcher(MatchType.EQUAL, METRIC_NAME, t.text)
        else:
            raise self.unexpected("label matching", 'identifier or "}"')
        op = self.advance()
        if self.tok.kind != STRING:
            raise self.unexpected("label matching", "string")
        value = self.advance()
        try:
            return Matcher(_MATCH_OPS[op.kind], label, value.text)
        except InvalidRegexError as exc:
            raise self.error(_regex_error(str(exc), value.text), t.pos, value.end) from None

    # -- calls and aggregations ---------------------------------------------------------------

    def call_args(self) -> list[ast.Expr]:
        self.expect("(")
        args: list[ast.Expr] = []
        if self.tok.kind == ")":
            self.advance()
            return args
        while True:
            args.append(self.parse_expr(1))
            if self.tok.kind == ")":
                self.advance()
                return args
            if self.tok.kind != ",":
                raise self.unexpected()
            comma = self.advance()
            if self.tok.kind == ")":
                raise self.error("trailing commas not allowed in function call args", comma.pos)

    def call(self, name_tok: Token) -> ast.Expr:
        fn = get_function(name_tok.val)
        if fn is None:
            raise self.error(f"unknown function with name {go_quote(name_tok.val)}", name_tok.pos)
        if fn.experimental and not self.experimental:
            raise self.error(f"function {go_quote(fn.name)} is not enabled", name_tok.pos)
        args = self.call_args()
        node = ast.Call(fn.name, tuple(args), fn.return_type, (name_tok.pos, self.prev_end))
        return self._d(node, *args)

    def aggregation(self) -> ast.Expr:
        op_tok = self.advance()
        op = op_tok.kind
        grouping: tuple[str, ...] = ()
        without = False
        modifier_first = self.tok.kind in ("by", "without")
        if modifier_first:
            without = self.advance().kind == "without"
            grouping = self.grouping_labels()
        if self.tok.kind != "(":
            raise self.unexpected("aggregation")
        args = self.call_args()
        if not modifier_first and self.tok.kind in ("by", "without"):
            without = self.advance().kind == "without"
            grouping = self.grouping_labels()
        pos = (op_tok.pos, self.prev_end)
        if not args:
            raise self.error("no arguments for aggregate expression provided", pos[0])
        want = 1
        param: ast.Expr | None = None
        if op in AGGREGATORS_WITH_PARAM:
            if op in _EXPERIMENTAL_AGGREGATORS and not self.experimental:
                raise self.error(
                    f"{op}() is experimental and must be enabled with "
                    "--enable-feature=promql-experimental-functions",
                    pos[0],
                )
            want = 2
            param = args[0]
        if len(args) != want:
            raise self.error(
                "wrong number of arguments for aggregate expression provided, "
                f"expected {want}, got {len(args)}",
                pos[0],
            )
        node = ast.AggregateExpr(op, args[-1], param, grouping, without, pos)
        return self._d(node, args[-1], param)

    def grouping_labels(self) -> tuple[str, ...]:
        if self.tok.kind != "(":
            raise self.unexpected("grouping opts", '"("')
        self.advance()
        labels: list[str] = []
        while self.tok.kind != ")":
            t = self.tok
            if t.kind in (IDENT, METRIC_IDENT) or t.kind in KEYWORDS:
                name = t.val
            elif t.kind == STRING:
                name = t.text
            else:
                raise self.unexpected("grouping opts", "label")
            if not _valid_label_name(name):
                raise self.error(f"invalid label name for grouping: {go_quote(name)}", t.pos)
            self.advance()
            labels.append(name)
            if self.tok.kind == ",":
                self.advance()
            elif self.tok.kind != ")":
                raise self.unexpected("grouping opts", '"," or ")"')
        self.advance()
        return tuple(labels)


def _regex_error(raw: str, pattern: str) -> str:
    """Go-style `error parsing regexp: <reason>: `<pattern>`` from an RE2 error."""
    m = re.search(r"b['\"]([^:'\"]+)", raw)
    reason = m.group(1).strip() if m else "invalid regular expression"
    reason = {"missing )": "missing closing )", "missing ]": "missing closing ]"}.get(
        reason, reason
    )
    return f"error parsing regexp: {reason}: `{pattern}`"


def node_pos(node: ast.Expr) -> ast.Pos:
    return getattr(node, "pos", (0, 0))


def _children(node: ast.Expr) -> tuple[ast.Expr, ...]:
    if isinstance(node, ast.SubqueryExpr):
        return (node.expr,)
    return ()


class Checker:
    """Prometheus's `checkAST`: type checks in its order, and the normalisation it
    does (set operators become many-to-many; scalar operands drop vector matching)."""

    def __init__(self, parser: Parser) -> None:
        self.p = parser
        self.bypass_empty_check: set[int] = set()

    def err(self, message: str, node: ast.Expr) -> PromQLParseError:
        return self.p.error(message, node_pos(node)[0], node_pos(node)[1])

    def expect_type(self, node: ast.Expr, want: str, context: str) -> ast.Expr:
        node, t = self.check(node)
        if t != want:
            raise self.err(
                f"expected type {DOCUMENTED_TYPE[want]} in {context}, got {DOCUMENTED_TYPE[t]}",
                node,
            )
        return node

    def check(self, node: ast.Expr) -> tuple[ast.Expr, ast.ValueType]:
        """Return the checked (normalised) node and its type; raise on type errors."""
        if isinstance(node, ast.NumberLiteral):
            return node, "scalar"
        if isinstance(node, ast.StringLiteral):
            return node, "string"
        if isinstance(node, ast.VectorSelector):
            self.check_selector(node)
            return node, "vector"
        if isinstance(node, ast.MatrixSelector):
            self.check_selector(node.selector)
            return node, "matrix"
        if isinstance(node, ast.ParenExpr):
            inner, t = self.check(node.expr)
            return self._same(node, inner, expr=inner), t
        if isinstance(node, ast.UnaryExpr):
            inner, t = self.check(node.expr)
            if t not in ("scalar", "vector"):
                raise self.err(
                    "unary expression only allowed on expressions of type scalar or instant "
                    f'vector, got "{DOCUMENTED_TYPE[t]}"',
                    node,
                )
            return self._same(node, inner, expr=inner), t
        if isinstance(node, ast.SubqueryExpr):
            inner, t = self.check(node.expr)
            if t != "vector":
                raise self.err(f"subquery is only allowed on instant vector, got {t} instead", node)
            return self._same(node, inner, expr=inner), "matrix"
        if isinstance(node, ast.AggregateExpr):
            return self.check_aggregate(node), "vector"
        if isinstance(node, ast.Call):
            return self.check_call(node), node.return_type
        if isinstance(node, ast.BinaryExpr):
            return self.check_binary(node)
        raise self.err(f"unknown node type: {type(node).__name__}", node)

    @staticmethod
    def _same(node: ast.Expr, child: ast.Expr, **changes: ast.Expr) -> ast.Expr:
        old = next(iter(changes))
        if getattr(node, old) is child:
            return node
        return dataclasses.replace(node, **changes)  # type: ignore[type-var]

    def check_selector(self, node: ast.VectorSelector) -> None:
        if node.name is not None:
            for m in node.matchers[:-1]:
                if m.name == METRIC_NAME:
                    raise self.err(
                        f"metric name must not be set twice: {go_quote(node.name)} or "
                        f"{go_quote(m.value)}",
                        node,
                    )
            return
        if id(node) in self.bypass_empty_check:
            return
        if not any(not m.matches("") for m in node.matchers):
            raise self.err("vector selector must contain at least one non-empty matcher", node)

    def check_aggregate(self, node: ast.AggregateExpr) -> ast.Expr:
        expr = self.expect_type(node.expr, "vector", "aggregation expression")
        param = node.param
        if node.op in ("topk", "bottomk", "quantile", "limitk", "limit_ratio"):
            assert param is not None
            param = self.expect_type(param, "scalar", "aggregation parameter")
        elif node.op == "count_values":
            assert param is not None
            param = self.expect_type(param, "string", "aggregation parameter")
        if expr is node.expr and param is node.param:
            return node
        return dataclasses.replace(node, expr=expr, param=param)

    def check_call(self, node: ast.Call) -> ast.Expr:
        fn = get_function(node.func)
        assert fn is not None
        n = len(node.args)
        if fn.variadic == 0:
            if n != len(fn.arg_types):
                raise self.err(
                    f"expected {len(fn.arg_types)} argument(s) in call to {go_quote(fn.name)}, "
                    f"got {n}",
                    node,
                )
        else:
            if fn.min_args > n:
                raise self.err(
                    f"expected at least {fn.min_args} argument(s) in call to "
                    f"{go_quote(fn.name)}, got {n}",
                    node,
                )
            if fn.max_args is not None and fn.max_args < n:
                raise self.err(
                    f"expected at most {fn.max_args} argument(s) in call to "
                    f"{go_quote(fn.name)}, got {n}",
                    node,
                )
        if fn.name == "info" and n > 1:
            self.check_info_selector(node)
        args = []
        for i, arg in enumerate(node.args):
            checked, t = self.check(arg)
            want = fn.arg_types[min(i, len(fn.arg_types) - 1)]
            if t != want:
                raise self.err(
                    f"expected type {DOCUMENTED_TYPE[want]} in call to function "
                    f"{go_quote(fn.name)}, got {DOCUMENTED_TYPE[t]}",
                    arg,
                )
            args.append(checked)
        if all(a is b for a, b in zip(args, node.args, strict=True)):
            return node
        return dataclasses.replace(node, args=tuple(args))

    def check_info_selector(self, node: ast.Call) -> None:
        """`info(v, {selector})`: the second argument is label matchers only."""
        sel = node.args[1]
        if sel.type() != "vector":
            raise self.err(
                f'expected type instant vector in call to function "info", got '
                f"{DOCUMENTED_TYPE[sel.type()]}",
                node,
            )
        if not isinstance(sel, ast.VectorSelector):
            raise self.err("expected label selectors only", sel)
        if sel.name is not None:
            raise self.err("expected label selectors only, got vector selector instead", sel)
        self.bypass_empty_check.add(id(sel))

    def check_binary(self, node: ast.BinaryExpr) -> tuple[ast.Expr, ast.ValueType]:
        lhs, lt = self.check(node.lhs)
        rhs, rt = self.check(node.rhs)
        op = node.op
        op_pos = self.p._op_pos.get(id(node), node.pos[0])
        matching = node.matching
        if node.return_bool and op not in COMPARISON_OPS:
            raise self.p.error("bool modifier can only be used on comparison operators", op_pos)
        if op in COMPARISON_OPS and not node.return_bool and lt == rt == "scalar":
            raise self.p.error("comparisons between scalars must use BOOL modifier", op_pos)
        if matching is not None:
            if op in SET_OPS and matching.card == "one-to-one":
                matching = dataclasses.replace(matching, card="many-to-many")
            if matching.on:
                for label in matching.labels:
                    if label in matching.include:
                        raise self.p.error(
                            f"label {go_quote(label)} must not occur in ON and GROUP clause "
                            "at once",
                            op_pos,
                        )
        if lt not in ("scalar", "vector"):
            raise self.err(
                "binary expression must contain only scalar and instant vector types", lhs
            )
        if rt not in ("scalar", "vector"):
            raise self.err(
                "binary expression must contain only scalar and instant vector types", rhs
            )
        if (lt != "vector" or rt != "vector") and matching is not None:
            if matching.labels:
                raise self.err("vector matching only allowed between instant vectors", node)
            matching = None
        elif op in SET_OPS and matching is not None:
            if matching.card in ("one-to-many", "many-to-one"):
                raise self.err(f"no grouping allowed for {go_quote(op)} operation", node)
            if matching.card != "many-to-many":
                raise self.err("set operations must always be many-to-many", node)
        if (lt == "scalar" or rt == "scalar") and op in SET_OPS:
            raise self.err(
                f"set operator {go_quote(op)} not allowed in binary scalar expression", node
            )
        t: ast.ValueType = "scalar" if lt == rt == "scalar" else "vector"
        if lhs is node.lhs and rhs is node.rhs and matching == node.matching:
            return node, t
        new = dataclasses.replace(node, lhs=lhs, rhs=rhs, matching=matching)
        return new, t
