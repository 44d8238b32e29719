"""System exporter: the node_exporter collectors dashboards rely on, from /proc and /sys.

Metric names, label names, types and units are node_exporter's (1.x), so the
"Node Exporter Full" dashboard and the usual ``node_*`` alert rules work
unchanged.  Collectors: ``cpu``, ``meminfo``, ``filesystem``, ``diskstats``,
``netdev``, ``loadavg``, ``stat``, ``time``, ``uname``; each also reports
``node_scrape_collector_success`` and ``node_scrape_collector_duration_seconds``.

Options (all optional):

- ``proc_path`` (``/proc``), ``sys_path`` (``/sys``), ``rootfs_path`` (``/``): where
  the host's trees are mounted, as node_exporter's ``--path.*`` flags.
- ``collectors``: comma-separated subset of the collectors above.
- ``filesystem_mount_points_exclude``, ``filesystem_fs_types_exclude``,
  ``diskstats_device_exclude``, ``netdev_device_exclude``: regular expressions,
  defaulting to upstream node_exporter's defaults.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from prometheus_client.metrics_core import Metric

from vigil.exporters import procfs
from vigil.exporters.base import (
    ExporterOptionError,
    Family,
    Options,
    opt_regex,
    opt_str,
    reject_unknown,
)

log = logging.getLogger("vigil.exporters.system")

# Upstream node_exporter defaults (collector/filesystem_linux.go, diskstats, netdev).
DEFAULT_MOUNT_POINTS_EXCLUDE = (
    r"^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)"
)
DEFAULT_FS_TYPES_EXCLUDE = (
    r"^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs"
    r"|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs"
    r"|squashfs|sysfs|tracefs)$"
)
DEFAULT_DISK_DEVICE_EXCLUDE = r"^(ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$"
DEFAULT_NETDEV_DEVICE_EXCLUDE = r"^$"

COLLECTORS = (
    "cpu",
    "meminfo",
    "filesystem",
    "diskstats",
    "netdev",
    "loadavg",
    "stat",
    "time",
    "uname",
)

OPTIONS = (
    "proc_path",
    "sys_path",
    "rootfs_path",
    "collectors",
    "filesystem_mount_points_exclude",
    "filesystem_fs_types_exclude",
    "diskstats_device_exclude",
    "netdev_device_exclude",
)

SECTOR_BYTES = 512.0
"""/proc/diskstats counts 512-byte sectors whatever the device's real sector size."""

# (suffix, kind, help, scale) per /proc/diskstats column, in column order.
_DISK_COLUMNS: tuple[tuple[str, str, str, float], ...] = (
    ("reads_completed_total", "counter", "The total number of reads completed successfully.", 1.0),
    ("reads_merged_total", "counter", "The total number of reads merged.", 1.0),
    ("read_bytes_total", "counter", "The total number of bytes read successfully.", SECTOR_BYTES),
    (
        "read_time_seconds_total",
        "counter",
        "The total number of seconds spent by all reads.",
        0.001,
    ),
    (
        "writes_completed_total",
        "counter",
        "The total number of writes completed successfully.",
        1.0,
    ),
    ("writes_merged_total", "counter", "The number of writes merged.", 1.0),
    (
        "written_bytes_total",
        "counter",
        "The total number of bytes written successfully.",
        SECTOR_BYTES,
    ),
    (
        "write_time_seconds_total",
        "counter",
        "This is the total number of seconds spent by all writes.",
        0.001,
    ),
    ("io_now", "gauge", "The number of I/Os currently in progress.", 1.0),
    ("io_time_seconds_total", "counter", "Total seconds spent doing I/Os.", 0.001),
    (
        "io_time_weighted_seconds_total",
        "counter",
        "The weighted # of seconds spent doing I/Os.",
        0.001,
    ),
    (
        "discards_completed_total",
        "counter",
        "The total number of discards completed successfully.",
        1.0,
    ),
    ("discards_merged_total", "counter", "The total number of discards merged.", 1.0),
    (
        "discarded_sectors_total",
        "counter",
        "The total number of sectors discarded successfully.",
        1.0,
    ),
    (
        "discard_time_seconds_total",
        "counter",
        "This is the total number of seconds spent by all discards.",
        0.001,
    ),
    (
        "flush_requests_total",
        "counter",
        "The total number of flush requests completed successfully",
        1.0,
    ),
    (
        "flush_requests_time_seconds_total",
        "counter",
        "This is the total number of seconds spent by all flush requests.",
        0.001,
    ),
)

