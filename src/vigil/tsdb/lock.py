"""Exclusive lock on a data directory, so two processes never share one TSDB.

Uses `flock` on `<dir>/lock`, which the kernel releases when the holder dies (no
stale-lock cleanup needed after a crash). The file holds the holder's PID so the
error a second opener gets can name it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path


class DataDirLockedError(RuntimeError):
    """Another process (or another TSDB in this process) holds the directory."""


class DataDirError(OSError):
    """The data directory cannot be created, opened or written."""


class DirLock:
    """Holds `<dir>/lock` until `release()`. Not reentrant, even within a process."""

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self.path = self.dir / "lock"
        self._fd = -1

    def acquire(self) -> None:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise DataDirError(
                exc.errno, f"data directory {self.dir} is not usable: {exc.strerror}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = ""
            with contextlib.suppress(OSError, ValueError):
                holder = os.pread(fd, 32, 0).decode().strip()
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                who = f" by process {holder}" if holder else ""
                raise DataDirLockedError(
                    f"data directory {self.dir} is locked{who}; is another vigil running "
                    "with the same storage path?"
                ) from None
            raise DataDirError(exc.errno, f"cannot lock {self.path}: {exc.strerror}") from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as exc:
            os.close(fd)
            raise DataDirError(
                exc.errno, f"data directory {self.dir} is not writable: {exc.strerror}"
            ) from None
        self._fd = fd

    def release(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> DirLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
