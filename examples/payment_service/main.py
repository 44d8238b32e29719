"""The seeds' payment service (002) as a FastAPI app instrumented with vigil.sdk.

Run: ``PROMETHEUS_MULTIPROC_DIR=/tmp/pay uvicorn --app-dir examples/payment_service
main:app --workers 2`` and scrape ``/metrics``. Logs are JSON lines on stderr with
request ids; ``/health`` reports the gateway and database checks.
"""

from __future__ import annotations

import logging
import os
import random
import time

from fastapi import FastAPI, HTTPException
from prometheus_client import Counter, Histogram

from vigil import sdk

SERVICE = "payment-service"
log = logging.getLogger("payment_service")
sdk.setup_logging(service=SERVICE, static_fields={"environment": os.environ.get("ENV", "dev")})

payment_requests = Counter(
    "payment_requests_total", "Payment requests.", ["status", "gateway", "user_tier"]
)
payment_amount = Histogram(
    "payment_amount_usd", "Payment amounts in USD.", ["currency", "user_tier"],
    buckets=(1, 10, 50, 100, 500, 1000, 5000),
)  # fmt: skip


class PaymentGatewayError(Exception):
    """The payment gateway refused or failed the charge."""


health = sdk.HealthChecker().add("gateway", lambda: {"status": "healthy", "latency_ms": 12})
app = sdk.instrument(FastAPI(title=SERVICE), service=SERVICE, version="1.0.0", health=health)


@app.post("/payments/{order_id}")
def process_payment(order_id: str, user_id: str, amount: float, tier: str = "standard") -> dict:
    """Charge ``amount`` for ``order_id``: the seed's ``process_payment``."""
    sdk.set_user_id(user_id)
    log.info("payment processing started", extra={"order_id": order_id, "amount": amount})
    if amount <= 0:
        payment_requests.labels("invalid", "stripe", tier).inc()
        raise HTTPException(400, "amount must be positive")
    start = time.perf_counter()
    if amount >= 10_000:  # the gateway's fraud limit, as in the seed's failure scenario
        payment_requests.labels("failed", "stripe", tier).inc()
        log.error("payment gateway refused", extra={"order_id": order_id, "error_code": "LIMIT"})
        raise PaymentGatewayError("amount over gateway limit")
    time.sleep(random.uniform(0, 0.002))
    payment_requests.labels("success", "stripe", tier).inc()
    payment_amount.labels("USD", tier).observe(amount)
    log.info(
        "payment completed",
        extra={"order_id": order_id, "duration_ms": round((time.perf_counter() - start) * 1e3, 2)},
    )
    return {"order_id": order_id, "status": "success", "request_id": sdk.get_request_id()}
