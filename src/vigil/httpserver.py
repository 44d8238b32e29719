"""Running an ASGI app with uvicorn so that SIGTERM ends in an orderly exit.

uvicorn re-raises SIGINT/SIGTERM after its graceful shutdown, which kills the
process before the caller can close its store or save state. Vigil wants
"stop serving, then close everything, then exit 0", like Prometheus.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Literal

import uvicorn


class GracefulServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            try:
                yield
            finally:
                # Handled already by the graceful shutdown; do not re-deliver.
                self._captured_signals.clear()


def serve(app: Any, host: str, port: int, lifespan: Literal["auto", "on", "off"] = "auto") -> None:
    """Serve until SIGINT/SIGTERM, then return normally."""
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False, lifespan=lifespan
    )
    GracefulServer(config).run()
