from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from sdk_helpers import free_port

ROOT = Path(__file__).resolve().parents[2]


def _wait_up(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(base + "/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            raise AssertionError(log.read_text())
        time.sleep(0.1)


def _status_counts(text: str, route: str) -> dict[str, float]:
    counts: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("http_requests_total{") and route in line:
            status = line.split('status="')[1].split('"')[0]
            counts[status] = counts.get(status, 0) + float(line.rsplit(" ", 1)[1])
    return counts


def test_payment_service_under_uvicorn_workers(tmp_path: Path) -> None:
    port = free_port()
    mpdir = tmp_path / "mp"
    mpdir.mkdir()
    log = tmp_path / "uvicorn.log"
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(mpdir)}
    with log.open("wb") as log_file:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "uvicorn", "--app-dir", str(ROOT / "examples/payment_service"),
                "main:app", "--workers", "2", "--port", str(port), "--log-level", "warning",
            ],
            env=env, stdout=log_file, stderr=log_file,
        )  # fmt: skip
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_up(base, proc, log)
            ok, failed = 30, 3
            with httpx.Client(base_url=base, timeout=5) as client:
                for i in range(ok):
                    r = client.post(f"/payments/o{i}", params={"user_id": f"u{i}", "amount": 20})
                    assert r.status_code == 200
                    assert r.json()["request_id"] == r.headers["x-request-id"]
                for i in range(failed):
                    # uvicorn drops the connection after an unhandled error: use a new one.
                    r = httpx.post(
                        f"{base}/payments/f{i}", params={"user_id": "u", "amount": 20000}
                    )
                    assert r.status_code == 500
                # Each worker flushes its counts to the shared files every
                # FLUSH_INTERVAL; the scrape may be served by the other one.
                deadline = time.monotonic() + 5
                while True:
                    text = client.get("/metrics").text
                    counts = _status_counts(text, "/payments/{order_id}")
                    if counts == {"200": ok, "500": failed} or time.monotonic() > deadline:
                        break
                    time.sleep(0.1)
            assert counts == {"200": ok, "500": failed}, text
            assert (
                'payment_requests_total{gateway="stripe",status="success",user_tier="standard"} 30.0'
                in text
            )
            assert 'exception="PaymentGatewayError"' in text
        finally:
            proc.terminate()
            proc.wait(15)
    records = []
    for line in log.read_text().splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
    completed = [r for r in records if r["message"] == "payment completed"]
    assert len(completed) == ok
    assert all(len(r["request_id"]) == 32 and r["service"] == "payment-service" for r in completed)
    assert len({r["request_id"] for r in completed}) == ok
    assert {r["user_id"] for r in completed} == {f"u{i}" for i in range(ok)}
    refused = [r for r in records if r["message"] == "payment gateway refused"]
    assert len(refused) == failed and refused[0]["level"] == "ERROR"
