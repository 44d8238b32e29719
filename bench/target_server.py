"""A scrape target for benchmarks: serves pre-rendered expositions of N series.

Bodies are rendered once (a few variants whose values differ), so the target costs
almost nothing per scrape and the measurement is about the scraper.
Run: python bench/target_server.py PORT N_SERIES
"""

from __future__ import annotations

import itertools
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from datagen import exposition


def serve(port: int, n_series: int, variants: int = 4) -> None:
    bodies = [exposition(n_series, step) for step in range(variants)]
    counter = itertools.count()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = bodies[next(counter) % variants]
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    serve(int(sys.argv[1]), int(sys.argv[2]))
