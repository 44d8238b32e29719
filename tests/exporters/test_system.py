"""System exporter: parsing against fixture trees, and the real host."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from exporter_helpers import scrape, value, values

from vigil.exporters import ExporterOptionError, create, procfs
from vigil.exporters.system import SystemExporter

MEMINFO = """MemTotal:       16384000 kB
MemFree:         1000000 kB
MemAvailable:    8000000 kB
Active(anon):      20000 kB
HugePages_Total:       0
Hugepagesize:       2048 kB
"""

STAT = f"""cpu  100 0 50 1000 5 0 1 0 0 0
cpu0 {int(procfs.USER_HZ) * 3} 0 50 1000 5 0 1 2 7 0
cpu1 100 0 50 1000 5 0 1 0 0 0
intr 12345 1 2 3
ctxt 999
btime 1700000000
processes 4242
procs_running 3
procs_blocked 1
"""

DISKSTATS = (
    "   7       0 loop0 1 0 8 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
    " 254       0 vda 10 2 100 2000 20 4 300 4000 1 500 6000 7 8 9 10 11 12\n"
    " 254       1 vda1 1 1 1 1 1 1 1 1 1 1 1\n"
)

NETDEV = """Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 500 5 0 0 0 0 0 0 500 5 0 0 0 0 0 0
  eth0: 1000 10 1 2 3 4 5 6 2000 20 7 8 9 10 11 12
"""


@pytest.fixture
def fake_proc(tmp_path: Path) -> Path:
    """A minimal procfs tree; mounts point at tmp_path so statvfs is real."""
    proc = tmp_path / "proc"
    (proc / "1").mkdir(parents=True)
    (proc / "net").mkdir()
    (proc / "meminfo").write_text(MEMINFO)
    (proc / "stat").write_text(STAT)
    (proc / "loadavg").write_text("0.50 1.25 2.00 2/345 6789\n")
    (proc / "diskstats").write_text(DISKSTATS)
    (proc / "net" / "dev").write_text(NETDEV)
    (proc / "1" / "mounts").write_text(
        f"/dev/vdz {tmp_path} ext4 ro,relatime 0 0\n"
        f"/dev/vdz {tmp_path} ext4 ro,relatime 0 0\n"
        "proc /proc proc rw 0 0\n"
        "tmpfs /dev/shm tmpfs rw 0 0\n"
        "/dev/gone /no/such/mount\\040point xfs rw 0 0\n"
    )
    return proc


def exporter_for(proc: Path, **extra: str) -> SystemExporter:
    return SystemExporter({"proc_path": str(proc), "sys_path": str(proc / "nosys"), **extra})


def test_meminfo_names_and_units(fake_proc: Path) -> None:
    s = scrape(exporter_for(fake_proc, collectors="meminfo"))
    assert value(s, "node_memory_MemTotal_bytes") == 16384000 * 1024
    assert value(s, "node_memory_Active_anon_bytes") == 20000 * 1024
    assert value(s, "node_memory_HugePages_Total") == 0
    assert value(s, "node_memory_Hugepagesize_bytes") == 2048 * 1024


def test_cpu_and_stat(fake_proc: Path) -> None:
    s = scrape(exporter_for(fake_proc, collectors="cpu,stat,loadavg"))
    assert value(s, "node_cpu_seconds_total", cpu="0", mode="user") == 3.0
    assert value(s, "node_cpu_seconds_total", cpu="0", mode="steal") == 2 / procfs.USER_HZ
    assert value(s, "node_cpu_guest_seconds_total", cpu="0", mode="user") == 7 / procfs.USER_HZ
    assert len(values(s, "node_cpu_seconds_total")) == 2 * 8
    assert value(s, "node_boot_time_seconds") == 1700000000
    assert value(s, "node_context_switches_total") == 999
    assert value(s, "node_intr_total") == 12345
    assert value(s, "node_forks_total") == 4242
    assert value(s, "node_procs_running") == 3
    assert value(s, "node_procs_blocked") == 1
    assert value(s, "node_load1") == 0.5
    assert value(s, "node_load15") == 2.0


def test_diskstats_units_and_default_exclusions(fake_proc: Path) -> None:
    s = scrape(exporter_for(fake_proc, collectors="diskstats"))
    assert {dict(k)["device"] for k in values(s, "node_disk_reads_completed_total")} == {"vda"}
    assert value(s, "node_disk_read_bytes_total", device="vda") == 100 * 512
    assert value(s, "node_disk_written_bytes_total", device="vda") == 300 * 512
    assert value(s, "node_disk_read_time_seconds_total", device="vda") == 2.0
    assert value(s, "node_disk_io_time_seconds_total", device="vda") == 0.5
    assert value(s, "node_disk_io_now", device="vda") == 1
    assert value(s, "node_disk_flush_requests_total", device="vda") == 11
    assert (
        value(
            s,
            "node_disk_info",
            device="vda",
            major="254",
            minor="0",
            model="",
            path="",
            revision="",
            serial="",
            wwn="",
        )
        == 1
    )


def test_netdev_and_exclude_option(fake_proc: Path) -> None:
    s = scrape(exporter_for(fake_proc, collectors="netdev", netdev_device_exclude="^lo$"))
    assert value(s, "node_network_receive_bytes_total", device="eth0") == 1000
    assert value(s, "node_network_receive_multicast_total", device="eth0") == 6
    assert value(s, "node_network_transmit_colls_total", device="eth0") == 10
    assert value(s, "node_network_transmit_compressed_total", device="eth0") == 12
    assert ("node_network_receive_bytes_total", frozenset({("device", "lo")})) not in s


def test_filesystem_exclusions_dedup_and_errors(fake_proc: Path, tmp_path: Path) -> None:
    s = scrape(exporter_for(fake_proc, collectors="filesystem"))
    mounts = {dict(k)["mountpoint"] for k in values(s, "node_filesystem_readonly")}
    assert mounts == {str(tmp_path), "/no/such/mount point"}
    labels = {"device": "/dev/vdz", "fstype": "ext4", "mountpoint": str(tmp_path)}
    st = os.statvfs(tmp_path)
    assert value(s, "node_filesystem_size_bytes", **labels) == st.f_blocks * st.f_bsize
    assert value(s, "node_filesystem_readonly", **labels) == 1
    assert value(s, "node_filesystem_device_error", **labels) == 0
    gone = {"device": "/dev/gone", "fstype": "xfs", "mountpoint": "/no/such/mount point"}
    assert value(s, "node_filesystem_device_error", **gone) == 1
    assert ("node_filesystem_size_bytes", frozenset(gone.items())) not in s


def test_failing_collector_is_reported_not_raised(tmp_path: Path) -> None:
    s = scrape(SystemExporter({"proc_path": str(tmp_path), "collectors": "meminfo,uname"}))
    assert value(s, "node_scrape_collector_success", collector="meminfo") == 0
    assert value(s, "node_scrape_collector_success", collector="uname") == 1


def test_bad_options_are_rejected() -> None:
    with pytest.raises(ExporterOptionError, match="unknown option"):
        create("system", {"proc": "/proc"})
    with pytest.raises(ExporterOptionError, match="unknown collector"):
        create("system", {"collectors": "cpu,bogus"})
    with pytest.raises(ExporterOptionError, match="regular expression"):
        create("system", {"netdev_device_exclude": "("})


def test_real_host_smoke() -> None:
    s = scrape(create("system"))
    assert value(s, "node_memory_MemTotal_bytes") > 0
    assert len(values(s, "node_uname_info")) == 1
    assert all(v == 1 for v in values(s, "node_scrape_collector_success").values())
