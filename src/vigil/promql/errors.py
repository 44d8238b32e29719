"""PromQL errors, each carrying the Prometheus API `errorType` it maps to."""

from __future__ import annotations


class PromQLError(Exception):
    """Base class. `error_type` is the value of `errorType` in API error responses."""

    error_type = "execution"


class ParseError(PromQLError):
    """Syntax or type error in a query; `position` is the 0-based character offset."""

    error_type = "bad_data"

    def __init__(self, message: str, position: int | None = None, end: int | None = None) -> None:
        self.message = message
        self.position = position
        self.end = end
        super().__init__(self.__str__())

    def __str__(self) -> str:
        if self.position is None:
            return self.message
        return f"{self.message} (at char {self.position})"


class ExecutionError(PromQLError):
    """Evaluation failed (many-to-many matching, duplicate series, bad argument...)."""

    error_type = "execution"


class TooManySamplesError(ExecutionError):
    error_type = "execution"

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"query processing would load too many samples into memory in query execution (limit {limit})"
        )


class QueryTimeoutError(PromQLError):
    error_type = "timeout"

    def __init__(self, where: str = "query execution") -> None:
        super().__init__(f"query timed out in {where}")


class QueryCanceledError(PromQLError):
    error_type = "canceled"
