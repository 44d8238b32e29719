"""A real HTTP scrape target serving responses you set, on 127.0.0.1.

For tests, benchmarks and demos of the scraper: `StaticTarget` runs a threading
HTTP server; `set(path, body, ...)` changes what a path returns (status, headers,
gzip, delay, required Authorization) and `requests` records what scrapers sent.
Thread-safe.
"""

from __future__ import annotations

import gzip
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(slots=True)
class Response:
    body: bytes = b""
    status: int = 200
    content_type: str = "text/plain; version=0.0.4; charset=utf-8"
    gzip: bool = False
    delay_s: float = 0.0
    require_auth: str | None = None  # exact Authorization header, else 401
    headers: dict[str, str] = field(default_factory=dict)


class StaticTarget:
    """`with StaticTarget() as t: t.set("/metrics", b"up 1\\n"); t.url("/metrics")`."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        """`tls`: a server-side context to serve HTTPS instead of HTTP."""
        self._lock = threading.Lock()
        self.scheme = "https" if tls is not None else "http"
        self._responses: dict[str, Response] = {}
        self.requests: list[dict[str, Any]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real exporters do

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                with owner._lock:
                    owner.requests.append(
                        {"path": self.path, "headers": dict(self.headers.items())}
                    )
                    resp = owner._responses.get(path)
                if resp is None:
                    self._send(404, b"not found\n", "text/plain", {})
                    return
                if resp.delay_s:
                    time.sleep(resp.delay_s)
                if (
                    resp.require_auth is not None
                    and self.headers.get("Authorization") != resp.require_auth
                ):
                    self._send(401, b"unauthorized\n", "text/plain", {})
                    return
                body, extra = resp.body, dict(resp.headers)
                if resp.gzip:
                    body = gzip.compress(body)
                    extra["Content-Encoding"] = "gzip"
                self._send(resp.status, body, resp.content_type, extra)

            def _send(self, status: int, body: bytes, ctype: str, extra: dict[str, str]) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(body)))
                    for k, v in extra.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the scraper gave up (timeout, size limit)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), name="static-target", daemon=True
        )

    @property
    def address(self) -> str:
        """host:port the server listens on."""
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"

    def url(self, path: str = "/metrics") -> str:
        return f"{self.scheme}://{self.address}{path}"

    def set(self, path: str, body: bytes | str, **kw: Any) -> None:
        """Serve `body` at `path` from now on (other `Response` fields as keywords)."""
        data = body.encode() if isinstance(body, str) else body
        with self._lock:
            self._responses[path] = Response(body=data, **kw)

    def start(self) -> StaticTarget:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> StaticTarget:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
