"""Shared vocabulary of the built-in exporters.

An exporter is a prometheus_client custom collector: ``collect()`` yields metric
families, built fresh on every call from the source it watches (``/proc``, a Redis
server, a PostgreSQL server, NVML).  Nothing is cached between scrapes, so the
values are as current as the scrape and an exporter holds no background thread.

Exporters never raise from ``collect()`` because the source is misconfigured or
down: they report it with an ``*_up 0`` gauge and a logged reason, as the
community exporters do, so one broken target cannot break a whole ``/metrics``.

Options arrive as a ``Mapping[str, object]``: strings from the command line
(``--option k=v``) or typed values from YAML.  The ``opt_*`` helpers accept both
and raise :class:`ExporterOptionError` with the option's name on bad input.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Protocol, runtime_checkable

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    UnknownMetricFamily,
)

__all__ = [
    "Exporter",
    "ExporterOptionError",
    "Family",
    "opt_bool",
    "opt_float",
    "opt_int",
    "opt_str",
    "reject_unknown",
]

Options = Mapping[str, object]

log = logging.getLogger("vigil.exporters")


class ExporterOptionError(ValueError):
    """An exporter option is unknown or has a value of the wrong shape."""


@runtime_checkable
class Exporter(Protocol):
    """What Vigil needs of a built-in exporter: a collector it can close."""

    name: str

    def collect(self) -> Iterator[Metric]:
        """Yield this scrape's metric families; never raises for a down source."""
        ...

    def describe(self) -> list[Metric]:
        """Return ``[]`` so registering does not trigger a scrape."""
        ...

    def close(self) -> None:
        """Release connections or libraries held between scrapes."""
        ...


_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f", ""}


def opt_str(options: Options, key: str, default: str) -> str:
    """Return option ``key`` as a string, or ``default`` when unset."""
    value = options.get(key)
    return default if value is None else str(value)


def opt_bool(options: Options, key: str, default: bool) -> bool:
    """Return option ``key`` as a bool; accepts true/false/yes/no/1/0/on/off."""
    value = options.get(key)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ExporterOptionError(f"option {key!r}: expected a boolean, got {value!r}")


def opt_float(options: Options, key: str, default: float) -> float:
    """Return option ``key`` as a float."""
    value = options.get(key)
    if value is None:
        return default
    try:
        return float(str(value))
    except ValueError:
        raise ExporterOptionError(f"option {key!r}: expected a number, got {value!r}") from None


def opt_int(options: Options, key: str, default: int) -> int:
    """Return option ``key`` as an int."""
    value = options.get(key)
    if value is None:
        return default
    try:
        return int(str(value))
    except ValueError:
        raise ExporterOptionError(f"option {key!r}: expected an integer, got {value!r}") from None


def opt_regex(options: Options, key: str, default: str) -> re.Pattern[str]:
    """Return option ``key`` compiled as a regular expression."""
    text = opt_str(options, key, default)
    try:
        return re.compile(text)
    except re.error as err:
        raise ExporterOptionError(f"option {key!r}: bad regular expression: {err}") from None


def reject_unknown(exporter: str, options: Options, known: Iterable[str]) -> None:
    """Fail loudly on a misspelt option instead of silently using a default."""
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ExporterOptionError(
            f"exporter {exporter!r}: unknown option(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(known))}"
        )


class Family:
    """Builds one metric family sample by sample, with fixed label names.

    ``kind`` is ``gauge``, ``counter`` or ``untyped``.  Counters must be named
    with ``_total`` (prometheus_client appends it on exposition).  Community
    exporters that name counters without ``_total`` (postgres_exporter,
    dcgm-exporter) are mirrored with ``untyped`` so the exposed sample names
    stay byte-for-byte identical and ``rate()`` still works on them.
    """

    def __init__(self, name: str, doc: str, kind: str, labels: Iterable[str] = ()) -> None:
        self.labels = list(labels)
        self.metric: Metric
        if kind == "gauge":
            self.metric = GaugeMetricFamily(name, doc, labels=self.labels)
        elif kind == "counter":
            if not name.endswith("_total"):
                raise ValueError(f"counter {name!r} must end in _total")
            self.metric = CounterMetricFamily(name, doc, labels=self.labels)
        elif kind == "untyped":
            self.metric = UnknownMetricFamily(name, doc, labels=self.labels)
        else:
            raise ValueError(f"unknown metric kind {kind!r}")

    def add(self, value: float, *label_values: str) -> None:
        """Add one sample; label values in the order of ``labels``."""
        if len(label_values) != len(self.labels):
            raise ValueError(f"{self.metric.name}: expected {len(self.labels)} label values")
        self.metric.add_metric(list(label_values), float(value))  # type: ignore[attr-defined]

    def __bool__(self) -> bool:
        return bool(self.metric.samples)


def up_metric(name: str, doc: str, ok: bool) -> Metric:
    """A single ``*_up`` gauge: 1 when the source answered this scrape."""
    family = GaugeMetricFamily(name, doc)
    family.add_metric([], 1.0 if ok else 0.0)
    return family


class ErrorLogger:
    """Logs a source failure once per distinct reason, not once per scrape.

    A scrape every 15 s against a down database would otherwise fill the log
    with the same line; the reason is logged again when it changes or after
    the source recovered and failed anew.
    """

    def __init__(self, logger: logging.Logger, what: str) -> None:
        self._logger = logger
        self._what = what
        self._last: str | None = None

    def failed(self, reason: str) -> None:
        """Record a failure; logs at WARNING when the reason is new."""
        if reason != self._last:
            self._logger.warning("%s: %s", self._what, reason)
            self._last = reason

    def ok(self) -> None:
        """Record a success; logs recovery after a failure."""
        if self._last is not None:
            self._logger.info("%s: reachable again", self._what)
            self._last = None

    @property
    def last_error(self) -> str | None:
        """The reason of the current failure, or None when healthy."""
        return self._last
