"""Remote-write receiver throughput: in-process decode+append, and over HTTP.

    python bench/bench_remote_write.py [--series 2000] [--samples 1] [--requests 200]
        [--store tsdb|memory|null] [--server thread|process] [--repeat 3] [--profile]

Prints samples/s for (1) `RemoteWriteReceiver.write` called in a loop and (2) uvicorn
serving `create_app` while 2 client threads post snappy bodies over keep-alive
connections; each is the best of `--repeat` rounds. Every request carries new timestamps, so a real store appends every
sample (nothing is a duplicate). Like Prometheus' shards, each client thread owns
its own series, so the two threads never race on one series' sample order.

`--store tsdb` (the default) is the real `vigil.tsdb.db.TSDB` in a temporary
directory with `wal_fsync="batch"`; `null` counts samples and stores nothing, to
measure the receiver alone. `--server process` runs uvicorn in a child process so
the client threads do not share its GIL (as a real Prometheus would not).
"""

from __future__ import annotations

import argparse
import cProfile
import http.client
import multiprocessing as mp
import pstats
import socket
import struct
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import cramjam
import numpy as np
import uvicorn

from vigil.storage.interface import CommitStats
from vigil.web import WebContext, create_app
from vigil.web.prompb import TimeSeries
from vigil.web.remote_write import RemoteWriteReceiver, encode_write_request


class NullStore:
    """Counts samples; measures the receiver, not a store."""

    def __init__(self) -> None:
        self.refs: dict[Any, int] = {}

    def appender(self) -> Any:
        store = self

        class App:
            n = 0

            def series_ref(self, labels: Any) -> int:
                return store.refs.setdefault(labels, len(store.refs))

            def append_refs(self, r: np.ndarray, t: np.ndarray, v: np.ndarray) -> None:
                self.n += len(r)

            def commit(self) -> CommitStats:
                return CommitStats(appended=self.n)

            def rollback(self) -> None:
                pass

        return App()


def open_store(kind: str, tmp: str) -> tuple[Any, Any]:
    """(store, close) for `kind`."""
    if kind == "null":
        return NullStore(), lambda: None
    if kind == "memory":
        from vigil.storage.memory import MemoryStorage

        return MemoryStorage(), lambda: None
    from vigil.tsdb.db import TSDB, TSDBOptions

    db = TSDB.open(Path(tmp), TSDBOptions(wal_fsync="batch", background=False))
    return db, db.close


T0 = int(time.time() * 1000) - 20 * 60_000


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _sample(t: int, v: float) -> bytes:
    # As protobuf encodes a Sample: fields equal to 0 are left out.
    body = (b"\x09" + struct.pack("<d", v) if v != 0.0 else b"") + (
        b"\x10" + _varint(t) if t else b""
    )
    return b"\x12" + _varint(len(body)) + body


def bodies(
    n_series: int, n_samples: int, n_req: int, first_series: int = 0, compress: bool = True
) -> list[bytes]:
    """`n_req` requests over the same series, each with the next `n_samples` timestamps.

    Encoded by hand (the same bytes as `encode_write_request`, checked on the first
    request) because encoding with protobuf takes longer than the benchmark."""
    labels = [
        {
            "__name__": f"metric_{i % 100}",
            "instance": f"host-{i % 37}:9100",
            "job": "node",
            "series": str(i),
        }
        for i in range(first_series, first_series + n_series)
    ]
    label_bytes = []
    for lb in labels:
        ts = TimeSeries()
        for k in sorted(lb):
            ts.labels.add(name=k, value=lb[k])
        label_bytes.append(ts.SerializeToString())
    out = []
    for r in range(n_req):
        samples = [(T0 + (r * n_samples + k) * 15, float(k + r)) for k in range(n_samples)]
        tail = b"".join(_sample(t, v) for t, v in samples)
        raw = b"".join(b"\x0a" + _varint(len(lb) + len(tail)) + lb + tail for lb in label_bytes)
        if r == 0:
            assert raw == encode_write_request(((lb, samples) for lb in labels), compress=False), (
                "hand encoding differs from protobuf's"
            )
        out.append(bytes(cramjam.snappy.compress_raw(raw)) if compress else raw)
    return out


def bench_in_process(a: argparse.Namespace) -> float:
    """Best of `a.repeat` rounds of `a.requests` requests, into one store."""
    payloads = bodies(a.series, a.samples, a.requests * a.repeat + 1, compress=False)
    best = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        store, close = open_store(a.store, tmp)
        rx = RemoteWriteReceiver(store)
        now = int(time.time() * 1000)
        rx.write(payloads[0], now, 600_000)  # creates the series
        prof = cProfile.Profile() if a.profile else None
        for rnd in range(a.repeat):
            if prof:
                prof.enable()
            t = time.perf_counter()
            n = 0
            for p in payloads[1 + rnd * a.requests : 1 + (rnd + 1) * a.requests]:
                n += rx.write(p, now, 600_000)
            dt = time.perf_counter() - t
            if prof:
                prof.disable()
            assert n == a.requests * a.series * a.samples, n
            best = max(best, n / dt)
        if prof:
            pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        close()
    return best


