"""Structured JSON logging through the standard :mod:`logging` module.

Every record becomes one JSON object per line::

    {"timestamp": "2024-05-01T12:00:00.123Z", "level": "INFO", "logger": "payments",
     "message": "charged", "service": "payments", "module": "api", "function": "charge",
     "line": 42, "request_id": "...", "user_id": "...", "trace_id": "...",
     "span_id": "...", "order_id": "o-1"}

Request and user ids come from :mod:`vigil.sdk.context`; trace and span ids from
the active OpenTelemetry span when ``opentelemetry`` is installed (looked up only if
it has already been imported, so plain apps never pay for it). Fields passed as
``extra={...}`` become top-level keys, as do fields bound with
:func:`vigil.sdk.context.bind`.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from typing import IO, Any

from vigil.sdk import context
from vigil.sdk.line_writer import LineWriter

try:  # a declared dependency; the stdlib fallback keeps the formatter importable
    import orjson
except ImportError:  # pragma: no cover - depends on the environment
    orjson = None  # type: ignore[assignment]

# Attributes every LogRecord has; anything else on a record came from ``extra``.
_RESERVED = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys() | {"message", "asctime", "taskName"}
)

# (second, "YYYY-MM-DDTHH:MM:SS") of the last record: strftime costs more than the
# rest of the timestamp, and consecutive records mostly share their second. One
# tuple, replaced whole, so threads never see a half-updated pair.
_last_second: tuple[int, str] = (-1, "")


def _rfc3339_ms(created: float) -> str:
    global _last_second
    secs = int(created)
    ms = int((created - secs) * 1000)
    cached_secs, prefix = _last_second
    if cached_secs != secs:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
        _last_second = (secs, prefix)
    return f"{prefix}.{ms:03d}Z"


# Returns the active OpenTelemetry span object (or None); resolved on first use.
_active_span: Callable[[], Any] | None = None


def _span_lookup() -> Callable[[], Any]:
    """The cheapest way to read the active span in this process.

    ``trace.get_current_span()`` is four Python calls deep; with the default
    contextvars runtime context the same answer is one ``ContextVar.get`` and one
    dict lookup. Anything unexpected (another runtime context, a renamed internal)
    falls back to the public API.
    """
    from opentelemetry import trace

    try:
        from opentelemetry.context import _RUNTIME_CONTEXT
        from opentelemetry.trace.propagation import _SPAN_KEY

        var = _RUNTIME_CONTEXT._current_context  # type: ignore[attr-defined]
        if not isinstance(var, contextvars.ContextVar) or not isinstance(_SPAN_KEY, str):
            raise AttributeError(_SPAN_KEY)
        get_context = var.get

        def active_span() -> Any:
            return get_context().get(_SPAN_KEY)

        return active_span
    except (ImportError, AttributeError):
        return trace.get_current_span


def current_span() -> Any:
    """Return the active OpenTelemetry span object, or ``None`` (cheap: no formatting)."""
    global _active_span
    lookup = _active_span
    if lookup is None:
        if "opentelemetry.trace" not in sys.modules:
            return None
        lookup = _active_span = _span_lookup()
    return lookup()


def span_ids(span: Any) -> tuple[str | None, str | None]:
    """Return ``(trace_id, span_id)`` of ``span``, hex encoded; ``None``s if invalid."""
    if span is None:
        return None, None
    ctx = span.get_span_context()
    if not ctx.is_valid:
        return None, None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


def current_trace_ids() -> tuple[str | None, str | None]:
    """Return ``(trace_id, span_id)`` of the active OpenTelemetry span, hex encoded."""
    lookup = _active_span  # set after the first lookup: skip current_span's checks
    return span_ids(lookup() if lookup is not None else current_span())


def _default(obj: Any) -> Any:
    # Unknown objects in ``extra`` are logged by repr rather than failing the record.
    return repr(obj)


def _dumps_stdlib(entry: dict[str, Any]) -> str:
    return json.dumps(entry, ensure_ascii=False, separators=(",", ":"), default=_default)


if orjson is not None:
    _ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS

    def dumps(entry: dict[str, Any]) -> str:
        """Serialize a record dict to one JSON line (orjson, ~5x faster than json)."""
        try:
            return orjson.dumps(entry, default=_default, option=_ORJSON_OPTIONS).decode()
        except TypeError:  # e.g. an int beyond 64 bits: json handles what orjson refuses
            return _dumps_stdlib(entry)

else:  # pragma: no cover - depends on the environment
    dumps = _dumps_stdlib


_request_id = context.request_id_var.get
_user_id = context.user_id_var.get
_fields = context.fields_var.get


class JsonFormatter(logging.Formatter):
    """Format records as single-line JSON objects (UTF-8, non-ASCII kept).

    Args:
        service: added as ``service`` to every record (omitted when empty).
        static_fields: constant fields added to every record (e.g. environment).
    """

    def __init__(self, service: str = "", static_fields: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.service = service
        self.static_fields = dict(static_fields or {})
        self._constant = {"service": service} if service else {}
        self._constant.update(self.static_fields)

    def to_dict(self, record: logging.LogRecord) -> dict[str, Any]:
        """Return the JSON-ready dict for ``record`` (used by the log shipper too)."""
        entry: dict[str, Any] = {
            "timestamp": _rfc3339_ms(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self._constant:
            entry.update(self._constant)
        entry["module"] = record.module
        entry["function"] = record.funcName
        entry["line"] = record.lineno
        request_id = _request_id()
        if request_id:
            entry["request_id"] = request_id
        user_id = _user_id()
        if user_id:
            entry["user_id"] = user_id
        trace_id, span_id = current_trace_ids()
        if trace_id:
            entry["trace_id"] = trace_id
            entry["span_id"] = span_id
        bound = _fields()
        if bound:
            entry.update(bound)
        attrs = record.__dict__
        for key in attrs:
            if key not in _RESERVED and key[:1] != "_":
                entry[key] = attrs[key]
        if record.exc_info and record.exc_info[0] is not None:
            etype, evalue, tb = record.exc_info
            entry["exception"] = {
                "type": etype.__name__,
                "message": str(evalue),
                "stack": "".join(traceback.format_exception(etype, evalue, tb)),
            }
        elif record.stack_info:
            entry["stack"] = record.stack_info
        return entry

    def format(self, record: logging.LogRecord) -> str:
        return dumps(self.to_dict(record))


class BufferedJsonHandler(logging.Handler):
    """A logging handler that formats each record in the logging thread (so the
    request and trace ids of its context are right) and hands the line to a
    :class:`~vigil.sdk.line_writer.LineWriter`: no ``write``, ``flush`` or handler
    lock per record; a background thread writes the lines out within
    ``flush_interval`` seconds. Bounded: past ``max_buffer_lines`` lines are dropped
    and counted (``handler.writer.stats()``), never blocking the application.
    ``flush()`` and ``close()`` (also run by ``logging.shutdown`` at exit) write
    what is buffered.
    """

    def __init__(
        self,
        stream: IO[str] | IO[bytes] | None = None,
        level: int | str = logging.NOTSET,
        *,
        flush_interval: float = 0.1,
        max_buffer_lines: int = 16384,
    ) -> None:
        super().__init__(level)
        self.writer = LineWriter(
            stream, flush_interval=flush_interval, max_buffer_lines=max_buffer_lines
        )
        self.writer.what = "JSON log"

    def handle(self, record: logging.LogRecord) -> bool:  # type: ignore[override]
        # Handler.handle would take the handler lock around emit; the writer is
        # thread-safe, so the lock would only serialize the formatting.
        rv = self.filter(record)
        if isinstance(rv, logging.LogRecord):  # Python 3.12+: a filter may replace it
            record = rv
        if rv:
            self.emit(record)
        return bool(rv)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fmt = self.formatter
            if isinstance(fmt, JsonFormatter):
                line = dumps(fmt.to_dict(record))
            else:
                line = self.format(record)
            self.writer.write_line(line)
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
        super().close()


def setup_logging(
    service: str = "",
    level: int | str = logging.INFO,
    *,
    stream: IO[str] | None = None,
    static_fields: dict[str, Any] | None = None,
    handlers: Iterable[logging.Handler] = (),
    logger: str | None = None,
    replace: bool = True,
    buffered: bool = False,
    flush_interval: float = 0.1,
) -> logging.Logger:
    """Send ``logger`` (default: root) to ``stream`` (default stderr) as JSON lines.

    Args:
        service: the service name put into every record.
        level: the logger's level.
        stream: where the JSON lines go; ``None`` means ``sys.stderr``.
        static_fields: constant fields for every record (environment, region, ...).
        handlers: more handlers (e.g. :class:`vigil.sdk.log_shipper.VigilLogHandler`);
            those without a formatter get the JSON formatter.
        logger: name of the logger to configure; ``None`` is the root logger.
        replace: remove the logger's existing handlers first, so calling this twice
            does not print every line twice.
        buffered: write through a :class:`BufferedJsonHandler` (lines reach the
            stream within ``flush_interval`` seconds, and at exit) instead of a
            ``StreamHandler`` that writes and flushes every record on the caller's
            thread. Buffering never lets a slow stream (a full pipe to a log
            collector) block the application, but costs ~2-3 µs more CPU per
            record than writing to a fast stream directly, so it is off by
            default. A process killed with SIGKILL loses at most the last
            ``flush_interval`` of buffered lines.

    Returns the configured logger.
    """
    target = logging.getLogger(logger)
    target.setLevel(level)
    formatter = JsonFormatter(service, static_fields)
    if replace:
        for old in list(target.handlers):
            target.removeHandler(old)
    console: logging.Handler
    if buffered:
        console = BufferedJsonHandler(stream, flush_interval=flush_interval)
    else:
        console = logging.StreamHandler(stream if stream is not None else sys.stderr)
    console.setFormatter(formatter)
    target.addHandler(console)
    for extra in handlers:
        if extra.formatter is None:
            extra.setFormatter(formatter)
        target.addHandler(extra)
    return target
