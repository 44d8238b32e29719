"""Standalone exporter servers: HTTP surface, listen parsing, exit paths."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest
from exporter_helpers import free_port, parse, value

from vigil.exporters import ExporterOptionError, create, names
from vigil.exporters.standalone import make_server, parse_listen, serve


def test_registry_names_and_unknown() -> None:
    assert names() == ["gpu", "postgres", "process", "redis", "system"]
    with pytest.raises(KeyError, match="choose one of"):
        create("mysql")


def test_import_is_lazy() -> None:
    code = "import sys, vigil.exporters; print(any(m in sys.modules for m in ('redis', 'psycopg', 'pynvml')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("127.0.0.1:9100", ("127.0.0.1", 9100)),
        (":9100", ("127.0.0.1", 9100)),
        ("0.0.0.0:1", ("0.0.0.0", 1)),
        ("[::1]:9400", ("::1", 9400)),
    ],
)
def test_parse_listen(listen: str, expected: tuple[str, int]) -> None:
    assert parse_listen(listen) == expected


@pytest.mark.parametrize("listen", ["9100", "host:", "host:http", "h:70000"])
def test_parse_listen_rejects(listen: str) -> None:
    with pytest.raises(ValueError):
        parse_listen(listen)


def test_serves_metrics_index_and_404() -> None:
    server, exporter = make_server(
        "system", f"127.0.0.1:{free_port()}", {"collectors": "loadavg,uname"}
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        host, port = server.server_address[:2]
        base = f"http://{host}:{port}"
        r = httpx.get(f"{base}/metrics")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/plain")
        assert value(parse(r.text), "node_load1") >= 0
        om = httpx.get(f"{base}/metrics", headers={"Accept": "application/openmetrics-text"})
        assert om.text.rstrip().endswith("# EOF")
        assert "/metrics" in httpx.get(base + "/").text
        assert httpx.get(base + "/nope").status_code == 404
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
        exporter.close()


def test_bad_option_fails_before_binding() -> None:
    with pytest.raises(ExporterOptionError):
        make_server("redis", f"127.0.0.1:{free_port()}", {"adress": "x"})


def test_port_in_use_exits_clearly() -> None:
    server, exporter = make_server("system", f"127.0.0.1:{free_port()}", {})
    try:
        port = server.server_address[1]
        with pytest.raises(SystemExit, match="vigil exporter system"):
            serve("system", f"127.0.0.1:{port}", {})
    finally:
        server.server_close()
        exporter.close()


def _gpu_present() -> bool:
    return create("gpu").startup_error() is None


@pytest.mark.skipif(_gpu_present(), reason="this machine has a GPU")
def test_gpu_without_gpu_exits_with_message() -> None:
    with pytest.raises(SystemExit) as info:
        serve("gpu", f"127.0.0.1:{free_port()}", {})
    assert "idle_without_gpu=true" in str(info.value.code)


def test_process_serves_until_sigterm() -> None:
    """A real standalone process: serves an idle GPU exporter, stops cleanly on SIGTERM."""
    port = free_port()
    code = (
        "import logging; logging.basicConfig(level=logging.INFO);"
        "from vigil.exporters.standalone import serve;"
        f"serve('gpu', '127.0.0.1:{port}', {{'idle_without_gpu': 'true'}})"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1)
                break
            except httpx.HTTPError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "standalone exporter did not start"
                time.sleep(0.05)
        assert "vigil_gpu_exporter_up" in r.text
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()
