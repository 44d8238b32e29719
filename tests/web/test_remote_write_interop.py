"""The real Prometheus remote-writes its own metrics into Vigil's receiver."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
import uvicorn

from vigil.model.matchers import Matcher
from vigil.storage.memory import MemoryStorage
from vigil.web import WebContext, create_app

from web_fixtures import free_port

PROMETHEUS = "/usr/bin/prometheus"

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(not os.access(PROMETHEUS, os.X_OK), reason=f"{PROMETHEUS} not installed"),
]


def test_prometheus_remote_writes_into_vigil(tmp_path: Path) -> None:
    st = MemoryStorage()
    vport, pport = free_port(), free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(WebContext(storage=st)),
            host="127.0.0.1",
            port=vport,
            log_level="warning",
            lifespan="off",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(
        "global: {scrape_interval: 1s}\n"
        f"scrape_configs: [{{job_name: prom, static_configs: [{{targets: ['127.0.0.1:{pport}']}}]}}]\n"
        f"remote_write: [{{url: 'http://127.0.0.1:{vport}/api/v1/write', "
        "queue_config: {batch_send_deadline: 1s}}]\n"
    )
    log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115 (closed in finally)
    proc = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={cfg}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{pport}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        found: list = []
        while time.monotonic() < deadline and not found:
            time.sleep(0.5)
            q = st.querier(0, 2**62)
            found = q.series([Matcher.equal("__name__", "prometheus_build_info")], 0, 2**62)
        assert found, (tmp_path / "prometheus.log").read_text()[-2000:]
        assert found[0].get("job") == "prom"
        up = st.querier(0, 2**62).select([Matcher.equal("__name__", "up")], 0, 2**62)
        assert up and float(up[0].values[-1]) == 1.0
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        server.should_exit = True
        thread.join(10)
        shutil.rmtree(tmp_path / "data", ignore_errors=True)
