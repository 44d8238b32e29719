"""PromQL abstract syntax tree.

Produced by the parser, consumed by the engine, printed back by the printer. Nodes
are immutable. Durations and offsets are int milliseconds; `@` timestamps are int ms.
`pos` is the (start, end) character span of the node in the query, for errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from vigil.model.matchers import Matcher

ValueType = Literal["scalar", "vector", "matrix", "string"]
Pos = tuple[int, int]

AtModifier = Literal["start", "end"] | None


class Expr:
    """Base of all nodes."""

    __slots__ = ()

    def type(self) -> ValueType:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class NumberLiteral(Expr):
    value: float
    pos: Pos = (0, 0)

    def type(self) -> ValueType:
        return "scalar"


@dataclass(frozen=True, slots=True)
class StringLiteral(Expr):
    value: str
    pos: Pos = (0, 0)

    def type(self) -> ValueType:
        return "string"


@dataclass(frozen=True, slots=True)
class VectorSelector(Expr):
    """`name{matchers} offset X @ T`. `matchers` includes the `__name__` matcher
    when a name was given. `at` is set for `@ <number>`; `at_modifier` for
    `@ start()` / `@ end()` (the engine resolves those per query)."""

    name: str | None
    matchers: tuple[Matcher, ...]
    offset_ms: int = 0
    at: int | None = None
    at_modifier: AtModifier = None
    pos: Pos = (0, 0)

    def type(self) -> ValueType:
        return "vector"


@dataclass(frozen=True, slots=True)
class MatrixSelector(Expr):
    """`selector[range]`; offset and @ live on the inner vector selector."""

    selector: VectorSelector
    range_ms: int
    pos: Pos = (0, 0)

    def type(self) -> ValueType:
        return "matrix"


@dataclass(frozen=True, slots=True)
class SubqueryExpr(Expr):
    """`expr[range:step]`; `step_ms == 0` means the default (evaluation interval)."""

    expr: Expr
    range_ms: int
    step_ms: int = 0
    offset_ms: int = 0
    at: int | None = None
    at_modifier: AtModifier = None
    pos: Pos = (0, 0)

    def type(self) -> ValueType:
        return "matrix"


@dataclass(frozen=True, slots=True)
class Call(Expr):
    func: str
    args: tuple[Expr, ...]
    return_type: ValueType = "vector"
    pos: Pos = (0, 0)

    def type(self) -> ValueType:
        return self.return_type


@dataclass(frozen=True, slots=True)
class AggregateExpr(Expr):
    """`op by|without (grouping) (param, expr)`; `param` for topk, quantile, ..."""

    op: str
    expr: Expr
    param: Expr | None = None
    grouping: tuple[str, ...] = ()
    without: bool = False
    pos: Pos = (0, 0)

    def type(self) -> ValueType:
        return "vector"


Cardinality = Literal["one-to-one", "many-to-one", "one-to-many", "many-to-many"]


@dataclass(frozen=True, slots=True)
class VectorMatching:
    """How two vectors' elements pair up. `on=False` means `ignoring(labels)`;
    `include` holds the `group_left/right(...)` labels."""

    card: Cardinality = "one-to-one"
    labels: tuple[str, ...] = ()
    on: bool = False
    include: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class BinaryExpr(Expr):
    """`lhs op rhs`. `matching` is None when either side is a scalar."""

    op: str
    lhs: Expr
    rhs: Expr
    return_bool: bool = False
    matching: VectorMatching | None = None
    pos: Pos = (0, 0)

    def type(self) -> ValueType:
        if self.lhs.type() == "scalar" and self.rhs.type() == "scalar":
            return "scalar"
        return "vector"


@dataclass(frozen=True, slots=True)
class UnaryExpr(Expr):
    op: str  # "-" or "+"
    expr: Expr
    pos: Pos = (0, 0)

    def type(self) -> ValueType:
        return self.expr.type()


@dataclass(frozen=True, slots=True)
class ParenExpr(Expr):
    expr: Expr
    pos: Pos = (0, 0)

    def type(self) -> ValueType:
        return self.expr.type()
