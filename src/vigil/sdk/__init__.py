"""Vigil's Python SDK: what instrumented applications import.

One call per concern::

    from vigil import sdk

    sdk.setup_logging(service="payments")
    app = sdk.instrument(FastAPI(), service="payments")
    sdk.setup_tracing(service="payments", app=app)

Importing this package loads nothing heavy: each name is imported from its module
on first use, so an application pays only for what it uses, and nothing of the
Vigil server (TSDB, PromQL, web) is ever imported.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vigil.sdk.access_log import AccessLog, setup_access_log
    from vigil.sdk.context import bind, get_request_id, set_request_id, set_user_id
    from vigil.sdk.health import HealthChecker
    from vigil.sdk.instrumentation import instrument
    from vigil.sdk.log_shipper import VigilLogHandler
    from vigil.sdk.logging import JsonFormatter, setup_logging
    from vigil.sdk.metrics import http_metrics, register_collector, render
    from vigil.sdk.multiprocess import enable_multiprocess
    from vigil.sdk.push import delete_metrics, push_metrics
    from vigil.sdk.tracing import setup_tracing, shutdown_tracing

_EXPORTS = {
    "instrument": "vigil.sdk.instrumentation",
    "http_metrics": "vigil.sdk.metrics",
    "register_collector": "vigil.sdk.metrics",
    "render": "vigil.sdk.metrics",
    "enable_multiprocess": "vigil.sdk.multiprocess",
    "setup_logging": "vigil.sdk.logging",
    "setup_access_log": "vigil.sdk.access_log",
    "AccessLog": "vigil.sdk.access_log",
    "JsonFormatter": "vigil.sdk.logging",
    "VigilLogHandler": "vigil.sdk.log_shipper",
    "setup_tracing": "vigil.sdk.tracing",
    "shutdown_tracing": "vigil.sdk.tracing",
    "HealthChecker": "vigil.sdk.health",
    "push_metrics": "vigil.sdk.push",
    "delete_metrics": "vigil.sdk.push",
    "bind": "vigil.sdk.context",
    "get_request_id": "vigil.sdk.context",
    "set_request_id": "vigil.sdk.context",
    "set_user_id": "vigil.sdk.context",
}

__all__ = [
    "AccessLog",
    "HealthChecker",
    "JsonFormatter",
    "VigilLogHandler",
    "bind",
    "delete_metrics",
    "enable_multiprocess",
    "get_request_id",
    "http_metrics",
    "instrument",
    "push_metrics",
    "register_collector",
    "render",
    "set_request_id",
    "set_user_id",
    "setup_access_log",
    "setup_logging",
    "setup_tracing",
    "shutdown_tracing",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'vigil.sdk' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
