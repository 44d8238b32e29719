"""Side by side with the real prometheus-node-exporter on this machine.

Both are scraped within milliseconds of each other with the same exclusion
flags; every family Vigil implements must exist there with the same label sets,
and values must agree (exactly for sizes, within a tolerance for counters).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest
from exporter_helpers import Series, free_port, parse, scrape

from vigil.exporters import system
from vigil.exporters.system import SystemExporter

BINARY = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(BINARY is None, reason="prometheus-node-exporter binary not installed"),
]

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

# Families node_exporter's enabled collectors expose that Vigil deliberately omits.
NOT_IMPLEMENTED = {
    "node_time_clocksource_available_info",
    "node_time_clocksource_current_info",
    "node_cpu_info",
    "node_cpu_frequency_hertz",
    "node_cpu_scaling_frequency_hertz",
    "node_disk_ata_rotation_rate_rpm",
    "node_disk_ata_write_cache",
    "node_disk_ata_write_cache_enabled",
    "node_disk_device_mapper_info",
    "node_filesystem_mount_info",
    "node_filesystem_purgeable_bytes",
}


@pytest.fixture(scope="module")
def node_exporter() -> Iterator[str]:
    assert BINARY is not None
    port = free_port()
    args = [
        BINARY,
        f"--web.listen-address=127.0.0.1:{port}",
        "--collector.disable-defaults",
        *[f"--collector.{c}" for c in COLLECTORS],
        f"--collector.filesystem.mount-points-exclude={system.DEFAULT_MOUNT_POINTS_EXCLUDE}",
        f"--collector.filesystem.fs-types-exclude={system.DEFAULT_FS_TYPES_EXCLUDE}",
        f"--collector.diskstats.device-exclude={system.DEFAULT_DISK_DEVICE_EXCLUDE}",
        f"--collector.netdev.device-exclude={system.DEFAULT_NETDEV_DEVICE_EXCLUDE}",
    ]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                httpx.get(url, timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("node exporter did not start")
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def both(url: str) -> tuple[Series, Series]:
    ours = scrape(SystemExporter())
    theirs = parse(httpx.get(url, timeout=5).text)
    return ours, theirs


def families(series: Series) -> dict[str, set[frozenset[tuple[str, str]]]]:
    out: dict[str, set[frozenset[tuple[str, str]]]] = {}
    for name, labels in series:
        out.setdefault(name, set()).add(labels)
    return out


def node_families(series: Series) -> dict[str, set[frozenset[tuple[str, str]]]]:
    return {
        n: ls
        for n, ls in families(series).items()
        if n.startswith("node_") and not n.startswith(("node_scrape_", "node_exporter_"))
    }


def test_same_families_and_label_sets(node_exporter: str) -> None:
    ours, theirs = both(node_exporter)
    mine, real = node_families(ours), node_families(theirs)
    assert set(mine) - set(real) == set(), "families node_exporter does not have"
    assert set(real) - set(mine) - NOT_IMPLEMENTED == set(), "families we miss"
    for name in mine:
        assert mine[name] == real[name], name


def test_values_agree(node_exporter: str) -> None:
    ours, theirs = both(node_exporter)
    exact_prefixes = (
        "node_memory_MemTotal_bytes",
        "node_memory_SwapTotal_bytes",
        "node_filesystem_size_bytes",
        "node_filesystem_files",
        "node_filesystem_readonly",
        "node_filesystem_device_error",
        "node_boot_time_seconds",
        "node_uname_info",
        "node_disk_info",
    )
    checked = 0
    for key, mine in ours.items():
        name = key[0]
        if key not in theirs or not name.startswith("node_") or name.startswith("node_scrape_"):
            continue
        real = theirs[key]
        checked += 1
        if name.startswith(exact_prefixes) and not name.startswith("node_filesystem_files_free"):
            assert mine == real, key
        elif name == "node_cpu_seconds_total":
            assert abs(mine - real) <= max(1.0, 0.03 * real), key
        elif name == "node_time_seconds":
            assert abs(mine - real) < 5, key
        elif name.startswith("node_load"):
            assert abs(mine - real) <= 1.0, key
        elif name.startswith("node_network_") or name.startswith("node_disk_"):
            # Both scrapes themselves move loopback traffic and disk counters a little.
            assert abs(mine - real) <= max(1e6, 0.05 * real), key
        elif name.startswith("node_filesystem_"):
            # Free space moves as other processes write; a few hundred MB is plenty.
            assert abs(mine - real) <= max(5e8, 0.01 * real), key
    assert checked > 50
