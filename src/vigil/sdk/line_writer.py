"""A bounded, buffered line writer that never blocks or raises into its callers.

Writing a log line with a ``write`` + ``flush`` per line costs a system call and a
lock on the request path; a `LineWriter` appends the line to an in-memory list
instead, and a background thread writes the list out every ``flush_interval``
seconds, or sooner once it holds ``flush_lines`` lines.

No lock is taken per line: callers only ever ``append`` to the one list, and the
writer only ever removes a prefix of it (``buf[:n]`` then ``del buf[:n]``). Both
are single atomic list operations (under the GIL, and under the per-object lock
of free-threaded Python), so a line appended while the writer drains is simply
left for the next round, never lost.

The buffer is bounded (``max_buffer_lines``): lines beyond it are dropped and
counted, as are lines the stream refused (closed, broken pipe, full disk); neither
ever raises into the caller. Fork-safe: a child forgets the parent's buffer (the
parent writes it) and starts its own writer thread on its first line. Whatever is
buffered at interpreter exit is written by an ``atexit`` hook. Used by the access
log and by the JSON logging handler.
"""

from __future__ import annotations

import atexit
import io
import os
import sys
import threading
import weakref
from typing import IO, Any


class LineWriter:
    """Buffered writer of newline-terminated lines to a text or binary stream.

    Args:
        stream: where lines go, text or binary; ``None`` means ``sys.stderr`` (looked
            up at each write, so redirections apply).
        flush_interval: seconds a line may wait in the buffer at most.
        flush_lines: buffered lines that wake the writer before the interval ends.
        max_buffer_lines: buffered lines at most; lines beyond it are dropped.

    Counters (see :meth:`stats`): ``written``, ``dropped_overflow``,
    ``dropped_error`` (lines the stream refused), ``write_errors``. Counters that
    several threads bump on a failure path may undercount by a few; they are for
    alerting, not accounting.
    """

    thread_name = "vigil-line-writer"
    what = "log lines"  # named in the one warning about a failing stream

    def __init__(
        self,
        stream: IO[str] | IO[bytes] | None = None,
        *,
        flush_interval: float = 0.1,
        flush_lines: int = 1024,
        max_buffer_lines: int = 16384,
    ) -> None:
        self.stream = stream
        self.flush_interval = flush_interval
        self.max_buffer_lines = max(1, max_buffer_lines)
        self.flush_lines = min(max(1, flush_lines), self.max_buffer_lines)
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
        self._start_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._wake = threading.Event()
        self._buf: list[Any] = []
        self._thread: threading.Thread | None = None
        # Lines a caller may append without calling write_line: 0 until the writer
        # thread runs, and again once closed, so those cases take the slow path.
        self._fast_limit = 0

    def write_line(self, line: str) -> None:
        """Queue one line (without its newline). Never blocks on I/O.

        Lines are kept as ``str`` and encoded in one piece by the writer thread:
        a short ``str`` is cheaper to make than ``bytes`` of the same length, and
        the request path should not pay for encoding.
        """
        self._enqueue(line)

    def _enqueue(self, item: Any) -> None:
        """Queue one item for :meth:`_render` (a line, unless a subclass says otherwise)."""
        if self._closed:
            self.dropped_error += 1
            return
        buf = self._buf
        queued = len(buf)
        if queued >= self.max_buffer_lines:
            self.dropped_overflow += 1
            return
        buf.append(item)
        if self._thread is None:
            self._start()
        elif queued + 1 >= self.flush_lines and not self._wake.is_set():
            self._wake.set()

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is not None:
                return
            thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
            self._thread = thread
        try:
            thread.start()
        except RuntimeError:  # e.g. at interpreter shutdown: atexit/close() drains
            return
        if not self._closed:
            self._fast_limit = self.flush_lines - 1

    def _run(self) -> None:
        wake = self._wake
        while not self._closed:
            wake.wait(self.flush_interval)
            wake.clear()
            self.flush()

    def flush(self) -> None:
        """Write out whatever is buffered now (also called by the writer thread)."""
        with self._write_lock:
            buf = self._buf
            n = len(buf)
            if not n:
                return
            items = buf[:n]
            del buf[:n]  # items appended meanwhile stay, after index n
            lines = self._render(items)
            if not lines:
                return
            n = len(lines)
            data = "\n".join(lines) + "\n"
            try:
                self._write(data)
                self.written += n
            except Exception as exc:
                self.dropped_error += n
                self.write_errors += 1
                if not self._warned:
                    self._warned = True
                    try:
                        sys.__stderr__.write(  # type: ignore[union-attr]
                            f"vigil: cannot write {self.what} ({exc!r}); dropping lines\n"
                        )
                    except Exception:
                        pass

    def _render(self, items: list[Any]) -> list[str]:
        """Turn buffered items into lines, on the writer thread. Here they are lines
        already; a subclass may queue raw values and format them here, in one batch,
        so the caller's path stays short. Items that fail to render are counted in
        ``dropped_error`` and left out, never raised."""
        return items

    def _write(self, data: str) -> None:
        stream: Any = self.stream if self.stream is not None else sys.stderr
        if isinstance(stream, io.TextIOBase):
            stream.write(data)
        else:
            # backslashreplace: one unencodable character (a lone surrogate from a
            # mis-decoded name) must not cost the whole batch.
            raw = data.encode("utf-8", "backslashreplace")
            try:
                stream.write(raw)
            except TypeError:  # a text stream outside the io hierarchy
                stream.write(data)
        stream.flush()

    def close(self) -> None:
        """Stop the writer thread and write what is buffered; later lines are dropped."""
        if self._closed:
            return
        self._closed = True
        self._fast_limit = 0
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread() and thread.is_alive():
            thread.join(max(1.0, 2 * self.flush_interval))
        self.flush()

    def stats(self) -> dict[str, int]:
        """Return the counters plus the lines buffered now."""
        return {
            "written": self.written,
            "buffered": len(self._buf),
            "dropped_overflow": self.dropped_overflow,
            "dropped_error": self.dropped_error,
            "write_errors": self.write_errors,
        }


_instances: weakref.WeakSet[LineWriter] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for writer in list(_instances):
        writer._reset()


def _at_exit() -> None:
    for writer in list(_instances):
        try:
            writer.close()
        except Exception:  # pragma: no cover
            pass


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_at_exit)
