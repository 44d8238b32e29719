"""The narrow interfaces between ingestion, the store and queries."""

from vigil.storage.interface import (
    Appendable,
    Appender,
    AppendError,
    CommitStats,
    DuplicateSampleError,
    FlatSeries,
    OutOfBoundsError,
    OutOfOrderSampleError,
    Querier,
    Queryable,
    SelectHints,
    SeriesData,
    SeriesList,
    SeriesRef,
    UnknownSeriesRefError,
)

__all__ = [
    "AppendError",
    "Appendable",
    "Appender",
    "CommitStats",
    "DuplicateSampleError",
    "FlatSeries",
    "OutOfBoundsError",
    "OutOfOrderSampleError",
    "Querier",
    "Queryable",
    "SelectHints",
    "SeriesData",
    "SeriesList",
    "SeriesRef",
    "UnknownSeriesRefError",
]
