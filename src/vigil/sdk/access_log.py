"""An access log written by the middleware itself: one JSON line per request.

Stdlib logging costs ~13 µs per line before any formatting (``LogRecord``,
``findCaller``, handler lock, one ``write`` + ``flush`` per record). The access log
skips all of it: the middleware passes the values it already has (method, route,
path, status, duration, request id) to :meth:`AccessLog.log`, which builds the
line with orjson and appends the bytes to an in-memory buffer. A background
thread writes the buffer out every ``flush_interval`` seconds, or sooner once it
holds ``flush_bytes``. The request never touches the stream::

    {"timestamp": "2024-05-01T12:00:00.123Z", "level": "INFO", "logger": "vigil.access",
     "message": "GET /items/1 200", "service": "payments", "method": "GET",
     "route": "/items/{item_id}", "path": "/items/1", "status": 200,
     "duration_ms": 1.234, "request_id": "...", "user_id": "...",
     "trace_id": "...", "span_id": "..."}

Field names (and the ``level`` value) are those of
:class:`vigil.sdk.logging.JsonFormatter`, so access lines and application lines can
be queried alike. ``timestamp`` is the time the response finished.

Buffering, bounds, drop counters, fork-safety and the exit flush are those of
:class:`vigil.sdk.line_writer.LineWriter`: nothing ever raises into a request.
"""

from __future__ import annotations

from time import time as _time
from typing import IO, Any

from vigil.sdk import context
from vigil.sdk.line_writer import LineWriter
from vigil.sdk.logging import _default, _dumps_stdlib, _rfc3339_ms, current_trace_ids, orjson

ACCESS_LOGGER = "vigil.access"
# JsonFormatter writes ``record.levelname``: the same value keeps one filter for both.
LEVEL = "INFO"

_user_id = context.user_id_var.get

if orjson is not None:
    _orjson_dumps = orjson.dumps
    _OPTIONS = orjson.OPT_NON_STR_KEYS

    def _encode(entry: dict[str, Any]) -> bytes:
        try:
            return _orjson_dumps(entry, default=_default, option=_OPTIONS)
        except TypeError:  # e.g. an int beyond 64 bits in static_fields
            return _dumps_stdlib(entry).encode()

else:  # pragma: no cover - depends on the environment

    def _encode(entry: dict[str, Any]) -> bytes:
        return _dumps_stdlib(entry).encode()


class AccessLog(LineWriter):
    """Buffered JSON access-log writer shared by the ASGI and WSGI middleware.

    Args:
        stream: where lines go, text or binary; ``None`` means ``sys.stderr`` (looked
            up at each write, so redirections apply).
        service: added as ``service`` to every line (omitted when empty).
        static_fields: constant fields for every line (environment, region, ...).
        flush_interval: seconds a line may wait in the buffer at most.
        flush_bytes: buffered size that wakes the writer before the interval ends.
        max_buffer_bytes: buffered size at most; lines beyond it are dropped.

    Counters (see :meth:`stats`): ``written``, ``dropped_overflow``,
    ``dropped_error`` (lines the stream refused), ``write_errors``.
    """

    def __init__(
        self,
        stream: IO[str] | IO[bytes] | None = None,
        *,
        service: str = "",
        static_fields: dict[str, Any] | None = None,
        flush_interval: float = 0.1,
        flush_bytes: int = 64 * 1024,
        max_buffer_bytes: int = 4 * 1024 * 1024,
    ) -> None:
        super().__init__(
            stream,
            flush_interval=flush_interval,
            flush_bytes=flush_bytes,
            max_buffer_bytes=max_buffer_bytes,
        )
        self.service = service
        self._constant: dict[str, Any] = {"service": service} if service else {}
        self._constant.update(static_fields or {})

    thread_name = "vigil-access-log"
    what = "access log"

    def log(
        self,
        method: str,
        route: str,
        path: str,
        status: int,
        duration: float,
        request_id: str | None,
    ) -> None:
        """Queue one access line (``duration`` in seconds). Never raises."""
        try:
            entry: dict[str, Any] = {
                "timestamp": _rfc3339_ms(_time()),
                "level": LEVEL,
                "logger": ACCESS_LOGGER,
                "message": f"{method} {path} {status}",
            }
            if self._constant:
                entry.update(self._constant)
            entry["method"] = method
            entry["route"] = route
            entry["path"] = path
            entry["status"] = status
            entry["duration_ms"] = round(duration * 1000.0, 3)
            if request_id:
                entry["request_id"] = request_id
            user_id = _user_id()
            if user_id:
                entry["user_id"] = user_id
            trace_id, span_id = current_trace_ids()
            if trace_id:
                entry["trace_id"] = trace_id
                entry["span_id"] = span_id
            line = _encode(entry)
        except Exception:  # pragma: no cover - a bug here must not fail requests
            self.dropped_error += 1
            return
        self.write_line(line)


_configured: AccessLog | None = None


def setup_access_log(
    stream: IO[str] | IO[bytes] | None = None,
    *,
    service: str = "",
    static_fields: dict[str, Any] | None = None,
    flush_interval: float = 0.1,
    flush_bytes: int = 64 * 1024,
    max_buffer_bytes: int = 4 * 1024 * 1024,
) -> AccessLog:
    """Create the access log used by ``instrument(app, ..., access_log=True)``.

    Call it before :func:`vigil.sdk.instrument` (or pass the returned object as
    ``access_log=``). Calling it again closes the previous one.
    """
    global _configured
    old = _configured
    _configured = AccessLog(
        stream,
        service=service,
        static_fields=static_fields,
        flush_interval=flush_interval,
        flush_bytes=flush_bytes,
        max_buffer_bytes=max_buffer_bytes,
    )
    if old is not None:
        old.close()
    return _configured


def resolve_access_log(access_log: bool | AccessLog | None, service: str) -> AccessLog | None:
    """Map ``instrument``'s ``access_log`` argument to an :class:`AccessLog` or ``None``.

    ``True`` uses the one from :func:`setup_access_log`, or creates one on stderr
    for ``service``.
    """
    if access_log is None or access_log is False:
        return None
    if isinstance(access_log, AccessLog):
        return access_log
    if _configured is None or _configured._closed:
        return setup_access_log(service=service)
    return _configured
