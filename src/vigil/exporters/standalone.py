"""Run one built-in exporter as its own HTTP server, like the community exporters.

``vigil exporter redis --listen 127.0.0.1:9121 --option addr=10.0.0.5:6379`` ends up
in :func:`serve`.  The server answers ``/metrics`` (Prometheus text, or OpenMetrics
when the scraper asks for it, and gzip when accepted) through prometheus_client's
WSGI app, ``/`` with a short page linking there, and 404 elsewhere.  Each request
runs in its own thread; collectors are scraped on demand, nothing runs between
scrapes.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer
from wsgiref.simple_server import make_server as wsgi_make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

from vigil.exporters import create
from vigil.exporters.base import Exporter, Options

log = logging.getLogger("vigil.exporters.standalone")

DEFAULT_HOST = "127.0.0.1"

StartResponse = Callable[..., Any]


def parse_listen(listen: str) -> tuple[str, int]:
    """Split ``host:port``, ``[v6]:port`` or ``:port`` (loopback) into (host, port)."""
    host, sep, port_text = listen.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"listen address {listen!r}: expected HOST:PORT")
    host = host.strip("[]") or DEFAULT_HOST
    return host, int(port_text)


class _Server(ThreadingMixIn, WSGIServer):
    """A threaded WSGI server so a slow scrape does not block the next one."""

    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    """Scrapes every few seconds would flood stderr with access lines."""

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), format % args)


_INDEX = (
    b"<html><head><title>Vigil %s exporter</title></head><body>"
    b"<h1>Vigil %s exporter</h1><p><a href='/metrics'>Metrics</a></p></body></html>"
)


def make_app(
    name: str, exporter: Exporter
) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """The WSGI app serving ``exporter`` at /metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(exporter)  # type: ignore[arg-type]
    metrics_app = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/metrics":
            return metrics_app(environ, start_response)  # type: ignore[no-any-return]
        if path == "/":
            body = _INDEX % (name.encode(), name.encode())
            start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
            return [body]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found; metrics are at /metrics\n"]

    return app


def make_server(name: str, listen: str, options: Options) -> tuple[WSGIServer, Exporter]:
    """Create exporter ``name`` and a bound (not yet serving) HTTP server for it.

    Raises ``KeyError`` (unknown exporter), ``ExporterOptionError`` (bad option),
    ``ValueError`` (bad listen address) or ``OSError`` (port in use).
    """
    exporter = create(name, options)
    host, port = parse_listen(listen)
    server_class = _Server6 if ":" in host else _Server
    try:
        server = wsgi_make_server(host, port, make_app(name, exporter), server_class, _QuietHandler)
    except OSError:
        exporter.close()
        raise
    return server, exporter


def serve(name: str, listen: str, options: Options) -> None:
    """Serve exporter ``name`` on ``listen`` until SIGINT/SIGTERM.

    Exits with a clear message (``SystemExit``) when the exporter cannot work
    here, e.g. the GPU exporter on a machine without NVIDIA driver, unless it was
    told to idle (``idle_without_gpu=true``); then it serves its ``*_up 0``.
    """
    try:
        server, exporter = make_server(name, listen, options)
    except (KeyError, ValueError, OSError) as err:
        # str(KeyError) would wrap the message in quotes.
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        raise SystemExit(f"vigil exporter {name}: {message}") from None
    startup_error: Callable[[], str | None] | None = getattr(exporter, "startup_error", None)
    reason = startup_error() if startup_error else None
    if reason:
        exporter.close()
        server.server_close()
        raise SystemExit(
            f"vigil exporter {name}: {reason}; "
            "pass --option idle_without_gpu=true to serve anyway (up metric 0)"
        )
    host, port = server.server_address[:2]
    log.info("%s exporter listening on http://%s:%s/metrics", name, host, port)

    def stop(signum: int, _frame: object) -> None:
        log.info("received signal %d, stopping", signum)
        # shutdown() blocks until serve_forever returns: call it off the main thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        exporter.close()