_UDEV_LABELS = (
    ("path", "ID_PATH"),
    ("wwn", "ID_WWN"),
    ("model", "ID_MODEL"),
    ("serial", "ID_SERIAL_SHORT"),
    ("revision", "ID_REVISION"),
)


class SystemExporter:
    """node_exporter-compatible host metrics; cheap enough to scrape every second."""

    name = "system"

    def __init__(self, options: Options | None = None) -> None:
        options = options or {}
        reject_unknown(self.name, options, OPTIONS)
        self.proc = Path(opt_str(options, "proc_path", "/proc"))
        self.sys = Path(opt_str(options, "sys_path", "/sys"))
        self.rootfs = opt_str(options, "rootfs_path", "/")
        wanted = opt_str(options, "collectors", ",".join(COLLECTORS))
        self.collectors = [c.strip() for c in wanted.split(",") if c.strip()]
        unknown = set(self.collectors) - set(COLLECTORS)
        if unknown:
            raise ExporterOptionError(
                f"exporter 'system': unknown collector(s) {', '.join(sorted(unknown))}"
            )
        self.mount_exclude = opt_regex(
            options, "filesystem_mount_points_exclude", DEFAULT_MOUNT_POINTS_EXCLUDE
        )
        self.fstype_exclude = opt_regex(
            options, "filesystem_fs_types_exclude", DEFAULT_FS_TYPES_EXCLUDE
        )
        self.disk_exclude = opt_regex(
            options, "diskstats_device_exclude", DEFAULT_DISK_DEVICE_EXCLUDE
        )
        self.netdev_exclude = opt_regex(
            options, "netdev_device_exclude", DEFAULT_NETDEV_DEVICE_EXCLUDE
        )
        self._table: dict[str, Callable[[], Iterator[Metric]]] = {
            "cpu": self._cpu,
            "meminfo": self._meminfo,
            "filesystem": self._filesystem,
            "diskstats": self._diskstats,
            "netdev": self._netdev,
            "loadavg": self._loadavg,
            "stat": self._stat,
            "time": self._time,
            "uname": self._uname,
        }

    def describe(self) -> list[Metric]:
        return []

    def close(self) -> None:
        pass

    def collect(self) -> Iterator[Metric]:
        """Run each enabled collector; one failing collector does not hide the others."""
        duration = Family(
            "node_scrape_collector_duration_seconds",
            "node_exporter: Duration of a collector scrape.",
            "gauge",
            ["collector"],
        )
        success = Family(
            "node_scrape_collector_success",
            "node_exporter: Whether a collector succeeded.",
            "gauge",
            ["collector"],
        )
        for name in self.collectors:
            start = time.perf_counter()
            try:
                # Materialise before yielding so a half-read collector yields nothing.
                families = list(self._table[name]())
                ok = True
            except (OSError, ValueError, IndexError) as err:
                log.warning("system exporter: collector %s failed: %s", name, err)
                families, ok = [], False
            yield from families
            duration.add(time.perf_counter() - start, name)
            success.add(1.0 if ok else 0.0, name)
        yield duration.metric
        yield success.metric

    # -- collectors ---------------------------------------------------------

    def _read_stat(self) -> procfs.Stat:
        return procfs.parse_stat(procfs.read_text(self.proc / "stat"))

    def _cpu(self) -> Iterator[Metric]:
        stat = self._read_stat()
        seconds = Family(
            "node_cpu_seconds_total",
            "Seconds the CPUs spent in each mode.",
            "counter",
            ["cpu", "mode"],
        )
        guest = Family(
            "node_cpu_guest_seconds_total",
            "Seconds the CPUs spent in guests (VMs) for each mode.",
            "counter",
            ["cpu", "mode"],
        )
        for cpu, values in stat.cpus.items():
            for mode, value in zip(procfs.CPU_MODES, values[:8], strict=True):
                seconds.add(value, cpu, mode)
            guest.add(values[8], cpu, "user")
            guest.add(values[9], cpu, "nice")
        yield seconds.metric
        yield guest.metric

    def _meminfo(self) -> Iterator[Metric]:
        info = procfs.parse_meminfo(procfs.read_text(self.proc / "meminfo"))
        for key, value in sorted(info.items()):
            suffix = key[: -len("_bytes")] if key.endswith("_bytes") else key
            family = Family(
                f"node_memory_{key}",
                f"Memory information field {suffix}.",
                "gauge",
            )
            family.add(value)
            yield family.metric

    def _filesystem(self) -> Iterator[Metric]:
        labels = ["device", "fstype", "mountpoint"]
        fams = {
            "size": Family(
                "node_filesystem_size_bytes", "Filesystem size in bytes.", "gauge", labels
            ),
            "free": Family(
                "node_filesystem_free_bytes", "Filesystem free space in bytes.", "gauge", labels
            ),
            "avail": Family(
                "node_filesystem_avail_bytes",
                "Filesystem space available to non-root users in bytes.",
                "gauge",
                labels,
            ),
            "files": Family(
                "node_filesystem_files", "Filesystem total file nodes.", "gauge", labels
            ),
            "files_free": Family(
                "node_filesystem_files_free", "Filesystem total free file nodes.", "gauge", labels
            ),
            "readonly": Family(
                "node_filesystem_readonly", "Filesystem read-only status.", "gauge", labels
            ),
            "device_error": Family(
                "node_filesystem_device_error",
                "Whether an error occurred while getting statistics for the given device.",
                "gauge",
                labels,
            ),
        }
        mounts_file = self.proc / "1" / "mounts"
        if not mounts_file.exists():
            # Without access to PID 1 (unprivileged container) fall back to our own view.
            mounts_file = self.proc / "self" / "mounts"
        seen: set[tuple[str, str, str]] = set()
        for mount in procfs.parse_mounts(procfs.read_text(mounts_file)):
            if self.mount_exclude.search(mount.mountpoint) or self.fstype_exclude.search(
                mount.fstype
            ):
                continue
            key = (mount.device, mount.fstype, mount.mountpoint)
            if key in seen:
                continue
            seen.add(key)
            path = os.path.join(self.rootfs, mount.mountpoint.lstrip("/"))
            readonly = 1.0 if "ro" in mount.options else 0.0
            try:
                st = os.statvfs(path)
            except OSError as err:
                log.debug("statvfs %s failed: %s", path, err)
                fams["device_error"].add(1.0, *key)
                fams["readonly"].add(readonly, *key)
                continue
            fams["size"].add(st.f_blocks * st.f_bsize, *key)
            fams["free"].add(st.f_bfree * st.f_bsize, *key)
            fams["avail"].add(st.f_bavail * st.f_bsize, *key)
            fams["files"].add(st.f_files, *key)
            fams["files_free"].add(st.f_ffree, *key)
            fams["readonly"].add(readonly, *key)
            fams["device_error"].add(0.0, *key)
        for fam in fams.values():
            yield fam.metric

    def _udev_labels(self, major: int, minor: int) -> list[str]:
        props: dict[str, str] = {}
        try:
            text = procfs.read_text(Path("/run/udev/data") / f"b{major}:{minor}")
        except OSError:
            text = ""
        for line in text.splitlines():
            if line.startswith("E:") and "=" in line:
                k, _, v = line[2:].partition("=")
                props[k] = v
        return [props.get(key, "") for _, key in _UDEV_LABELS]

    def _diskstats(self) -> Iterator[Metric]:
        rows = procfs.parse_diskstats(procfs.read_text(self.proc / "diskstats"))
        fams = [Family(f"node_disk_{s}", h, k, ["device"]) for s, k, h, _ in _DISK_COLUMNS]
        info = Family(
            "node_disk_info",
            "Info of /sys/block/<block_device>.",
            "gauge",
            ["device", "major", "minor", *[label for label, _ in _UDEV_LABELS]],
        )
        for device, major, minor, values in rows:
            if self.disk_exclude.search(device):
                continue
            info.add(1.0, device, str(major), str(minor), *self._udev_labels(major, minor))
            for fam, (_, _, _, scale), value in zip(fams, _DISK_COLUMNS, values, strict=False):
                fam.add(value * scale, device)
        yield info.metric
        for fam in fams:
            if fam:
                yield fam.metric

    def _netdev(self) -> Iterator[Metric]:
        stats = procfs.parse_netdev(procfs.read_text(self.proc / "net" / "dev"))
        rx = {
            f: Family(
                f"node_network_receive_{f}_total",
                f"Network device statistic receive_{f}.",
                "counter",
                ["device"],
            )
            for f in (*procfs.NETDEV_RECEIVE, "nohandler")
        }
        tx = {
            f: Family(
                f"node_network_transmit_{f}_total",
                f"Network device statistic transmit_{f}.",
                "counter",
                ["device"],
            )
            for f in procfs.NETDEV_TRANSMIT
        }
        for device, (receive, transmit) in sorted(stats.items()):
            if self.netdev_exclude.search(device):
                continue
            for f, value in zip(procfs.NETDEV_RECEIVE, receive, strict=True):
                rx[f].add(value, device)
            for f, value in zip(procfs.NETDEV_TRANSMIT, transmit, strict=True):
                tx[f].add(value, device)
            # rx_nohandler is only in sysfs (and netlink), not in /proc/net/dev.
            try:
                nohandler = float(
                    procfs.read_text(
                        self.sys / "class" / "net" / device / "statistics" / "rx_nohandler"
                    )
                )
                rx["nohandler"].add(nohandler, device)
            except (OSError, ValueError):
                pass
        for fam in (*rx.values(), *tx.values()):
            if fam:
                yield fam.metric

    def _loadavg(self) -> Iterator[Metric]:
        loads = procfs.parse_loadavg(procfs.read_text(self.proc / "loadavg"))
        for minutes, value in zip((1, 5, 15), loads, strict=True):
            fam = Family(f"node_load{minutes}", f"{minutes}m load average.", "gauge")
            fam.add(value)
            yield fam.metric

    def _stat(self) -> Iterator[Metric]:
        stat = self._read_stat()
        for name, doc, kind, value in (
            ("node_boot_time_seconds", "Node boot time, in unixtime.", "gauge", stat.boot_time),
            (
                "node_context_switches_total",
                "Total number of context switches.",
                "counter",
                stat.context_switches,
            ),
            ("node_forks_total", "Total number of forks.", "counter", stat.forks),
            ("node_intr_total", "Total number of interrupts serviced.", "counter", stat.interrupts),
            (
                "node_procs_blocked",
                "Number of processes blocked waiting for I/O to complete.",
                "gauge",
                stat.procs_blocked,
            ),
            (
                "node_procs_running",
                "Number of processes in runnable state.",
                "gauge",
                stat.procs_running,
            ),
        ):
            fam = Family(name, doc, kind)
            fam.add(value)
            yield fam.metric

    def _time(self) -> Iterator[Metric]:
        now = time.time()
        fam = Family("node_time_seconds", "System time in seconds since epoch (1970).", "gauge")
        fam.add(now)
        yield fam.metric
        local = time.localtime(now)
        tz = Family(
            "node_time_zone_offset_seconds",
            "System time zone offset in seconds.",
            "gauge",
            ["time_zone"],
        )
        tz.add(float(local.tm_gmtoff or 0), local.tm_zone or "UTC")
        yield tz.metric

    def _uname(self) -> Iterator[Metric]:
        u = os.uname()
        try:
            domain = procfs.read_text(self.proc / "sys" / "kernel" / "domainname").strip()
        except OSError:
            domain = "(none)"
        fam = Family(
            "node_uname_info",
            "Labeled system information as provided by the uname system call.",
            "gauge",
            ["domainname", "machine", "nodename", "release", "sysname", "version"],
        )
        fam.add(1.0, domain, u.machine, u.nodename, u.release, u.sysname, u.version)
        yield fam.metric


def create(options: Options) -> SystemExporter:
    """Factory for the exporter registry."""
    return SystemExporter(options)
