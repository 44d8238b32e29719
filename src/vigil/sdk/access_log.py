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

The buffer is bounded (``max_buffer_bytes``): lines beyond it are dropped and
counted, as are lines the stream refused (closed, broken pipe, full disk); neither
ever raises into a request. Fork-safe: a child forgets the parent's buffer (the
parent writes it) and starts its own writer thread on its first line. Whatever is
buffered at interpreter exit is written by an ``atexit`` hook.
"""

from __future__ import annotations

import atexit
import io
import os
import sys
import threading
import weakref
from time import time as _time
from typing import IO, Any

from vigil.sdk import context
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


class AccessLog:
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
        self.stream = stream
        self.service = service
        self._constant: dict[str, Any] = {"service": service} if service else {}
        self._constant.update(static_fields or {})
        self.flush_interval = flush_interval
        self.flush_bytes = max(1, flush_bytes)
        self.max_buffer_bytes = max(1, max_buffer_bytes)
        self.written = 0
        self.dropped_overflow = 0
        self.dropped_error = 0
        self.write_errors = 0
        self._closed = False
        self._warned = False
        self._reset()
        _instances.add(self)

    def _reset(self) -> None:
        # Also the after-fork hook: fresh locks (the parent's may have been held by
        # its writer thread at fork time), no thread, and no copy of the parent's
        # buffer (the parent writes it; writing it here too would duplicate it).
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._wake = threading.Event()
        self._buf: list[bytes] = []
        self._size = 0
        self._thread: threading.Thread | None = None

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

    def write_line(self, line: bytes) -> None:
        """Queue one pre-encoded line (without its newline). Never blocks on I/O."""
        if self._closed:
            self.dropped_error += 1
            return
        with self._lock:
            size = self._size + len(line) + 1
            if size > self.max_buffer_bytes:
                self.dropped_overflow += 1
                return
            self._buf.append(line)
            self._size = size
        if self._thread is None:
            self._start()
        elif size >= self.flush_bytes and not self._wake.is_set():
            self._wake.set()

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            thread = threading.Thread(target=self._run, name="vigil-access-log", daemon=True)
            self._thread = thread
        try:
            thread.start()
        except RuntimeError:  # e.g. at interpreter shutdown: atexit/close() drains
            pass

    def _run(self) -> None:
        wake = self._wake
        while not self._closed:
            wake.wait(self.flush_interval)
            wake.clear()
            self.flush()

    def flush(self) -> None:
        """Write out whatever is buffered now (also called by the writer thread)."""
        with self._write_lock:
            with self._lock:
                buf = self._buf
                if not buf:
                    return
                self._buf = []
                self._size = 0
            data = b"\n".join(buf) + b"\n"
            try:
                self._write(data)
                self.written += len(buf)
            except Exception as exc:
                self.dropped_error += len(buf)
                self.write_errors += 1
                if not self._warned:
                    self._warned = True
                    try:
                        sys.__stderr__.write(  # type: ignore[union-attr]
                            f"vigil: cannot write access log ({exc!r}); dropping lines\n"
                        )
                    except Exception:
                        pass

    def _write(self, data: bytes) -> None:
        stream: Any = self.stream if self.stream is not None else sys.stderr
        if isinstance(stream, io.TextIOBase):
            stream.write(data.decode())
        else:
            try:
                stream.write(data)
            except TypeError:  # a text stream outside the io hierarchy
                stream.write(data.decode())
        stream.flush()

    def close(self) -> None:
        """Stop the writer thread and write what is buffered; later lines are dropped."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread() and thread.is_alive():
            thread.join(max(1.0, 2 * self.flush_interval))
        self.flush()

    def stats(self) -> dict[str, int]:
        """Return the counters plus the lines and bytes buffered now."""
        with self._lock:
            buffered, size = len(self._buf), self._size
        return {
            "written": self.written,
            "buffered": buffered,
            "buffered_bytes": size,
            "dropped_overflow": self.dropped_overflow,
            "dropped_error": self.dropped_error,
            "write_errors": self.write_errors,
        }


_instances: weakref.WeakSet[AccessLog] = weakref.WeakSet()
_configured: AccessLog | None = None


def _after_fork_in_child() -> None:
    for log in list(_instances):
        log._reset()


def _at_exit() -> None:
    for log in list(_instances):
        try:
            log.close()
        except Exception:  # pragma: no cover
            pass


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_at_exit)


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
