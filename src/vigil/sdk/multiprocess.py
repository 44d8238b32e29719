"""Multi-process metrics that stay correct and fast across worker restarts.

prometheus_client's multiprocess mode gives every worker its own mmap files
(``counter_<pid>.db``, ``histogram_<pid>.db``, ``gauge_<mode>_<pid>.db``) and merges
all of them at scrape time. It never deletes the files of dead workers, so with
``--max-requests`` restarts the directory grows without bound and every scrape
reads every file any worker ever wrote.

This module fixes that by *archiving* dead workers: their counters, histograms and
summaries are added into one ``<type>_archive.db`` file per type, their ``sum``,
``min``, ``max`` and ``mostrecent`` gauges are folded into ``gauge_<mode>_archive.db``,
their ``all``/``live*`` gauges are dropped (a dead process has no current value),
and their files are deleted. The directory then holds one file set per *live*
worker plus the archive, so scrape time is flat and totals stay exact.

A worker is archived when it exits (an ``atexit`` hook and the gunicorn
``child_exit`` hook) and, as a safety net for ``SIGKILL``/OOM kills, whenever a
scrape finds a file whose pid is no longer alive.

Concurrency: archiving and reading take an ``flock`` on ``.vigil.lock`` in the
directory (exclusive to archive, shared to read), so a scrape never sees a worker
both in the archive and in its own file. The new archive is written to a temporary
file and renamed into place; a crash between that rename and the deletion of the
dead worker's files would count that worker twice, a window of microseconds.
"""

from __future__ import annotations

import atexit
import fcntl
import glob
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
ARCHIVE_ID = "archive"
_LOCK_NAME = ".vigil.lock"
# Gauge modes whose value survives the process: merged into the archive.
_MERGED_GAUGE_MODES = {"sum": "sum", "min": "min", "max": "max", "mostrecent": "mostrecent"}


def multiprocess_dir() -> str | None:
    """Return the multiprocess directory if multiprocess mode is configured."""
    path = os.environ.get(MULTIPROC_ENV)
    return path or None


def enable_multiprocess(path: str, *, clear: bool = False) -> None:
    """Turn on multiprocess mode for this process and the workers it forks.

    Call it before any metric is created (e.g. in the gunicorn config file or at the
    top of the ASGI module); metrics created earlier stay process-local. ``clear``
    empties the directory first, which a server master should do once at start so
    files of a previous run are not mistaken for dead workers of this one.
    """
    os.makedirs(path, exist_ok=True)
    if clear:
        clear_directory(path)
    os.environ[MULTIPROC_ENV] = path
    from prometheus_client import values

    if not getattr(values.ValueClass, "_multiprocess", False):
        values.ValueClass = values.MultiProcessValue()


def clear_directory(path: str) -> None:
    """Delete every metrics file in ``path`` (not the directory itself)."""
    for name in os.listdir(path):
        full = os.path.join(path, name)
        if os.path.isdir(full):
            shutil.rmtree(full, ignore_errors=True)
        elif name.endswith(".db") or name.endswith(".tmp"):
            os.remove(full)


def _parse(filename: str) -> tuple[str, str | None, str] | None:
    """Split ``gauge_livesum_123.db`` into ``("gauge", "livesum", "123")``."""
    base = os.path.basename(filename)
    if not base.endswith(".db"):
        return None
    parts = base[:-3].split("_")
    if parts[0] == "gauge" and len(parts) == 3:
        return parts[0], parts[1], parts[2]
    if parts[0] in ("counter", "histogram", "summary") and len(parts) == 2:
        return parts[0], None, parts[1]
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


