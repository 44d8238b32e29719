"""The seeds' feature store (001) as a FastAPI app instrumented with vigil.sdk.

Features are served from an in-process cache in front of a (simulated) offline
store; cache hits and misses are metrics, and ``/health`` degrades when the hit
rate falls under the seed's 80 % threshold.
"""

from __future__ import annotations

import logging
import random

from fastapi import FastAPI
from prometheus_client import Counter, Histogram

from vigil import sdk

SERVICE = "feature-store"
log = logging.getLogger("feature_store")
sdk.setup_logging(service=SERVICE)

cache_requests = Counter("feature_cache_requests_total", "Feature cache lookups.", ["result"])
feature_latency = Histogram("feature_retrieval_seconds", "Feature retrieval latency.", ["source"])
_cache: dict[str, dict[str, float]] = {}
_stats = {"hit": 0, "miss": 0}


def cache_health() -> dict[str, object]:
    total = _stats["hit"] + _stats["miss"]
    rate = _stats["hit"] / total if total else 1.0
    status = "healthy" if rate >= 0.8 or total < 20 else "degraded"
    issues = [] if status == "healthy" else [f"cache hit rate {rate:.2f} < 0.80"]
    return {"status": status, "hit_rate": round(rate, 3), "issues": issues}


health = sdk.HealthChecker().add("feature_cache", cache_health, critical=False).add_disk()
app = sdk.instrument(FastAPI(title=SERVICE), service=SERVICE, health=health)


@app.get("/features/{entity_id}")
def get_features(entity_id: str) -> dict[str, object]:
    """Return the feature vector of ``entity_id``, from cache when possible."""
    with feature_latency.labels("cache").time():
        features = _cache.get(entity_id)
    if features is not None:
        _stats["hit"] += 1
        cache_requests.labels("hit").inc()
    else:
        _stats["miss"] += 1
        cache_requests.labels("miss").inc()
        with feature_latency.labels("offline_store").time():
            features = {"avg_order_value": random.uniform(10, 100), "orders_7d": 3.0}
        _cache[entity_id] = features
        log.info("feature cache miss", extra={"entity_id": entity_id})
    return {"entity_id": entity_id, "features": features}
