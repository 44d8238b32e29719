"""An access log written by the middleware itself: one JSON line per request.

Stdlib logging costs ~13 µs per line before any formatting (``LogRecord``,
``findCaller``, handler lock, one ``write`` + ``flush`` per record). The access log
skips all of it: the middleware passes the values it already has (method, route,
path, status, duration, request id) to :meth:`AccessLog.log`, which queues them,
plus the time, the user id and the active span, as one tuple in an in-memory
buffer. A background thread turns the buffer into lines in one batch (the constant parts of a line are prepared once;
strings are escaped by the stdlib's C JSON escaper), then encodes and writes them
every ``flush_interval`` seconds, or sooner once it holds ``flush_lines`` lines.
The request never formats a line or touches the stream::

    {"timestamp":"2024-05-01T12:00:00.123Z","level":"INFO","logger":"vigil.access",
     "message":"GET /items/1 200","service":"payments","method":"GET",
     "route":"/items/{item_id}","path":"/items/1","status":200,
     "duration_ms":1.234,"request_id":"...","user_id":"...",
     "trace_id":"...","span_id":"..."}

Field names (and the ``level`` value) are those of
:class:`vigil.sdk.logging.JsonFormatter`, so access lines and application lines can
be queried alike. ``timestamp`` is the time the response finished.

Buffering, bounds, drop counters, fork-safety and the exit flush are those of
:class:`vigil.sdk.line_writer.LineWriter`: nothing ever raises into a request.
"""

from __future__ import annotations

import json.encoder
import time
from time import time as _time
from typing import IO, Any

from vigil.sdk import context
from vigil.sdk.line_writer import LineWriter
from vigil.sdk.logging import current_span, dumps, span_ids
from vigil.sdk.metrics import KNOWN_METHODS

ACCESS_LOGGER = "vigil.access"
# JsonFormatter writes ``record.levelname``: the same value keeps one filter for both.
LEVEL = "INFO"
# Fields every line has; static fields of the same name are left out, not doubled.
ACCESS_FIELDS = frozenset(
    ("timestamp", "level", "logger", "message", "method", "route", "path", "status",
     "duration_ms", "request_id", "user_id", "trace_id", "span_id")
)  # fmt: skip

# The C escaper behind json.dumps(ensure_ascii=True): returns the string quoted,
# with everything outside printable ASCII escaped, so no line can fail to encode.
_quote: Any = json.encoder.encode_basestring_ascii
# Longer paths are cut (and marked): a line's size stays bounded, so the buffer's
# line bound is a memory bound too.
MAX_PATH_CHARS = 2048
_user_id = context.user_id_var.get
_MILLIS = tuple(f".{ms:03d}Z" for ms in range(1000))


