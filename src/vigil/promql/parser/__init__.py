"""PromQL parser: lexer, AST, parser and printer, kept apart from the engine.

Public API:

- `parse_expr(query, *, experimental=False) -> Expr`: parse and type-check a query.
- `parse_series_selector(text) -> VectorSelector`: a bare selector (API `match[]`).
- `parse_duration(text) -> int`: a PromQL duration (`1h30m`) in milliseconds.
- `format_expr(expr) -> str`: canonical PromQL text, as Prometheus prints it.
- `ast_equal(a, b) -> bool`: structural AST equality ignoring positions.

All parse failures raise `PromQLParseError` (a `vigil.promql.errors.ParseError`)
whose `position` is the 0-based character offset and whose `str()` reads like
Prometheus's: `1:14: parse error: unexpected end of input`. Thread-safe.
"""

from __future__ import annotations

from vigil.model.duration import format_duration
from vigil.model.duration import parse_duration as _parse_duration_ms
from vigil.promql.parser import ast
from vigil.promql.parser.ast import Expr, VectorSelector
from vigil.promql.parser.lexer import PromQLParseError
from vigil.promql.parser.parser import MAX_DEPTH, Parser
from vigil.promql.parser.printer import ast_equal, format_expr


def parse_expr(query: str, *, experimental: bool = False) -> Expr:
    """Parse and type-check `query`. `experimental=True` accepts Prometheus's
    experimental functions and aggregators (`sort_by_label`, `limitk`, ...).
    Raises PromQLParseError."""
    if not isinstance(query, str):
        raise PromQLParseError(f"query must be a string, got {type(query).__name__}")
    return Parser(query, experimental=experimental).parse()


def parse_series_selector(text: str) -> VectorSelector:
    """Parse a series selector such as `up{job="api"}` or `{__name__=~"x.*"}` (the
    form the HTTP API's `match[]` takes). Raises PromQLParseError."""
    if not isinstance(text, str):
        raise PromQLParseError(f"selector must be a string, got {type(text).__name__}")
    return Parser(text).parse_selector()


def parse_duration(text: str) -> int:
    """A PromQL duration (`5m`, `1h30m`, `1d`, `1w`, `1y`, `500ms`, `0`) in int
    milliseconds. Raises PromQLParseError naming the text when it is invalid."""
    try:
        return _parse_duration_ms(text)
    except ValueError as exc:
        raise PromQLParseError(str(exc)) from None


__all__ = [
    "MAX_DEPTH",
    "Expr",
    "PromQLParseError",
    "VectorSelector",
    "ast",
    "ast_equal",
    "format_duration",
    "format_expr",
    "parse_duration",
    "parse_expr",
    "parse_series_selector",
]
