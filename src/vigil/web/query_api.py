"""/api/v1/query, /api/v1/query_range, /api/v1/query_exemplars, /api/v1/format_query.

Engine calls are CPU-bound and synchronous; `QueryRunner` evaluates them in a
pool of `WebContext.query_concurrency` query threads, or inline when a query is
known to be cheap. The engine must therefore be safe to call from several threads
at once.
"""

from __future__ import annotations

import functools
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from vigil.promql.errors import ParseError
from vigil.promql.result import QueryResult

from .context import WebContext
from .json_format import query_data_json
from .params import (
    MAX_TIME_MS,
    MIN_TIME_MS,
    ApiError,
    bad_data,
    invalid_param,
    parse_duration_ms,
    parse_limit,
    parse_time_ms,
)
from .query_runner import QueryRunner
from .responses import api_endpoint, api_success, api_success_raw, request_params
from .selectors import SelectorError, parse_selector

MAX_POINTS_PER_SERIES = 11_000
TRUNCATED_WARNING = "results truncated due to limit"


def _timeout_s(raw: str) -> float | None:
    if not raw:
        return None
    try:
        return parse_duration_ms(raw) / 1000.0
    except ValueError as exc:
        raise invalid_param("timeout", str(exc)) from None


def _stats_warning(stats: str) -> str | None:
    if stats in ("", "true", "all"):
        return None
    return (
        f'value "{stats}" for parameter "stats" is deprecated and will be rejected in the '
        'next major release, use "true" or "all"'
    )


def _stats_json(result: QueryResult, wall_s: float) -> dict[str, Any]:
    st = result.stats
    exec_s = st.exec_seconds or wall_s
    return {
        "timings": {
            "evalTotalTime": exec_s,
            "resultSortTime": 0,
            "queryPreparationTime": 0,
            "innerEvalTime": exec_s,
            "execQueueTime": 0,
            "execTotalTime": wall_s,
        },
        "samples": {
            "totalQueryableSamples": st.total_samples,
            "peakSamples": st.peak_samples,
        },
    }


def _truncate(result: QueryResult, limit: int) -> bool:
    if limit > 0 and result.result_type in ("vector", "matrix"):
        assert isinstance(result.value, list)
        if len(result.value) > limit:
            result.value = result.value[:limit]
            return True
    return False


def _respond(result: QueryResult, limit: int, stats: str, wall_s: float) -> Response:
    warnings = list(result.warnings)
    if _truncate(result, limit):
        warnings.append(TRUNCATED_WARNING)
    w = _stats_warning(stats)
    if w:
        warnings.append(w)
    data = query_data_json(result, _stats_json(result, wall_s) if stats else None)
    return api_success_raw(data, warnings, list(result.infos))


def _require_query(q: str) -> str:
    if not q.strip():
        raise invalid_param("query", "1:1: parse error: no expression found in input")
    return q


def make_handlers(ctx: WebContext) -> dict[str, Any]:
    runner = QueryRunner(ctx.query_concurrency, ctx.inline_query_budget_s)

    def engine() -> Any:
        if ctx.engine is None:
            raise ApiError("unavailable", "the query engine is not available")
        return ctx.engine

    @api_endpoint
    async def query(request: Request) -> Response:
        p = await request_params(request)
        limit = parse_limit(p.get("limit"))
        now_ms = int(ctx.now() * 1000)
        t_ms = p.time_ms("time", now_ms)
        timeout = _timeout_s(p.get("timeout"))
        expr = _require_query(p.get("query"))
        t0 = time.perf_counter()
        call = functools.partial(engine().instant_query, expr, t_ms, timeout_s=timeout)
        res = await runner.run(("instant", expr), call, expr)
        return _respond(res, limit, p.get("stats"), time.perf_counter() - t0)

    @api_endpoint
    async def query_range(request: Request) -> Response:
        p = await request_params(request)
        limit = parse_limit(p.get("limit"))
        bounds: dict[str, int] = {}
        for name in ("start", "end"):
            try:
                bounds[name] = parse_time_ms(p.get(name))
            except ValueError as exc:
                raise invalid_param(name, str(exc)) from None
        start, end = bounds["start"], bounds["end"]
        if end < start:
            raise invalid_param("end", "end timestamp must not be before start time")
        try:
            step = parse_duration_ms(p.get("step"))
        except ValueError as exc:
            raise invalid_param("step", str(exc)) from None
        if step <= 0:
            raise invalid_param(
                "step",
                "zero or negative query resolution step widths are not accepted. "
                "Try a positive integer",
            )
        if (end - start) // step > MAX_POINTS_PER_SERIES:
            raise bad_data(
                "exceeded maximum resolution of 11,000 points per timeseries. "
                "Try decreasing the query resolution (?step=XX)"
            )
        timeout = _timeout_s(p.get("timeout"))
        expr = _require_query(p.get("query"))
        t0 = time.perf_counter()
        call = functools.partial(engine().range_query, expr, start, end, step, timeout_s=timeout)
        res = await runner.run(("range", expr, end - start, step), call, expr)
        return _respond(res, limit, p.get("stats"), time.perf_counter() - t0)

    @api_endpoint
    async def query_exemplars(request: Request) -> Response:
        """Vigil stores no exemplars yet: validates like Prometheus, answers []."""
        p = await request_params(request)
        start = p.time_ms("start", MIN_TIME_MS)
        end = p.time_ms("end", MAX_TIME_MS)
        if end < start:
            raise bad_data("end timestamp must not be before start timestamp")
        _require_query(p.get("query"))
        return api_success([])

    @api_endpoint
    async def format_query(request: Request) -> Response:
        p = await request_params(request)
        expr = _require_query(p.get("query"))
        try:
            from vigil.promql.parser import format_expr, parse_expr  # type: ignore[attr-defined]
        except ImportError:
            # No printer yet: a bare selector can still be normalised.
            try:
                return api_success(_format_selector(expr))
            except SelectorError as exc:
                raise invalid_param("query", str(exc)) from None
        try:
            return api_success(format_expr(parse_expr(expr)))
        except ParseError as exc:
            raise invalid_param("query", str(exc)) from None

    return {
        "query": query,
        "query_range": query_range,
        "query_exemplars": query_exemplars,
        "format_query": format_query,
    }


def _format_selector(expr: str) -> str:
    ms = parse_selector(expr)
    name = next((m.value for m in ms if m.name == "__name__" and m.type.value == "="), "")
    rest = [str(m) for m in ms if not (m.name == "__name__" and m.type.value == "=")]
    if name and not rest:
        return name
    return name + "{" + ", ".join(rest) + "}"
