"""Parsing scraped bodies: Prometheus text 0.0.4 and OpenMetrics 1.0.

`parse` turns a body into column arrays (`Exposition`): series keys as written,
float64 values and int64 millisecond timestamps. It is strict: the first problem
raises `ExpositionError` naming the line. `labels_of` turns a key into `Labels`;
callers cache it (and their series refs) by key, so a steady scrape parses each
series' labels once. `iter_parse` streams huge files chunk by chunk.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from vigil.model.labels import METRIC_NAME, Labels
from vigil.scrape._expo_common import (
    NO_TIMESTAMP,
    Exemplar,
    Exposition,
    ExpositionError,
    MetricMetadata,
)
from vigil.scrape._openmetrics import OpenMetricsParser
from vigil.scrape._promtext import PromTextParser
from vigil.scrape._series import OM_SERIES, PROM_SERIES, SeriesSyntaxError

__all__ = [
    "ACCEPT_HEADER",
    "FORMAT_OPENMETRICS",
    "FORMAT_PROMETHEUS",
    "NO_TIMESTAMP",
    "Exemplar",
    "Exposition",
    "ExpositionError",
    "MetricMetadata",
    "iter_parse",
    "labels_of",
    "negotiate",
    "parse",
]

FORMAT_OPENMETRICS = "openmetrics"
FORMAT_PROMETHEUS = "prometheus"

ACCEPT_HEADER = (
    "application/openmetrics-text;version=1.0.0,"
    "application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,"
    "*/*;q=0.1"
)
"""What Prometheus sends when scraping: OpenMetrics 1.0 preferred, then OpenMetrics
0.0.1, then Prometheus text 0.0.4, then anything (read as Prometheus text)."""


def negotiate(content_type_header: str | None) -> str:
    """Which parser a scrape response's Content-Type selects.

    Returns `FORMAT_OPENMETRICS` for ``application/openmetrics-text`` (any version or
    other parameters, any case), else `FORMAT_PROMETHEUS`: ``text/plain``, a missing,
    empty or unparsable header and unknown media types all fall back to Prometheus
    text, as Prometheus does with its fallback protocol. Never raises.
    """
    if not content_type_header:
        return FORMAT_PROMETHEUS
    media = content_type_header.split(";", 1)[0].strip().lower()
    if media == "application/openmetrics-text":
        return FORMAT_OPENMETRICS
    return FORMAT_PROMETHEUS


def _is_openmetrics(content_type: str | None) -> bool:
    if content_type == FORMAT_OPENMETRICS:
        return True
    return negotiate(content_type) == FORMAT_OPENMETRICS


def _decode(body: bytes, line_base: int) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as e:
        line = line_base + body.count(b"\n", 0, e.start) + 1
        raise ExpositionError(line, f"invalid UTF-8 at byte {e.start}: {e.reason}") from None


def parse(body: bytes, content_type: str | None = None) -> Exposition:
    """Parse a whole body.

    OpenMetrics when `content_type` is ``application/openmetrics-text`` (any
    parameters) or ``"openmetrics"``; otherwise Prometheus text 0.0.4. Raises
    `ExpositionError` (line numbers 1-based) on the first problem; nothing partial is
    returned. Thread-safe (shares only a process-wide, GIL-safe series cache).
    """
    text = _decode(body, 0)
    if _is_openmetrics(content_type):
        om = OpenMetricsParser()
        out = om.feed(text)
        om.close()
        out.metadata = dict(om.metadata)
        return out
    return PromTextParser().feed(text)


def iter_parse(
    stream: BinaryIO, content_type: str | None = None, chunk_bytes: int = 8 << 20
) -> Iterator[Exposition]:
    """Parse a large body from `stream` in chunks of about `chunk_bytes` (split at line
    boundaries; a line longer than that is read whole).

    Each yielded `Exposition` holds one chunk's samples; its `metadata` is everything
    seen so far. Line numbers in errors count from the start of the stream. Family
    rules that span chunks still hold, and the end checks (OpenMetrics '# EOF', the
    last family's histogram rules) run after the last chunk, so an error may follow
    chunks already yielded: treat the stream as failed as a whole then.
    """
    if chunk_bytes <= 0:
        raise ValueError(f"chunk_bytes must be positive, got {chunk_bytes}")
    openmetrics = _is_openmetrics(content_type)
    parser: OpenMetricsParser | PromTextParser = (
        OpenMetricsParser() if openmetrics else PromTextParser()
    )
    carry = b""
    while True:
        block = stream.read(chunk_bytes)
        if not block:
            break
        data = carry + block
        cut = data.rfind(b"\n")
        if cut < 0:
            carry = data
            continue
        carry = data[cut + 1 :]
        out = parser.feed(_decode(data[: cut + 1], parser.lineno))
        if len(out):
            yield out
    if carry:
        out = parser.feed(_decode(carry, parser.lineno))
        if len(out):
            yield out
    parser.close()


def labels_of(key: str) -> Labels:
    """The `Labels` of a series key from `Exposition.keys`, including ``__name__``.

    Accepts keys from either format. Empty label values are dropped (as everywhere in
    Vigil). Raises `ExpositionError` (line 0) when `key` is not one series text.
    """
    # The parse that validated the key is normally still cached (a strictly valid
    # OpenMetrics key parses the same under the lenient Prometheus rules).
    hit = PROM_SERIES.entries.get(key) or OM_SERIES.entries.get(key)
    if hit is None:
        try:
            hit = PROM_SERIES.get(key)
        except SeriesSyntaxError as e:
            raise ExpositionError(0, f"invalid series {key!r}: {e}") from None
    name, pairs = hit
    # pairs are sorted with unique names other than __name__: one merge keeps them so
    return Labels.from_sorted(sorted([(METRIC_NAME, name), *[p for p in pairs if p[1]]]))
