"""Start and measure the real peers (Prometheus, VictoriaMetrics) and Vigil itself.

Benchmarks use these to run the same workload against each server in the same run
and print ratios. Every server listens on 127.0.0.1 only and is stopped on exit.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    data_dir: Path
    log: Path
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu_seconds(self) -> float:
        """User+system CPU of the server process (and its reaped children)."""
        with open(f"/proc/{self.proc.pid}/stat") as fh:
            parts = fh.read().rsplit(")", 1)[1].split()
        return (int(parts[11]) + int(parts[12])) / CLK_TCK

    def rss_bytes(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def wait_ready(self, path: str = "/-/ready", timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + path, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} not ready after {timeout}s; log: {self.log}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _spawn(name: str, argv: Sequence[str], port: int, data_dir: Path, workdir: Path) -> Server:
    log = workdir / f"{name}.log"
    fh = open(log, "wb")  # noqa: SIM115 - owned by the child process for its lifetime
    proc = subprocess.Popen(list(argv), stdout=fh, stderr=subprocess.STDOUT, cwd=workdir)
    return Server(name, proc, port, data_dir, log)


def have(binary: str) -> bool:
    return shutil.which(binary) is not None


def start_prometheus(
    workdir: Path, config_yaml: str, data_dir: Path | None = None, extra_args: Sequence[str] = ()
) -> Server:
    port = free_port()
    data_dir = data_dir or workdir / "prom-data"
    cfg = workdir / "prometheus.yml"
    cfg.write_text(config_yaml)
    argv = [
        "prometheus",
        f"--config.file={cfg}",
        f"--storage.tsdb.path={data_dir}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
        *extra_args,
    ]
    return _spawn("prometheus", argv, port, data_dir, workdir)


def start_victoria(workdir: Path, extra_args: Sequence[str] = ()) -> Server:
    port = free_port()
    data_dir = workdir / "vm-data"
    binary = "victoria-metrics" if have("victoria-metrics") else "victoriametrics"
    argv = [
        binary,
        f"-storageDataPath={data_dir}",
        f"-httpListenAddr=127.0.0.1:{port}",
        "-search.disableCache",
        *extra_args,
    ]
    return _spawn("victoriametrics", argv, port, data_dir, workdir)


def start_vigil(
    workdir: Path, config_yaml: str, data_dir: Path | None = None, extra_args: Sequence[str] = ()
) -> Server:
    port = free_port()
    data_dir = data_dir or workdir / "vigil-data"
    cfg = workdir / "vigil.yml"
    cfg.write_text(config_yaml)
    argv = [
        sys.executable,
        "-m",
        "vigil.cli",
        "up",
        "--config",
        str(cfg),
        "--data-dir",
        str(data_dir),
        "--listen",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
        *extra_args,
    ]
    return _spawn("vigil", argv, port, data_dir, workdir)


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
