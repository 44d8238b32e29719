"""Scrape throughput: CPU-seconds per 1M scraped samples.

A separate process (bench/target_server.py) serves N-series bodies over HTTP on
127.0.0.1, so its CPU is not counted. This process scrapes it repeatedly with a
`ScrapeLoop` (the steady state: every series key cached) into each store and
reports process CPU time (user + system, all threads) per million samples:

- null: a store that only counts (the scraper's own cost: HTTP, parse, labels,
  staleness, report series, one bulk append);
- memory: `vigil.storage.memory.MemoryStorage`;
- tsdb: `vigil.tsdb.db.TSDB` in a temporary directory (when it exists).

Also prints parse-only CPU for the same body. Prometheus needs about 1.6
CPU-seconds per 1M samples on the reference machine.

Run: python bench/bench_scrape.py [--series 100000 10000] [--scrapes 10]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from vigil.config import ScrapeConfig  # noqa: E402
from vigil.model.labels import Labels  # noqa: E402
from vigil.scrape.exposition import parse  # noqa: E402
from vigil.scrape.http_client import make_client  # noqa: E402
from vigil.scrape.loop import LoopOptions, ScrapeLoop  # noqa: E402
from vigil.scrape.target import targets_from_group  # noqa: E402
from vigil.storage.interface import CommitStats  # noqa: E402
from vigil.storage.memory import MemoryStorage  # noqa: E402


class NullAppender:
    """Implements the Appender protocol, keeping only counts."""

    def __init__(self, store: NullStore) -> None:
        self._store = store
        self._n = 0

    def series_ref(self, labels: Labels) -> int:
        return self._store.ref(labels)

    def append(self, labels: Labels, t: int, v: float) -> int:
        self._n += 1
        return self.series_ref(labels)

    def append_refs(self, refs: np.ndarray, ts: np.ndarray, vs: np.ndarray) -> None:
        self._n += len(refs)

    def commit(self) -> CommitStats:
        n, self._n = self._n, 0
        return CommitStats(appended=n)

    def rollback(self) -> None:
        self._n = 0


class NullStore:
    def __init__(self) -> None:
        self._refs: dict[Labels, int] = {}

    def ref(self, labels: Labels) -> int:
        return self._refs.setdefault(labels, len(self._refs))

    def appender(self) -> NullAppender:
        return NullAppender(self)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_server(n_series: int) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "target_server.py"), str(port), str(n_series)], cwd=HERE
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("target server did not start")


async def _scrape(addr: str, store: Any, scrapes: int) -> tuple[float, float, int]:
    cfg = ScrapeConfig.model_validate(
        {"job_name": "bench", "scrape_interval": "15s", "scrape_timeout": "15s"}
    )
    target = targets_from_group(
        cfg, "0", [Labels.from_dict({"__address__": addr})], Labels.EMPTY
    ).active[0]
    t0 = 1_700_000_000_000
    async with make_client(cfg) as client:
        lp = ScrapeLoop(target, store, LoopOptions.from_config(cfg), client=client)
        out = await lp.scrape_once(t0)  # warm-up: fills the series cache
        if out.error:
            raise RuntimeError(out.error)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        samples = 0
        for i in range(1, scrapes + 1):
            out = await lp.scrape_once(t0 + i * 15_000)
            if out.error:
                raise RuntimeError(out.error)
            samples += out.scraped
        return time.process_time() - cpu0, time.perf_counter() - wall0, samples


def _parse_cpu(addr: str, reps: int) -> tuple[float, int]:
    import httpx

    body = httpx.get(f"http://{addr}/metrics").content
    cpu0 = time.process_time()
    n = 0
    for _ in range(reps):
        n += len(parse(body, "text/plain; version=0.0.4"))
    return time.process_time() - cpu0, n


def _stores(tmp: Path) -> list[tuple[str, Any, Any]]:
    out: list[tuple[str, Any, Any]] = [
        ("null", NullStore(), None),
        ("memory", MemoryStorage(), None),
    ]
    try:
        from vigil.tsdb.db import TSDB, TSDBOptions
    except ImportError:
        return out
    db = TSDB.open(tmp / "tsdb", TSDBOptions(background=False))
    out.append(("tsdb", db, db.close))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--series", type=int, nargs="+", default=[100_000, 10_000])
    ap.add_argument("--scrapes", type=int, default=10)
    args = ap.parse_args(argv)
    print(f"{'series':>8} {'store':>7} {'samples':>9} {'cpu_s':>7} {'wall_s':>7} {'cpu_s/1M':>9}")
    for n in args.series:
        proc, addr = _start_server(n)
        try:
            with tempfile.TemporaryDirectory() as tmp:
                for name, store, close in _stores(Path(tmp)):
                    try:
                        cpu, wall, samples = asyncio.run(_scrape(addr, store, args.scrapes))
                    finally:
                        if close is not None:
                            close()
                    per_m = cpu / samples * 1e6
                    print(
                        f"{n:>8} {name:>7} {samples:>9} {cpu:>7.2f} {wall:>7.2f} {per_m:>9.3f}",
                        flush=True,
                    )
            cpu, samples = _parse_cpu(addr, max(1, args.scrapes // 2))
            print(
                f"{n:>8} {'parse':>7} {samples:>9} {cpu:>7.2f} {'':>7} {cpu / samples * 1e6:>9.3f}",
                flush=True,
            )
        finally:
            proc.terminate()
            proc.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
