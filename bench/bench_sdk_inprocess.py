"""CPU per request of a trivial FastAPI endpoint with and without vigil.sdk, in one
process, through the ASGI interface (no sockets, no HTTP parsing).

Usage: ``python bench/bench_sdk_inprocess.py [--rounds 21] [--requests 2000]``

The load-generator benchmark (bench_sdk_overhead.py) is the real-world number, but
on a small shared machine its run-to-run noise (bare requests/s varying by 1.5x)
is larger than the overhead being measured. Here the variants run in the same
process and take turns round by round, so a slow spell hits all of them; what is
left out (uvicorn's HTTP parsing and the socket work, the same for every variant)
only makes the bare request cheaper, so the overhead ratios printed are upper
bounds of the real ones. Variants: ``bare``, ``metrics`` (``sdk.instrument``),
``access`` (metrics + the middleware's JSON access log), ``sdk`` (metrics + one
JSON line through stdlib logging per request, ``setup_logging``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import time
from typing import Any

from fastapi import FastAPI

from vigil import sdk


def make_app(log_line: bool) -> FastAPI:
    app = FastAPI()
    log = logging.getLogger("bench")

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        if log_line:
            log.info("item", extra={"item_id": item_id})
        return {"id": item_id}

    return app


def build() -> dict[str, Any]:
    devnull_text = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the bench
    devnull_bin = open(os.devnull, "wb")  # noqa: SIM115
    sdk.setup_logging(service="bench", stream=devnull_text, logger="bench")
    logging.getLogger("bench").propagate = False
    access = sdk.setup_access_log(service="bench", stream=devnull_bin)
    return {
        "bare": make_app(False),
        "metrics": sdk.instrument(make_app(False), service="bench"),
        "access": sdk.instrument(make_app(False), service="bench", access_log=access),
        "sdk": sdk.instrument(make_app(True), service="bench"),
    }


async def drive(app: Any, n: int) -> float:
    """Process CPU seconds for `n` requests to `app`."""

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        pass

    headers = [(b"host", b"bench"), (b"user-agent", b"wrk"), (b"accept", b"*/*")]
    started = time.process_time()
    for i in range(n):
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "GET", "scheme": "http", "path": f"/items/{i % 100}",
            "raw_path": f"/items/{i % 100}".encode(), "query_string": b"",
            "root_path": "", "headers": headers, "client": ("127.0.0.1", 5000),
            "server": ("127.0.0.1", 8000),
        }  # fmt: skip
        await app(scope, receive, send)
    return time.process_time() - started


async def main_async(rounds: int, requests: int) -> None:
    apps = build()
    per_request: dict[str, list[float]] = {name: [] for name in apps}
    for app in apps.values():
        await drive(app, 500)  # warm-up: routes, caches, metric children
    names = list(apps)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            per_request[name].append(await drive(apps[name], requests) / requests * 1e6)
    bare = statistics.median(per_request["bare"])
    print(f"{'variant':8s} {'CPU us/req':>10s} {'over bare':>10s} {'throughput loss':>16s}")
    for name in names:
        med = statistics.median(per_request[name])
        extra = med - bare
        loss = 100.0 * (1 - bare / med)
        cells = f"{'' if name == 'bare' else f'+{extra:.1f}':>10s} {'' if name == 'bare' else f'{loss:.1f}%':>16s}"
        print(f"{name:8s} {med:10.1f} {cells}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    asyncio.run(main_async(args.rounds, args.requests))


if __name__ == "__main__":
    main()
