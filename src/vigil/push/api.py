"""The push endpoints, Pushgateway-compatible, plus Vigil's group listing.

- ``PUT /metrics/job/<job>{/<label>/<value>}``: replace the group (200).
- ``POST`` the same path: replace only the families in the body (200).
- ``DELETE`` the same path: remove the group (202, also when there was none).
- ``GET /api/v1/push/groups``: the groups with labels, times, TTL and series count.

Errors are plain text, as Pushgateway answers: 400 (bad path, body or TTL), 413
(body over `max_body_bytes`, after gzip decompression), 415 (protobuf).
"""

from __future__ import annotations

import zlib

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from vigil.web.responses import api_success

from .body import PushRejected
from .grouping import GroupingError, parse_grouping_path
from .registry import PushRegistry

TTL_HEADER = "x-vigil-ttl"
MAX_BODY_BYTES = 16 << 20


def create_push_routes(registry: PushRegistry, max_body_bytes: int = MAX_BODY_BYTES) -> list[Route]:
    """Routes serving `registry`."""

    async def push(request: Request) -> Response:
        try:
            grouping = parse_grouping_path(_raw_grouping_path(request))
            if request.method == "DELETE":
                await run_in_threadpool(registry.delete, grouping)
                return Response(status_code=202)
            ttl = _ttl(request.headers.get(TTL_HEADER))
            body = await _read_body(request, max_body_bytes)
            await run_in_threadpool(
                lambda: registry.push(
                    grouping,
                    body,
                    request.headers.get("content-type"),
                    replace=request.method == "PUT",
                    ttl_s=ttl,
                )
            )
        except GroupingError as exc:
            return PlainTextResponse(f"{exc}\n", status_code=400)
        except PushRejected as exc:
            return PlainTextResponse(f"{exc.message}\n", status_code=exc.status)
        return Response(status_code=200)

    async def groups(request: Request) -> Response:
        return api_success(await run_in_threadpool(registry.groups))

    return [
        Route("/metrics/{grouping:path}", push, methods=["PUT", "POST", "DELETE"]),
        Route("/api/v1/push/groups", groups, methods=["GET"]),
    ]


def _raw_grouping_path(request: Request) -> str:
    """The path after ``/metrics/``, still percent-encoded, so an encoded ``/`` in a
    value cannot split segments."""
    raw = request.scope.get("raw_path")
    path = raw.decode("latin-1") if raw else request.url.path
    path = path.split("?", 1)[0]
    prefix = "/metrics/"
    return path[path.index(prefix) + len(prefix) :] if prefix in path else ""


def _ttl(header: str | None) -> float | None:
    if header is None:
        return None
    try:
        ttl = float(header)
    except ValueError:
        raise PushRejected(
            400, f"X-Vigil-TTL must be a number of seconds, got {header!r}"
        ) from None
    if not ttl > 0 or ttl == float("inf"):
        raise PushRejected(400, f"X-Vigil-TTL must be positive seconds, got {header!r}")
    return ttl


async def _read_body(request: Request, max_bytes: int) -> bytes:
    too_big = PushRejected(413, f"request body exceeds the limit of {max_bytes} bytes")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise too_big
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise too_big
        chunks.append(chunk)
    body = b"".join(chunks)
    if request.headers.get("content-encoding", "").strip().lower() == "gzip":
        body = _gunzip(body, max_bytes, too_big)
    return body


def _gunzip(body: bytes, max_bytes: int, too_big: PushRejected) -> bytes:
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise PushRejected(400, f"invalid gzip body: {exc}") from None
    if len(out) > max_bytes:
        raise too_big
    if not d.eof:
        raise PushRejected(400, "invalid gzip body: truncated")
    return out