def _serve(store_kind: str, port: int, ready: Any, stop: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store, close = open_store(store_kind, tmp)
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(WebContext(storage=store)),
                host="127.0.0.1",
                port=port,
                log_level="warning",
                lifespan="off",
                access_log=False,
            )
        )
        th = threading.Thread(target=server.run, daemon=True)
        th.start()
        while not server.started:
            time.sleep(0.02)
        ready.set()
        stop.wait()
        server.should_exit = True
        th.join(10)
        close()


def bench_http(a: argparse.Namespace, peer_port: int | None = None) -> float:
    """Two client threads posting to Vigil, or to an already running peer."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = peer_port or s.getsockname()[1]
    per_thread = a.requests // 2
    # One extra request per thread creates its series before the clock starts.
    reqs = [
        bodies(a.series, a.samples, per_thread * a.repeat + 1, first_series=k * a.series)
        for k in (0, 1)
    ]
    if peer_port is not None:
        ready, stop = threading.Event(), threading.Event()
        proc: Any = threading.Thread(target=stop.wait, daemon=True)
        ready.set()
    elif a.server == "process":
        ctx = mp.get_context("spawn")
        ready, stop = ctx.Event(), ctx.Event()
        proc = ctx.Process(target=_serve, args=(a.store, port, ready, stop))
    else:
        ready, stop = threading.Event(), threading.Event()
        proc = threading.Thread(target=_serve, args=(a.store, port, ready, stop), daemon=True)
    proc.start()
    ready.wait(60)
    headers = {
        "Content-Encoding": "snappy",
        "Content-Type": "application/x-protobuf",
        "X-Prometheus-Remote-Write-Version": "0.1.0",
    }
    conns = [http.client.HTTPConnection("127.0.0.1", port) for _ in (0, 1)]

    def post(k: int, body: bytes) -> None:
        conns[k].request("POST", "/api/v1/write", body=body, headers=headers)
        r = conns[k].getresponse()
        text = r.read()
        assert r.status == 204, (r.status, text)

    def client(k: int, rnd: int) -> None:
        for body in reqs[k][1 + rnd * per_thread : 1 + (rnd + 1) * per_thread]:
            post(k, body)

    for k in (0, 1):
        post(k, reqs[k][0])
    best = 0.0
    for rnd in range(a.repeat):
        t = time.perf_counter()
        threads = [threading.Thread(target=client, args=(k, rnd)) for k in (0, 1)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        best = max(best, per_thread * 2 * a.series * a.samples / (time.perf_counter() - t))
    for c in conns:
        c.close()
    stop.set()
    proc.join(30)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=2000)
    ap.add_argument("--samples", type=int, default=1)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--store", choices=["tsdb", "memory", "null"], default="tsdb")
    ap.add_argument("--server", choices=["thread", "process"], default="thread")
    ap.add_argument("--repeat", type=int, default=3, help="report the best of N rounds")
    ap.add_argument("--profile", action="store_true", help="cProfile the in-process run")
    ap.add_argument("--skip-http", action="store_true")
    a = ap.parse_args()
    shape = f"{a.series} series x {a.samples} samples per request, store {a.store}"
    print(f"in-process decode+append: {bench_in_process(a) / 1e6:.2f} M samples/s ({shape})")
    if not a.skip_http:
        rate = bench_http(a)
        print(f"HTTP, 2 client threads (server in a {a.server}): {rate / 1e6:.2f} M samples/s")
        peer = bench_prometheus(a)
        if peer:
            print(f"Prometheus receiver, same clients: {peer / 1e6:.2f} M samples/s")
            print(f"ratio vigil/prometheus: {rate / peer:.2f}")


def bench_prometheus(a: argparse.Namespace) -> float | None:
    """The same requests against the real Prometheus's remote-write receiver."""
    import tempfile
    from pathlib import Path

    import peers

    if not peers.have("prometheus"):
        return None
    with tempfile.TemporaryDirectory(prefix="rw-prom-") as tmp:
        srv = peers.start_prometheus(
            Path(tmp),
            "global: {scrape_interval: 1h}\n",
            extra_args=["--web.enable-remote-write-receiver"],
        )
        try:
            srv.wait_ready()
            return bench_http(a, peer_port=srv.port)
        finally:
            srv.stop()


if __name__ == "__main__":
    main()
