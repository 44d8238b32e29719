"""Plain helpers for tests (import as `from _support import ...`; tests/ is on sys.path)."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import httpx

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

T = TypeVar("T")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(fn: Callable[[], T], timeout: float = 30.0, interval: float = 0.1) -> T:
    """Poll `fn` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: T = fn()
    while not last:
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in {timeout}s; last={last!r}")
        time.sleep(interval)
        last = fn()
    return last


class ServerProcess:
    """A real server started as a child process (Vigil, Prometheus, Alertmanager),
    its output in `<workdir>/<name>.log`. Call `stop()` when done."""

    def __init__(self, name: str, argv: Sequence[str], port: int, workdir: Path) -> None:
        self.name = name
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = workdir / f"{name}.log"
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                list(argv), stdout=out, stderr=subprocess.STDOUT, cwd=workdir
            )

    def output(self) -> str:
        """The last 3000 characters the server printed."""
        return self.log_path.read_text(errors="replace")[-3000:]

    def wait_ready(self, timeout: float = 60.0, path: str = "/-/ready") -> None:
        """Poll `path` until it answers 200; fail with the log if the server exits."""

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited {self.proc.returncode}:\n{self.output()}")
            try:
                return httpx.get(self.url + path, timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, timeout=timeout, interval=0.1)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Signal the server and wait (killing it after 20 s); returns its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode
