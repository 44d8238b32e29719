"""What the engine returns: the four PromQL value types, in array form.

The HTTP layer formats these into Prometheus's JSON; the rule engine reads them
directly. Timestamps are int ms. A `Matrix` series keeps its samples as numpy arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from vigil.model.labels import Labels


@dataclass(slots=True)
class Sample:
    """One element of an instant vector."""

    labels: Labels
    t: int
    v: float


@dataclass(slots=True)
class Series:
    """One series of a range-query result (or of a range-vector literal result)."""

    labels: Labels
    timestamps: np.ndarray  # int64 ms, ascending
    values: np.ndarray  # float64


@dataclass(slots=True)
class Scalar:
    t: int
    v: float


@dataclass(slots=True)
class String:
    t: int
    v: str


ResultType = Literal["vector", "matrix", "scalar", "string"]


@dataclass(slots=True)
class QueryStats:
    total_samples: int = 0
    peak_samples: int = 0
    exec_seconds: float = 0.0


@dataclass(slots=True)
class QueryResult:
    """`value` is list[Sample] for vector, list[Series] for matrix, Scalar or String."""

    result_type: ResultType
    value: list[Sample] | list[Series] | Scalar | String
    warnings: list[str] = field(default_factory=list)
    infos: list[str] = field(default_factory=list)
    stats: QueryStats = field(default_factory=QueryStats)