@contextmanager
def _locked(path: str, exclusive: bool) -> Iterator[None]:
    fd = os.open(os.path.join(path, _LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _files_by_pid(path: str) -> dict[str, list[tuple[str, str, str | None]]]:
    out: dict[str, list[tuple[str, str, str | None]]] = {}
    for f in glob.glob(os.path.join(path, "*.db")):
        parsed = _parse(f)
        if parsed is None:
            continue
        typ, mode, pid = parsed
        out.setdefault(pid, []).append((f, typ, mode))
    return out


def dead_pids(path: str) -> list[int]:
    """Return the pids that own metric files in ``path`` but are no longer running."""
    dead = []
    for pid in _files_by_pid(path):
        if pid.isdigit() and not _pid_alive(int(pid)):
            dead.append(int(pid))
    return sorted(dead)


def _read(filename: str) -> Iterable[tuple[str, float, float]]:
    from prometheus_client.mmap_dict import MmapedDict

    try:
        for key, value, ts, _pos in MmapedDict.read_all_values_from_file(filename):
            yield key, value, ts
    except FileNotFoundError:
        return


def _merge_into_archive(path: str, prefix: str, mode: str, sources: list[str]) -> None:
    """Fold ``sources`` into ``<prefix>_archive.db`` with the merge rule ``mode``."""
    from prometheus_client.mmap_dict import MmapedDict

    archive = os.path.join(path, f"{prefix}_{ARCHIVE_ID}.db")
    merged: dict[str, list[float]] = {}
    inputs = ([archive] if os.path.exists(archive) else []) + sources
    for filename in inputs:
        for key, value, ts in _read(filename):
            cur = merged.get(key)
            if cur is None:
                merged[key] = [value, ts]
            elif mode == "sum":
                cur[0] += value
            elif mode == "min":
                cur[0] = min(cur[0], value)
            elif mode == "max":
                cur[0] = max(cur[0], value)
            elif mode == "mostrecent" and ts >= cur[1]:
                merged[key] = [value, ts]
    tmp = archive + ".tmp"
    if os.path.exists(tmp):
        os.remove(tmp)
    out = MmapedDict(tmp)
    try:
        for key, (value, ts) in merged.items():
            out.write_value(key, value, ts)
    finally:
        out.close()
    os.replace(tmp, archive)


def archive_pids(pids: Iterable[int], path: str | None = None) -> int:
    """Archive the files of the given (dead) worker pids; returns files removed.

    Safe to call from any process sharing the directory, and idempotent: a pid
    without files is ignored. Never call it for a live pid: its later increments
    would be written to a file nobody reads any more.
    """
    path = path or multiprocess_dir()
    if not path:
        return 0
    wanted = {str(p) for p in pids}
    removed = 0
    with _locked(path, exclusive=True):
        files = _files_by_pid(path)
        groups: dict[tuple[str, str], list[str]] = {}
        doomed: list[str] = []
        for pid in wanted:
            for filename, typ, mode in files.get(pid, []):
                doomed.append(filename)
                if typ != "gauge":
                    groups.setdefault((typ, "sum"), []).append(filename)
                elif mode in _MERGED_GAUGE_MODES:
                    groups.setdefault((f"gauge_{mode}", _MERGED_GAUGE_MODES[mode]), []).append(
                        filename
                    )
        for (prefix, mode), sources in groups.items():
            _merge_into_archive(path, prefix, mode, sources)
        for filename in doomed:
            try:
                os.remove(filename)
                removed += 1
            except FileNotFoundError:
                pass
    return removed


def archive_dead_workers(path: str | None = None) -> list[int]:
    """Archive every worker in ``path`` whose pid is no longer alive; returns them."""
    path = path or multiprocess_dir()
    if not path:
        return []
    dead = dead_pids(path)
    if dead:
        archive_pids(dead, path)
    return dead


class VigilMultiProcessCollector:
    """A prometheus_client collector over a multiprocess directory.

    Each ``collect()`` first archives dead workers, then merges the remaining files
    under a shared lock. Register it on a fresh ``CollectorRegistry`` used only for
    exposition; the metric objects themselves live in the default registry.
    """

    def __init__(self, path: str | None = None) -> None:
        path = path or multiprocess_dir()
        if not path or not os.path.isdir(path):
            raise ValueError(f"{MULTIPROC_ENV} is not set or not a directory: {path!r}")
        self.path = path

    def collect(self) -> Iterable[Any]:
        from prometheus_client.multiprocess import MultiProcessCollector

        archive_dead_workers(self.path)
        with _locked(self.path, exclusive=False):
            files = [f for f in glob.glob(os.path.join(self.path, "*.db")) if _parse(f) is not None]
            return list(MultiProcessCollector.merge(files, accumulate=True))


_atexit_registered = False
_exit_hooks: list[Callable[[], None]] = []


def before_worker_exit(hook: Callable[[], None]) -> None:
    """Run ``hook`` when this worker exits, before its files are archived (for
    values still buffered in memory, like the HTTP metrics' accumulator)."""
    if hook not in _exit_hooks:
        _exit_hooks.append(hook)


def register_worker_exit() -> None:
    """Archive this process's own files when it exits normally.

    Registered automatically by :func:`vigil.sdk.instrument` in multiprocess mode.
    The handler archives whatever pid it runs in, so a handler inherited over
    ``fork`` does the right thing in each worker.
    """
    global _atexit_registered
    if _atexit_registered or not multiprocess_dir():
        return
    _atexit_registered = True
    atexit.register(_archive_self)


def _archive_self() -> None:
    path = multiprocess_dir()
    if not path or not os.path.isdir(path):
        return
    from prometheus_client import values

    pid = os.getpid()
    for hook in list(_exit_hooks):
        try:
            hook()
        except Exception:
            pass  # exiting; archive what did reach the files
    try:
        # Close our mmaps first so no late write lands in a deleted file.
        close = getattr(values.ValueClass, "close_all_files", None)
        if close is not None:
            close()
        archive_pids([pid], path)
    except Exception:
        pass  # exiting; never turn a clean shutdown into a traceback


# gunicorn server hooks: reference them from a gunicorn config file, e.g.
#   from vigil.sdk.multiprocess import on_starting, child_exit


def on_starting(server: Any) -> None:
    """gunicorn ``on_starting`` hook: clear the multiprocess directory once."""
    path = multiprocess_dir()
    if path:
        os.makedirs(path, exist_ok=True)
        clear_directory(path)


def child_exit(server: Any, worker: Any) -> None:
    """gunicorn ``child_exit`` hook (runs in the master): archive the dead worker."""
    archive_pids([worker.pid])
