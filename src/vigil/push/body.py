"""A pushed body to metric families, with Pushgateway's rules applied.

Grouping labels (``job`` and the path's labels) override same-named labels of every
pushed series. Samples are grouped into families so that a POST can replace only
the families it carries: a family is the name of a HELP/TYPE line, and a sample
belongs to the family whose name it extends by a known suffix (``_bucket``,
``_sum``, ``_count``, ``_total``, ...). A family with HELP/TYPE lines but no
samples is still a family: a POST carrying it empties it.
"""

from __future__ import annotations

from dataclasses import dataclass

from vigil.model.labels import METRIC_NAME, Labels
from vigil.scrape.exposition import (
    NO_TIMESTAMP,
    ExpositionError,
    MetricMetadata,
    labels_of,
    parse,
)

PUSH_TIME = "push_time_seconds"
PUSH_FAILURE_TIME = "push_failure_time_seconds"
RESERVED_FAMILIES = frozenset({PUSH_TIME, PUSH_FAILURE_TIME})
"""Families Vigil writes itself for every group; pushed ones are dropped (a
Pushgateway overwrites them too)."""

UNTYPED = MetricMetadata("unknown", "", "")

_SUFFIXES = ("_bucket", "_count", "_sum", "_created", "_total", "_info", "_gcount", "_gsum")

PROTOBUF_MEDIA_TYPE = "application/vnd.google.protobuf"

INCONSISTENT = "pushed metrics are invalid or inconsistent with existing metrics: "
"""Prefix of Pushgateway's message for pushes that parse but cannot be accepted."""


class PushRejected(ValueError):
    """A push or delete that is refused. `status` is the HTTP status to answer with;
    `consistency` is true when the body parsed but its content was refused (the
    group's ``push_failure_time_seconds`` is then updated, as in Pushgateway)."""

    def __init__(self, status: int, message: str, *, consistency: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.consistency = consistency


@dataclass(slots=True)
class PushedFamilies:
    """A decoded push: family name -> {series labels -> value}, and each family's
    metadata (`UNTYPED` when the body had no TYPE line for it)."""

    families: dict[str, dict[Labels, float]]
    metadata: dict[str, MetricMetadata]

    @property
    def series_count(self) -> int:
        return sum(len(s) for s in self.families.values())


def family_of(name: str, metadata: dict[str, MetricMetadata]) -> str:
    """The family a sample named `name` belongs to, given the body's metadata."""
    if name in metadata:
        return name
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in metadata:
            return name[: -len(suffix)]
    return name


def decode_push(body: bytes, content_type: str | None, grouping: Labels) -> PushedFamilies:
    """Parse `body` (Prometheus text 0.0.4, or OpenMetrics by `content_type`) and
    apply `grouping` to every series.

    Raises `PushRejected`: 415 for the protobuf format, 400 for a body that does not
    parse, and 400 with ``consistency=True`` for timestamps (Pushgateway refuses
    them: the sample time is the push time) or two series that are the same once
    the grouping labels are applied.
    """
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media == PROTOBUF_MEDIA_TYPE:
        raise PushRejected(
            415,
            "the protobuf delimited format is not supported; push the text format "
            "(Content-Type: text/plain; version=0.0.4) or OpenMetrics",
        )
    try:
        expo = parse(body, content_type)
    except ExpositionError as exc:
        raise PushRejected(400, f"text format parsing error in {exc}") from None
    if len(expo) and int(expo.timestamps.max()) != NO_TIMESTAMP:
        raise PushRejected(
            400, INCONSISTENT + "pushed metrics must not have timestamps", consistency=True
        )
    metadata = {k: v for k, v in expo.metadata.items() if k not in RESERVED_FAMILIES}
    families: dict[str, dict[Labels, float]] = {name: {} for name in metadata}
    override = grouping.to_dict()
    cache: dict[str, str] = {}
    for key, value in zip(expo.keys, expo.values.tolist(), strict=True):
        labels = labels_of(key)
        name = labels.metric_name
        family = cache.get(name)
        if family is None:
            family = cache[name] = family_of(name, metadata)
        if family in RESERVED_FAMILIES:
            continue
        merged = Labels.from_dict({**labels.to_dict(), **override, METRIC_NAME: name})
        series = families.setdefault(family, {})
        if merged in series:
            raise PushRejected(
                400,
                INCONSISTENT + f"series {merged} appears more than once once the "
                "grouping labels are applied",
                consistency=True,
            )
        series[merged] = value
    return PushedFamilies(families, {f: metadata.get(f, UNTYPED) for f in families})
