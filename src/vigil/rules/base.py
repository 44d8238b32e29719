"""What recording and alerting rules share: health, timings, the query call.

A rule's `eval` returns the samples to write as ``(labels, t_ms, value)``; the group
appends them. `query` is the callable the rule manager was handed
(``query(expr, t_ms) -> QueryResult``); rules never see the engine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from vigil.model.labels import Labels
from vigil.promql.parser import format_expr, parse_expr
from vigil.promql.result import QueryResult

QueryFunc = Callable[[str, int], QueryResult]
Vector = list[tuple[Labels, int, float]]

HEALTH_UNKNOWN = "unknown"
HEALTH_GOOD = "ok"
HEALTH_BAD = "err"


class RuleEvalError(Exception):
    """A rule evaluation failed; its message becomes the rule's `lastError`."""


@dataclass(slots=True)
class QuerySampleRow:
    labels: Labels
    t: int
    v: float


def query_vector(query: QueryFunc, expr: str, t_ms: int) -> list[QuerySampleRow]:
    """Run `expr` at `t_ms` as Prometheus's EngineQueryFunc: a scalar becomes one
    sample without labels; anything but a vector or scalar is an error."""
    res = query(expr, t_ms)
    if res.result_type == "vector":
        return [QuerySampleRow(s.labels, s.t, s.v) for s in res.value]  # type: ignore[union-attr,arg-type]
    if res.result_type == "scalar":
        return [QuerySampleRow(Labels.EMPTY, t_ms, res.value.v)]  # type: ignore[union-attr,arg-type]
    raise RuleEvalError("rule result is not a vector or scalar")


def canonical_expr(expr: str) -> str:
    """The expression as Prometheus prints it (`rule.Query().String()`)."""
    try:
        return format_expr(parse_expr(expr, experimental=True))
    except Exception:
        return expr


class RuleBase:
    """Health and timing bookkeeping; set by the group after each evaluation."""

    kind = ""

    def __init__(self, name: str, expr: str, labels: dict[str, str]) -> None:
        self.name = name
        self.expr = expr
        self.query_text = canonical_expr(expr)
        self.labels = dict(sorted(labels.items()))
        self.health = HEALTH_UNKNOWN
        self.last_error = ""
        self.last_evaluation_ms: int | None = None
        self.evaluation_time_s = 0.0

    def key(self) -> tuple[str, str, tuple[tuple[str, str], ...]]:
        """Identity used to carry state across a reload (name and labels, as Prometheus)."""
        return (self.kind, self.name, tuple(self.labels.items()))
