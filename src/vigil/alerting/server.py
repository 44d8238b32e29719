"""Serving the notification pipeline over HTTP: inside `vigil up` or on its own.

`vigil alertmanager --config FILE --data-dir DIR --listen HOST:PORT` runs only this
part, for teams that keep their Prometheus and want Vigil's Alertmanager.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from vigil.alerting.alertmanager import Alertmanager
from vigil.alerting.api_v2 import create_alertmanager_routes
from vigil.alerting.config import load_config_file

log = logging.getLogger("vigil.alerting")


def lifespan_for(
    am: Alertmanager, on_sighup: Callable[[], None] | None = None
) -> Callable[[Any], contextlib.AbstractAsyncContextManager[None]]:
    """A Starlette lifespan that runs the dispatcher on the server's event loop.

    `on_sighup` runs on that loop too, so a reload never races the dispatcher."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        await am.start()
        loop = asyncio.get_running_loop()
        if on_sighup is not None and threading.current_thread() is threading.main_thread():
            loop.add_signal_handler(signal.SIGHUP, on_sighup)
        try:
            yield
        finally:
            if on_sighup is not None:
                with contextlib.suppress(Exception):
                    loop.remove_signal_handler(signal.SIGHUP)
            await am.stop()

    return lifespan


def logged(reload: Callable[[], None]) -> Callable[[], None]:
    """`reload` that logs a failure instead of raising (for signal handlers)."""

    def run() -> None:
        try:
            reload()
        except Exception as exc:
            log.error("reload failed, keeping the previous configuration: %s", exc)

    return run


def create_standalone_app(am: Alertmanager, reload: Callable[[], None]) -> Starlette:
    """API v2 plus Alertmanager's health, readiness and reload endpoints."""

    async def healthy(_req: Request) -> Response:
        return PlainTextResponse("OK")

    async def do_reload(_req: Request) -> Response:
        try:
            reload()
        except Exception as exc:
            return PlainTextResponse(f"failed to reload config: {exc}", status_code=500)
        return PlainTextResponse("")

    routes: list[BaseRoute] = [
        *create_alertmanager_routes(am),
        Route("/-/healthy", healthy, methods=["GET", "HEAD"]),
        Route("/-/ready", healthy, methods=["GET", "HEAD"]),
        Route("/-/reload", do_reload, methods=["POST", "PUT"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan_for(am, logged(reload)))


def run_standalone(config_file: Path, data_dir: Path, listen: str, log_level: str = "info") -> int:
    """Run until SIGINT/SIGTERM; SIGHUP and POST /-/reload re-read `config_file`."""
    from vigil.config.loader import ConfigError
    from vigil.httpserver import serve

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    host, _, port = listen.rpartition(":")
    if not port.isdigit():
        print(f"vigil alertmanager: --listen must be HOST:PORT, got {listen!r}")
        return 2
    try:
        config = load_config_file(config_file)
    except (ConfigError, OSError) as exc:
        print(f"vigil alertmanager: invalid configuration:\n{exc}")
        return 2
    data_dir.mkdir(parents=True, exist_ok=True)
    am = Alertmanager(config, data_dir=data_dir, external_url=f"http://{listen}")

    def reload() -> None:
        # Runs on the event loop (HTTP handler or SIGHUP), never beside the dispatcher.
        am.apply_config(load_config_file(config_file))
        log.info("alertmanager configuration reloaded")

    app = create_standalone_app(am, reload)
    serve(app, host.strip("[]") or "127.0.0.1", int(port))
    return 0
