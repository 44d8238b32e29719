"""Process exporter: the standard ``process_*`` metrics of chosen processes, from /proc.

The metric names and units are those every Prometheus client library exposes for
its own process (``process_cpu_seconds_total``, ``process_resident_memory_bytes``,
...), with ``pid`` and ``name`` labels added so several processes fit in one
scrape.  Processes are chosen by options, any combination of:

- ``pid``: comma-separated PIDs;
- ``pidfile``: a file holding a PID (re-read every scrape, so restarts are followed);
- ``name``: a regular expression fully matching the process name (``comm``);
- ``cmdline``: a regular expression searched in the full command line.

With no selector the exporter reports its own process.  ``proc_path`` points at
another procfs.  ``vigil_process_exporter_matched_processes{selector}`` counts the
processes each selector found, so "my worker is gone" is an alert on ``== 0``.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

from prometheus_client.metrics_core import Metric

from vigil.exporters import procfs
from vigil.exporters.base import (
    ErrorLogger,
    ExporterOptionError,
    Family,
    Options,
    opt_str,
    reject_unknown,
)

log = logging.getLogger("vigil.exporters.process")

OPTIONS = ("pid", "pidfile", "name", "cmdline", "proc_path")
LABELS = ["pid", "name"]


class ProcessExporter:
    """Per-process CPU, memory, file descriptor and thread metrics."""

    name = "process"

    def __init__(self, options: Options | None = None) -> None:
        options = options or {}
        reject_unknown(self.name, options, OPTIONS)
        self.proc = Path(opt_str(options, "proc_path", "/proc"))
        try:
            self.pids = [int(p) for p in opt_str(options, "pid", "").split(",") if p.strip()]
        except ValueError:
            raise ExporterOptionError(
                f"option 'pid': expected comma-separated integers, got {options['pid']!r}"
            ) from None
        self.pidfile = opt_str(options, "pidfile", "") or None
        try:
            name = opt_str(options, "name", "")
            self.name_re = re.compile(name) if name else None
            cmdline = opt_str(options, "cmdline", "")
            self.cmdline_re = re.compile(cmdline) if cmdline else None
        except re.error as err:
            raise ExporterOptionError(f"bad regular expression: {err}") from None
        if not (self.pids or self.pidfile or self.name_re or self.cmdline_re):
            self.pids = [os.getpid()]
        self._errors = ErrorLogger(log, "process exporter")

    def describe(self) -> list[Metric]:
        return []

    def close(self) -> None:
        pass

    def _select(self) -> tuple[dict[str, int], set[int]]:
        """Return (selector -> match count, chosen PIDs)."""
        counts: dict[str, int] = {}
        chosen: set[int] = set()
        for pid in self.pids:
            alive = (self.proc / str(pid)).is_dir()
            counts[f"pid={pid}"] = int(alive)
            if alive:
                chosen.add(pid)
        if self.pidfile:
            selector = f"pidfile={self.pidfile}"
            counts[selector] = 0
            try:
                pid = int(Path(self.pidfile).read_text().split()[0])
                if (self.proc / str(pid)).is_dir():
                    counts[selector] = 1
                    chosen.add(pid)
            except (OSError, ValueError, IndexError) as err:
                self._errors.failed(f"cannot read pidfile {self.pidfile}: {err}")
        if self.name_re or self.cmdline_re:
            if self.name_re:
                counts[f"name={self.name_re.pattern}"] = 0
            if self.cmdline_re:
                counts[f"cmdline={self.cmdline_re.pattern}"] = 0
            for pid in procfs.list_pids(self.proc):
                if self.name_re:
                    try:
                        comm = procfs.read_text(self.proc / str(pid) / "comm").rstrip("\n")
                    except OSError:
                        continue
                    if self.name_re.fullmatch(comm):
                        counts[f"name={self.name_re.pattern}"] += 1
                        chosen.add(pid)
                if self.cmdline_re and self.cmdline_re.search(
                    procfs.process_cmdline(self.proc, pid)
                ):
                    counts[f"cmdline={self.cmdline_re.pattern}"] += 1
                    chosen.add(pid)
        return counts, chosen

    def collect(self) -> Iterator[Metric]:
        """One sample per chosen process and metric; vanished processes are skipped."""
        fams = {
            "cpu": Family(
                "process_cpu_seconds_total",
                "Total user and system CPU time spent in seconds.",
                "counter",
                LABELS,
            ),
            "rss": Family(
                "process_resident_memory_bytes", "Resident memory size in bytes.", "gauge", LABELS
            ),
            "vsz": Family(
                "process_virtual_memory_bytes", "Virtual memory size in bytes.", "gauge", LABELS
            ),
            "start": Family(
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                "gauge",
                LABELS,
            ),
            "fds": Family("process_open_fds", "Number of open file descriptors.", "gauge", LABELS),
            "maxfds": Family(
                "process_max_fds", "Maximum number of open file descriptors.", "gauge", LABELS
            ),
            "threads": Family(
                "process_threads", "Number of OS threads in the process.", "gauge", LABELS
            ),
        }
        matched = Family(
            "vigil_process_exporter_matched_processes",
            "Processes found by each selector of the process exporter.",
            "gauge",
            ["selector"],
        )
        try:
            boot = procfs.parse_stat(procfs.read_text(self.proc / "stat")).boot_time
            counts, chosen = self._select()
        except OSError as err:
            self._errors.failed(f"cannot read {self.proc}: {err}")
            yield matched.metric
            return
        for selector, count in sorted(counts.items()):
            matched.add(count, selector)
        for pid in sorted(chosen):
            try:
                st = procfs.read_process(self.proc, pid, boot)
            except (OSError, ValueError, IndexError):
                continue  # exited between listing and reading
            labels = (str(pid), st.name)
            fams["cpu"].add(st.cpu_seconds, *labels)
            fams["rss"].add(st.resident_memory_bytes, *labels)
            fams["vsz"].add(st.virtual_memory_bytes, *labels)
            fams["start"].add(st.start_time_seconds, *labels)
            fams["threads"].add(st.threads, *labels)
            if st.open_fds is not None:
                fams["fds"].add(st.open_fds, *labels)
            if st.max_fds is not None:
                fams["maxfds"].add(st.max_fds, *labels)
        for fam in fams.values():
            yield fam.metric
        yield matched.metric


def create(options: Options) -> ProcessExporter:
    """Factory for the exporter registry."""
    return ProcessExporter(options)
