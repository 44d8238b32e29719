"""Types shared by the exposition parsers (re-exported by `vigil.scrape.exposition`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

NO_TIMESTAMP: int = int(np.iinfo(np.int64).min)
"""Timestamp value for a sample whose line carries no timestamp."""

INT64_MAX = int(np.iinfo(np.int64).max)

METRIC_TYPES = frozenset(
    {"counter", "gauge", "histogram", "summary", "unknown", "info", "stateset", "gaugehistogram"}
)


class ExpositionError(ValueError):
    """A body that does not parse. `line` is 1-based and counts from the start of the body
    (or of the whole stream for `iter_parse`); `message` says what was expected and found."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message


@dataclass(frozen=True, slots=True)
class MetricMetadata:
    """HELP/TYPE/UNIT of one metric family. `type` is one of `METRIC_TYPES`
    (Prometheus text's 'untyped' is reported as 'unknown'); absent fields are ''."""

    type: str
    help: str
    unit: str


@dataclass(frozen=True, slots=True)
class Exemplar:
    """An OpenMetrics exemplar attached to the sample at `index` in its Exposition."""

    index: int
    labels: tuple[tuple[str, str], ...]
    value: float
    timestamp: int  # ms, or NO_TIMESTAMP


@dataclass(slots=True)
class Exposition:
    """One parsed body (or one chunk of a streamed body), column-oriented.

    `keys[i]` is sample i's series text exactly as written (name and label block, e.g.
    ``up{job="x"}``); the same series written the same way yields the same key, so
    callers cache `labels_of(key)` and their series refs by it. `values` is float64,
    `timestamps` int64 milliseconds with `NO_TIMESTAMP` where the line had none.
    `metadata` maps family name to its metadata, for families that had at least one
    HELP/TYPE/UNIT line. The arrays are freshly allocated and owned by the caller.
    """

    keys: list[str]
    values: np.ndarray
    timestamps: np.ndarray
    metadata: dict[str, MetricMetadata]
    openmetrics: bool
    exemplars: list[Exemplar] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.keys)
