"""Remote-write receiver throughput: in-process decode+append, and over HTTP.

    python bench/bench_remote_write.py [--series 2000] [--samples 1] [--requests 200]

Prints samples/s for (1) `RemoteWriteReceiver.write` on a MemoryStorage-like null
store and (2) uvicorn + 2 client threads posting snappy bodies.
"""

from __future__ import annotations

import argparse
import socket
import threading
import time
from typing import Any

import httpx
import numpy as np
import uvicorn

from vigil.storage.interface import CommitStats
from vigil.web import WebContext, create_app
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


def bodies(n_series: int, n_samples: int, n_req: int) -> list[bytes]:
    t0 = int(time.time() * 1000) - 3_600_000
    out = []
    for r in range(n_req):
        out.append(
            encode_write_request(
                (
                    {
                        "__name__": f"metric_{i % 100}",
                        "instance": f"host-{i % 37}:9100",
                        "job": "node",
                        "series": str(i),
                    },
                    [(t0 + (r * n_samples + k) * 15, float(k)) for k in range(n_samples)],
                )
                for i in range(n_series)
            )
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=2000)
    ap.add_argument("--samples", type=int, default=1)
    ap.add_argument("--requests", type=int, default=200)
    a = ap.parse_args()
    import cramjam

    reqs = bodies(a.series, a.samples, 20)
    payloads = [bytes(cramjam.snappy.decompress_raw(b)) for b in reqs]
    per_req = a.series * a.samples
    rx = RemoteWriteReceiver(NullStore())
    now = int(time.time() * 1000)
    rx.write(payloads[0], now, 600_000)
    t = time.perf_counter()
    for i in range(a.requests):
        rx.write(payloads[i % len(payloads)], now, 600_000)
    dt = time.perf_counter() - t
    print(
        f"in-process decode+append: {a.requests * per_req / dt / 1e6:.2f} M samples/s "
        f"({a.series} series x {a.samples} samples per request)"
    )

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(WebContext(storage=NullStore())),
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
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}/api/v1/write"
    headers = {"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf"}

    def client(n: int) -> None:
        with httpx.Client() as c:
            for i in range(n):
                r = c.post(url, content=reqs[i % len(reqs)], headers=headers)
                assert r.status_code == 204, r.text

    client(2)
    t = time.perf_counter()
    threads = [threading.Thread(target=client, args=(a.requests // 2,)) for _ in range(2)]
    for th2 in threads:
        th2.start()
    for th2 in threads:
        th2.join()
    dt = time.perf_counter() - t
    print(f"HTTP, 2 client threads: {(a.requests // 2) * 2 * per_req / dt / 1e6:.2f} M samples/s")
    server.should_exit = True
    th.join(5)


if __name__ == "__main__":
    main()