class AccessLog(LineWriter):
    """Buffered JSON access-log writer shared by the ASGI and WSGI middleware.

    Args:
        stream: where lines go, text or binary; ``None`` means ``sys.stderr`` (looked
            up at each write, so redirections apply).
        service: added as ``service`` to every line (omitted when empty).
        static_fields: constant fields for every line (environment, region, ...).
        flush_interval: seconds a line may wait in the buffer at most.
        flush_lines: buffered lines that wake the writer before the interval ends.
        max_buffer_lines: buffered lines at most; lines beyond it are dropped.

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
        flush_lines: int = 1024,
        max_buffer_lines: int = 16384,
    ) -> None:
        super().__init__(
            stream,
            flush_interval=flush_interval,
            flush_lines=flush_lines,
            max_buffer_lines=max_buffer_lines,
        )
        self.service = service
        constant: dict[str, Any] = {"service": service} if service else {}
        constant.update(static_fields or {})
        constant = {k: v for k, v in constant.items() if k not in ACCESS_FIELDS}
        # ',"service":"payments","env":"prod"': the constant fields as one fragment.
        self._constant = "," + dumps(constant)[1:-1] if constant else ""
        # (start, end, '{"timestamp":"2024-05-01T12:00:00') of the current second.
        self._second: tuple[float, float, str] = (0.0, 0.0, "")
        # (method, route, status) -> the line's constant parts around the path.
        self._heads: dict[tuple[str, str, int], tuple[str, str]] = {}

    thread_name = "vigil-access-log"
    what = "access log"

    def _new_second(self, now: float) -> tuple[float, float, str]:
        start = float(int(now))
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(start))
        second = self._second = (start, start + 1.0, '{"timestamp":"' + stamp)
        return second

    def _head(self, method: str, route: str, status: int) -> tuple[str, str]:
        """The parts of a line fixed by method, route and status: everything up to
        the path in ``message``, and from there up to the ``path`` value."""
        # The standard methods need no escaping; anything else a client sends is escaped.
        quoted_method = method if method in KNOWN_METHODS else _quote(method)[1:-1]
        head = (
            f'","level":"{LEVEL}","logger":"{ACCESS_LOGGER}"{self._constant},'
            f'"method":"{quoted_method}","route":{_quote(route)},"status":{int(status)},'
            f'"message":"{quoted_method} ',
            f' {int(status)}","path":"',
        )
        if len(self._heads) < 4096:  # methods come from clients: stay bounded
            self._heads[(method, route, status)] = head
        return head

    def log(
        self,
        method: str,
        route: str,
        path: str,
        status: int,
        duration: float,
        request_id: str | None,
    ) -> None:
        """Queue one access line (``duration`` in seconds). Never raises.

        Only the values are queued here, with the time, the user id and the active
        span taken from the request's context: the line is formatted by the writer
        thread, in a batch (:meth:`_render`). Formatting in a tight loop runs far
        faster than the same code scattered between requests, where the framework
        has pushed it out of the CPU's caches, and the request path stays short.
        """
        try:
            if len(path) > MAX_PATH_CHARS:  # bounds what a queued entry holds on to
                path = path[:MAX_PATH_CHARS] + "...[cut]"
            entry = (_time(), method, route, path, status, duration, request_id,
                     _user_id(), current_span())  # fmt: skip
        except Exception:  # pragma: no cover - a bug here must not fail requests
            self.dropped_error += 1
            return
        buf = self._buf
        if len(buf) < self._fast_limit:
            buf.append(entry)  # the common case: no call, no lock (see LineWriter)
        else:
            self._enqueue(entry)

    def _render(self, items: list[Any]) -> list[str]:
        lines: list[str] = []
        append = lines.append
        heads = self._heads
        second = self._second
        for item in items:
            if item.__class__ is str:  # a line given whole, through write_line()
                append(item)
                continue
            try:
                now, method, route, path, status, duration, request_id, user_id, span = item
                if not second[0] <= now < second[1]:
                    second = self._new_second(now)
                head = heads.get((method, route, status))
                if head is None:
                    head = self._head(method, route, status)
                path = _quote(path)[1:-1]
                tail = ""
                if request_id:
                    tail = ',"request_id":' + _quote(request_id)
                if user_id:
                    tail += ',"user_id":' + _quote(str(user_id))
                if span is not None:
                    trace_id, span_id = span_ids(span)
                    if trace_id:
                        tail += f',"trace_id":"{trace_id}","span_id":"{span_id}"'
                append(
                    f"{second[2]}{_MILLIS[int((now - second[0]) * 1000.0)]}{head[0]}{path}"
                    f'{head[1]}{path}","duration_ms":{duration * 1000.0:.3f}{tail}}}'
                )
            except Exception:  # a malformed entry costs its own line, not the batch
                self.dropped_error += 1
        return lines


_configured: AccessLog | None = None


def setup_access_log(
    stream: IO[str] | IO[bytes] | None = None,
    *,
    service: str = "",
    static_fields: dict[str, Any] | None = None,
    flush_interval: float = 0.1,
    flush_lines: int = 1024,
    max_buffer_lines: int = 16384,
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
        flush_lines=flush_lines,
        max_buffer_lines=max_buffer_lines,
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
