"""The table of PromQL function signatures: name -> argument types, arity, return type.

Only signatures live here (the parser type-checks calls against them); the
implementations are the engine's (`vigil.promql.functions_table`). Mirrors the
function list of Prometheus 3.x, including its experimental functions, which the
parser refuses unless asked to enable them.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from vigil.promql.parser.ast import ValueType


@dataclass(frozen=True, slots=True)
class Function:
    """A function signature.

    `arg_types`: the type of each argument. `variadic`: 0 = exactly
    `len(arg_types)` arguments; n > 0 = the last argument type may repeat so that up
    to `len(arg_types) - 1 + n` arguments are given (the last one is optional);
    -1 = the last argument type may repeat without limit. `experimental`: refused
    unless the parser is asked to enable experimental functions."""

    name: str
    arg_types: tuple[ValueType, ...]
    return_type: ValueType
    variadic: int = 0
    experimental: bool = False

    @property
    def min_args(self) -> int:
        return len(self.arg_types) if self.variadic == 0 else len(self.arg_types) - 1

    @property
    def max_args(self) -> int | None:
        """Largest argument count, or None when unbounded."""
        if self.variadic == 0:
            return len(self.arg_types)
        if self.variadic < 0:
            return None
        return len(self.arg_types) - 1 + self.variadic


def _f(
    name: str,
    arg_types: tuple[ValueType, ...],
    return_type: ValueType,
    *,
    variadic: int = 0,
    experimental: bool = False,
) -> Function:
    return Function(name, arg_types, return_type, variadic, experimental)


_ALL = (
    _f("abs", ("vector",), "vector"),
    _f("absent", ("vector",), "vector"),
    _f("absent_over_time", ("matrix",), "vector"),
    _f("acos", ("vector",), "vector"),
    _f("acosh", ("vector",), "vector"),
    _f("asin", ("vector",), "vector"),
    _f("asinh", ("vector",), "vector"),
    _f("atan", ("vector",), "vector"),
    _f("atanh", ("vector",), "vector"),
    _f("avg_over_time", ("matrix",), "vector"),
    _f("ceil", ("vector",), "vector"),
    _f("changes", ("matrix",), "vector"),
    _f("clamp", ("vector", "scalar", "scalar"), "vector"),
    _f("clamp_max", ("vector", "scalar"), "vector"),
    _f("clamp_min", ("vector", "scalar"), "vector"),
    _f("cos", ("vector",), "vector"),
    _f("cosh", ("vector",), "vector"),
    _f("count_over_time", ("matrix",), "vector"),
    _f("day_of_month", ("vector",), "vector", variadic=1),
    _f("day_of_week", ("vector",), "vector", variadic=1),
    _f("day_of_year", ("vector",), "vector", variadic=1),
    _f("days_in_month", ("vector",), "vector", variadic=1),
    _f("deg", ("vector",), "vector"),
    _f("delta", ("matrix",), "vector"),
    _f("deriv", ("matrix",), "vector"),
    _f("double_exponential_smoothing", ("matrix", "scalar", "scalar"), "vector", experimental=True),
    _f("end", (), "scalar", experimental=True),
    _f("exp", ("vector",), "vector"),
    _f("first_over_time", ("matrix",), "vector"),
    _f("floor", ("vector",), "vector"),
    _f("histogram_avg", ("vector",), "vector"),
    _f("histogram_count", ("vector",), "vector"),
    _f("histogram_fraction", ("scalar", "scalar", "vector"), "vector"),
    _f("histogram_quantile", ("scalar", "vector"), "vector"),
    _f(
        "histogram_quantiles",
        ("vector", "string", "scalar", "scalar"),
        "vector",
        variadic=9,
        experimental=True,
    ),
    _f("histogram_stddev", ("vector",), "vector"),
    _f("histogram_stdvar", ("vector",), "vector"),
    _f("histogram_sum", ("vector",), "vector"),
    _f("hour", ("vector",), "vector", variadic=1),
    _f("idelta", ("matrix",), "vector"),
    _f("increase", ("matrix",), "vector"),
    _f("info", ("vector", "vector"), "vector", variadic=1, experimental=True),
    _f("irate", ("matrix",), "vector"),
    _f("label_join", ("vector", "string", "string", "string"), "vector", variadic=-1),
    _f("label_replace", ("vector", "string", "string", "string", "string"), "vector"),
    _f("last_over_time", ("matrix",), "vector"),
    _f("ln", ("vector",), "vector"),
    _f("log10", ("vector",), "vector"),
    _f("log2", ("vector",), "vector"),
    _f("mad_over_time", ("matrix",), "vector", experimental=True),
    _f("max_of", ("scalar", "scalar"), "scalar", experimental=True),
    _f("max_over_time", ("matrix",), "vector"),
    _f("min_of", ("scalar", "scalar"), "scalar", experimental=True),
    _f("min_over_time", ("matrix",), "vector"),
    _f("minute", ("vector",), "vector", variadic=1),
    _f("month", ("vector",), "vector", variadic=1),
    _f("pi", (), "scalar"),
    _f("predict_linear", ("matrix", "scalar"), "vector"),
    _f("present_over_time", ("matrix",), "vector"),
    _f("quantile_over_time", ("scalar", "matrix"), "vector"),
    _f("rad", ("vector",), "vector"),
    _f("range", (), "scalar", experimental=True),
    _f("rate", ("matrix",), "vector"),
    _f("resets", ("matrix",), "vector"),
    _f("round", ("vector", "scalar"), "vector", variadic=1),
    _f("scalar", ("vector",), "scalar"),
    _f("sgn", ("vector",), "vector"),
    _f("sin", ("vector",), "vector"),
    _f("sinh", ("vector",), "vector"),
    _f("sort", ("vector",), "vector"),
    _f("sort_by_label", ("vector", "string"), "vector", variadic=-1, experimental=True),
    _f("sort_by_label_desc", ("vector", "string"), "vector", variadic=-1, experimental=True),
    _f("sort_desc", ("vector",), "vector"),
    _f("sqrt", ("vector",), "vector"),
    _f("start", (), "scalar", experimental=True),
    _f("start_timestamp", ("vector",), "vector", experimental=True),
    _f("stddev_over_time", ("matrix",), "vector"),
    _f("stdvar_over_time", ("matrix",), "vector"),
    _f("step", (), "scalar", experimental=True),
    _f("sum_over_time", ("matrix",), "vector"),
    _f("tan", ("vector",), "vector"),
    _f("tanh", ("vector",), "vector"),
    _f("time", (), "scalar"),
    _f("timestamp", ("vector",), "vector"),
    _f("ts_of_first_over_time", ("matrix",), "vector", experimental=True),
    _f("ts_of_last_over_time", ("matrix",), "vector", experimental=True),
    _f("ts_of_max_over_time", ("matrix",), "vector", experimental=True),
    _f("ts_of_min_over_time", ("matrix",), "vector", experimental=True),
    _f("vector", ("scalar",), "vector"),
    _f("year", ("vector",), "vector", variadic=1),
)

FUNCTIONS: MappingProxyType[str, Function] = MappingProxyType({f.name: f for f in _ALL})
"""Every known function by name (read-only)."""


def get_function(name: str) -> Function | None:
    """The signature of `name` (case-sensitive, as in Prometheus), or None."""
    return FUNCTIONS.get(name)
