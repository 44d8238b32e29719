"""Requests/s of a trivial FastAPI endpoint with and without vigil.sdk.

Usage: ``python bench/bench_sdk_overhead.py [--seconds 5] [--connections 32]``.
Each variant runs under uvicorn (one worker) in a subprocess; the load comes from
``wrk`` when installed, else a multi-threaded httpx client (which measures the
client as much as the server: prefer wrk). Prints throughput and loss vs. bare.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

APP = """
import logging, os
from fastapi import FastAPI
app = FastAPI()
log = logging.getLogger("bench")

@app.get("/items/{item_id}")
async def item(item_id: int):
    if os.environ.get("VARIANT") != "bare":
        log.info("item", extra={"item_id": item_id})
    return {"id": item_id}

variant = os.environ.get("VARIANT")
if variant != "bare":
    from vigil import sdk
    sdk.setup_logging(service="bench", stream=open(os.devnull, "w"))
    app = sdk.instrument(app, service="bench")
if variant == "tracing":
    from vigil.sdk.tracing import setup_tracing
    setup_tracing("bench", endpoint="http://127.0.0.1:9/v1/traces", app=app)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def load_wrk(url: str, seconds: int, conns: int) -> float:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{conns}", f"-d{seconds}s", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return float(match.group(1)) if match else 0.0


def load_httpx(url: str, seconds: int, conns: int) -> float:
    import httpx

    count = [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def worker() -> None:
        n = 0
        with httpx.Client() as client:
            while time.monotonic() < stop:
                client.get(url)
                n += 1
        with lock:
            count[0] += n

    threads = [threading.Thread(target=worker) for _ in range(min(conns, 16))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return count[0] / seconds


def run_variant(variant: str, seconds: int, conns: int, app_dir: str) -> float:
    port = free_port()
    env = {**os.environ, "VARIANT": variant}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--app-dir", app_dir, "benchapp:app", "--port", str(port),
         "--log-level", "error", "--no-access-log"],
        env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/items/1"
    try:
        import httpx

        for _ in range(100):
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        load = load_wrk if shutil.which("wrk") else load_httpx
        load(url, 1, conns)  # warm-up
        return load(url, seconds, conns)
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "benchapp.py"), "w") as fh:
            fh.write(APP)
        print(f"load generator: {'wrk' if shutil.which('wrk') else 'httpx threads'}")
        results = {
            v: run_variant(v, args.seconds, args.connections, tmp)
            for v in ("bare", "sdk", "tracing")
        }
    bare = results["bare"]
    for variant, rps in results.items():
        loss = 100.0 * (bare - rps) / bare if bare else 0.0
        print(f"{variant:8s} {rps:10.0f} req/s   loss vs bare: {loss:5.1f} %")


if __name__ == "__main__":
    main()
