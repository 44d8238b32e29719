"""Interop: scrape the real prometheus-node-exporter through the ScrapeManager."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest
import yaml

from vigil.config import load_config
from vigil.model.matchers import Matcher
from vigil.scrape.manager import ScrapeManager
from vigil.storage.memory import MemoryStorage

BINARY = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(BINARY is None, reason="prometheus-node-exporter binary not installed"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def node_exporter() -> Iterator[str]:
    assert BINARY is not None
    port = _free_port()
    addr = f"127.0.0.1:{port}"
    proc = subprocess.Popen(
        [BINARY, f"--web.listen-address={addr}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            pytest.fail("node exporter did not start listening")
        yield addr
    finally:
        proc.terminate()
        proc.wait(10)


def test_scrape_node_exporter(node_exporter: str) -> None:
    store = MemoryStorage()
    m = ScrapeManager(store)
    text = yaml.safe_dump(
        {
            "scrape_configs": [
                {
                    "job_name": "node",
                    "scrape_interval": "500ms",
                    "scrape_timeout": "450ms",
                    "static_configs": [{"targets": [node_exporter]}],
                }
            ]
        }
    )
    m.apply_config(load_config(text).config)
    m.start()
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            t = m.targets_active()[0]
            if t["health"] != "unknown":
                break
            time.sleep(0.05)
        assert t["health"] == "up", t["lastError"]
        q = store.querier(0, 1 << 62)
        up = q.select([Matcher.equal("__name__", "up")], 0, 1 << 62)
        assert [s.values.tolist()[0] for s in up] == [1.0]
        assert up[0].labels.to_dict() == {
            "__name__": "up",
            "instance": node_exporter,
            "job": "node",
        }
        cpu = q.select([Matcher.equal("__name__", "node_cpu_seconds_total")], 0, 1 << 62)
        modes = {s.labels.get("mode") for s in cpu}
        assert {"idle", "user", "system"} <= modes
        assert all(s.labels.get("job") == "node" and s.labels.get("cpu") for s in cpu)
        md = m.metadata("node_cpu_seconds_total")
        assert md["node_cpu_seconds_total"][0]["type"] == "counter"
        scraped = q.select([Matcher.equal("__name__", "scrape_samples_scraped")], 0, 1 << 62)
        assert scraped[0].values[0] > 100
    finally:
        m.stop()
