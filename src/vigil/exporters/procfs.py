"""Parsers for the Linux ``/proc`` and ``/sys`` files the exporters read.

Each function takes the procfs (or sysfs) root so tests and containers can point
at another tree (node_exporter's ``--path.procfs``).  They return plain data;
naming and units for Prometheus are the collectors' business.  Time values read
in clock ticks are converted to seconds with ``USER_HZ``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

USER_HZ = float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0

CPU_MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def read_text(path: Path) -> str:
    """Read a small kernel file in one go (they are generated per read)."""
    with open(path, encoding="ascii", errors="replace") as fh:
        return fh.read()


@dataclass
class Stat:
    """The parts of ``/proc/stat`` node_exporter's cpu and stat collectors use."""

    cpus: dict[str, list[float]] = field(default_factory=dict)
    """cpu number -> seconds per mode, in CPU_MODES order, then guest, guest_nice."""
    boot_time: float = 0.0
    context_switches: float = 0.0
    interrupts: float = 0.0
    forks: float = 0.0
    procs_running: float = 0.0
    procs_blocked: float = 0.0


def parse_stat(text: str) -> Stat:
    """Parse ``/proc/stat``; per-CPU lines only (the aggregate ``cpu`` is skipped)."""
    stat = Stat()
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        key = parts[0]
        if key.startswith("cpu") and key != "cpu":
            ticks = [float(v) / USER_HZ for v in parts[1:11]]
            ticks += [0.0] * (10 - len(ticks))
            stat.cpus[key[3:]] = ticks
        elif key == "btime":
            stat.boot_time = float(parts[1])
        elif key == "ctxt":
            stat.context_switches = float(parts[1])
        elif key == "intr":
            stat.interrupts = float(parts[1])
        elif key == "processes":
            stat.forks = float(parts[1])
        elif key == "procs_running":
            stat.procs_running = float(parts[1])
        elif key == "procs_blocked":
            stat.procs_blocked = float(parts[1])
    return stat


_PARENS = re.compile(r"\((.*)\)")


def parse_meminfo(text: str) -> dict[str, float]:
    """Parse ``/proc/meminfo`` into node_exporter metric suffixes -> values.

    ``Active(anon)`` becomes ``Active_anon``; values given in kB are converted to
    bytes and get a ``_bytes`` suffix, unitless ones (``HugePages_Total``) do not.
    """
    result: dict[str, float] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        key = _PARENS.sub(r"_\1", parts[0].rstrip(":"))
        value = float(parts[1])
        if len(parts) == 3 and parts[2] == "kB":
            result[key + "_bytes"] = value * 1024
        else:
            result[key] = value
    return result


def parse_loadavg(text: str) -> tuple[float, float, float]:
    """Parse ``/proc/loadavg`` into the 1, 5 and 15 minute averages."""
    parts = text.split()
    return float(parts[0]), float(parts[1]), float(parts[2])


@dataclass(frozen=True)
class Mount:
    """One line of a mounts file."""

    device: str
    mountpoint: str
    fstype: str
    options: tuple[str, ...]


def _unescape_mount(field_text: str) -> str:
    # The kernel escapes space, tab, newline and backslash in octal (\040 ...).
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field_text)


def parse_mounts(text: str) -> list[Mount]:
    """Parse ``/proc/1/mounts`` (or ``/proc/self/mounts``)."""
    mounts = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 4:
            continue
        mounts.append(
            Mount(
                device=_unescape_mount(parts[0]),
                mountpoint=_unescape_mount(parts[1]),
                fstype=parts[2],
                options=tuple(parts[3].split(",")),
            )
        )
    return mounts


DISKSTAT_FIELDS = 17
"""Numeric columns after the device name on kernels >= 5.5 (older have 11 or 15)."""


def parse_diskstats(text: str) -> list[tuple[str, int, int, list[float]]]:
    """Parse ``/proc/diskstats`` into (device, major, minor, counters) rows."""
    rows = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 14:
            continue
        rows.append((parts[2], int(parts[0]), int(parts[1]), [float(v) for v in parts[3:]]))
    return rows


NETDEV_RECEIVE = ("bytes", "packets", "errs", "drop", "fifo", "frame", "compressed", "multicast")
NETDEV_TRANSMIT = ("bytes", "packets", "errs", "drop", "fifo", "colls", "carrier", "compressed")


def parse_netdev(text: str) -> dict[str, tuple[list[float], list[float]]]:
    """Parse ``/proc/net/dev`` into device -> (receive, transmit) counters."""
    result: dict[str, tuple[list[float], list[float]]] = {}
    for line in text.splitlines()[2:]:
        if ":" not in line:
            continue
        name, _, rest = line.partition(":")
        values = [float(v) for v in rest.split()]
        if len(values) < 16:
            continue
        result[name.strip()] = (values[:8], values[8:16])
    return result


@dataclass
class ProcessStat:
    """Per-process figures behind the standard ``process_*`` metrics."""

    pid: int
    name: str
    cpu_seconds: float
    """User plus system CPU time."""
    start_time_seconds: float
    """Unix time the process started (boot time plus its start ticks)."""
    virtual_memory_bytes: float
    resident_memory_bytes: float
    threads: float
    open_fds: float | None
    """None when the fd directory is not readable (another user's process)."""
    max_fds: float | None


PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def read_process(proc: Path, pid: int, boot_time: float) -> ProcessStat:
    """Read one process from ``proc/<pid>``; raises OSError when it is gone."""
    base = proc / str(pid)
    text = read_text(base / "stat")
    # comm may contain spaces and parentheses: split on the last ')'.
    lpar, rpar = text.index("("), text.rindex(")")
    name = text[lpar + 1 : rpar]
    fields = text[rpar + 2 :].split()
    # fields[0] is state (field 3 in proc(5)); field N is fields[N - 3].
    utime, stime = float(fields[11]), float(fields[12])
    threads = float(fields[17])
    start_ticks = float(fields[19])
    vsize = float(fields[20])
    rss_pages = float(fields[21])
    open_fds: float | None
    try:
        open_fds = float(len(os.listdir(base / "fd")))
    except OSError:
        open_fds = None
    return ProcessStat(
        pid=pid,
        name=name,
        cpu_seconds=(utime + stime) / USER_HZ,
        start_time_seconds=boot_time + start_ticks / USER_HZ,
        virtual_memory_bytes=vsize,
        resident_memory_bytes=rss_pages * PAGE_SIZE,
        threads=threads,
        open_fds=open_fds,
        max_fds=_max_open_files(base / "limits"),
    )


def _max_open_files(path: Path) -> float | None:
    try:
        text = read_text(path)
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("Max open files"):
            soft = line[len("Max open files") :].split()[0]
            return float("inf") if soft == "unlimited" else float(soft)
    return None


def list_pids(proc: Path) -> list[int]:
    """All numeric entries of the procfs root, ascending."""
    return sorted(int(e) for e in os.listdir(proc) if e.isdigit())


def process_cmdline(proc: Path, pid: int) -> str:
    """The command line of ``pid`` with NULs as spaces, or '' when unreadable."""
    try:
        with open(proc / str(pid) / "cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""
