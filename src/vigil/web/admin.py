"""Lifecycle endpoints (/-/healthy, /-/ready, /-/reload) and /api/v1/import."""

from __future__ import annotations

import logging
import tempfile
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from .context import WebContext
from .params import ApiError
from .responses import api_endpoint, api_success

log = logging.getLogger("vigil.web")

_SPOOL_BYTES = 16 << 20  # import bodies above this are buffered on disk, not in memory


def make_handlers(ctx: WebContext) -> dict[str, Any]:
    async def healthy(request: Request) -> Response:
        return PlainTextResponse("Vigil Server is Healthy.\n")

    async def ready(request: Request) -> Response:
        if ctx.ready():
            return PlainTextResponse("Vigil Server is Ready.\n")
        return PlainTextResponse("Service Unavailable\n", status_code=503)

    async def reload(request: Request) -> Response:
        try:
            await run_in_threadpool(ctx.reload)
        except Exception as exc:
            log.error("reload failed: %s", exc)
            return PlainTextResponse(f"failed to reload config: {exc}\n", status_code=500)
        return PlainTextResponse("")

    @api_endpoint
    async def import_data(request: Request) -> Response:
        """Backfill: the body is Prometheus text or OpenMetrics with timestamps."""
        ctype = request.headers.get("content-type") or None
        with tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES) as buf:
            async for chunk in request.stream():
                buf.write(chunk)
            if buf.tell() == 0:
                raise ApiError("bad_data", "empty body: nothing to import")
            buf.seek(0)
            try:
                report = await run_in_threadpool(ctx.importer, buf, ctype)  # type: ignore[arg-type]
            except ValueError as exc:
                raise ApiError("bad_data", f"{exc}; nothing was imported") from None
            except Exception as exc:
                log.exception("import failed")
                raise ApiError("internal", f"import failed: {exc}") from None
        return api_success(dict(report))

    return {"healthy": healthy, "ready": ready, "reload": reload, "import": import_data}
