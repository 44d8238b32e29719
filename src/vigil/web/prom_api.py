"""Metadata endpoints of the Prometheus API: series, labels, label values, metadata,
targets and status pages. Shapes and messages follow Prometheus's web/api/v1."""

from __future__ import annotations

import platform
from collections.abc import Sequence
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from vigil.model.labels import Labels
from vigil.model.matchers import Matcher

from .context import WebContext
from .params import MAX_TIME_MS, MIN_TIME_MS, ApiError, Params, bad_data, invalid_param, parse_limit
from .responses import api_endpoint, api_success, request_params
from .selectors import parse_match_params

TRUNCATED = "results truncated due to limit"


def _range(p: Params) -> tuple[int, int]:
    return p.time_ms("start", MIN_TIME_MS), p.time_ms("end", MAX_TIME_MS)


def _series(ctx: WebContext, sets: list[list[Matcher]], start: int, end: int) -> list[Labels]:
    q = ctx.storage.querier(start, end)
    try:
        seen: set[Labels] = set()
        for ms in sets:
            seen.update(q.series(ms, start, end))
    finally:
        q.close()
    return sorted(seen)


def _label_names(ctx: WebContext, sets: list[list[Matcher]], start: int, end: int) -> list[str]:
    q = ctx.storage.querier(start, end)
    try:
        if not sets:
            return list(q.label_names((), start, end))
        names: set[str] = set()
        for ms in sets:
            names.update(q.label_names(ms, start, end))
    finally:
        q.close()
    return sorted(names)


def _label_values(
    ctx: WebContext, name: str, sets: list[list[Matcher]], start: int, end: int
) -> list[str]:
    q = ctx.storage.querier(start, end)
    try:
        if not sets:
            return sorted(q.label_values(name, (), start, end))
        vals: set[str] = set()
        for ms in sets:
            vals.update(q.label_values(name, ms, start, end))
    finally:
        q.close()
    return sorted(vals)


def _limited(items: Sequence[Any], limit: int) -> tuple[list[Any], list[str]]:
    if limit > 0 and len(items) > limit:
        return list(items[:limit]), [TRUNCATED]
    return list(items), []


def _int_param(p: Params, name: str) -> int:
    s = p.get(name)
    if not s:
        return -1
    try:
        return int(s)
    except ValueError:
        raise bad_data(f"{name} must be a number") from None


def _unescape_label_name(name: str) -> str:
    """`U__` names (Prometheus's value-encoding escape for UTF-8 label names)."""
    if not name.startswith("U__"):
        return name
    out: list[str] = []
    s = name[3:]
    i = 0
    while i < len(s):
        if s.startswith("__", i):
            out.append("_")
            i += 2
        elif s[i] == "_":
            j = s.find("_", i + 1)
            if j < 0:
                return name
            try:
                out.append(chr(int(s[i + 1 : j], 16)))
            except ValueError:
                return name
            i = j + 1
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def make_handlers(ctx: WebContext) -> dict[str, Any]:
    @api_endpoint
    async def series(request: Request) -> Response:
        p = await request_params(request)
        texts = p.getlist("match[]")
        if not texts:
            raise bad_data("no match[] parameter provided")
        limit = parse_limit(p.get("limit"))
        start, end = _range(p)
        try:
            sets = parse_match_params(texts)
        except ApiError as exc:
            raise invalid_param("match[]", exc.message) from None
        found = await run_in_threadpool(_series, ctx, sets, start, end)
        out, warnings = _limited(found, limit)
        return api_success([dict(ls) for ls in out], warnings)

    @api_endpoint
    async def labels(request: Request) -> Response:
        p = await request_params(request)
        limit = parse_limit(p.get("limit"))
        start, end = _range(p)
        sets = parse_match_params(p.getlist("match[]"))
        names = await run_in_threadpool(_label_names, ctx, sets, start, end)
        out, warnings = _limited(names, limit)
        return api_success(out, warnings)

    @api_endpoint
    async def label_values(request: Request) -> Response:
        name = _unescape_label_name(request.path_params["name"])
        if not name:
            raise bad_data(f'invalid label name: "{name}"')
        p = await request_params(request)
        limit = parse_limit(p.get("limit"))
        start, end = _range(p)
        sets = parse_match_params(p.getlist("match[]"))
        vals = await run_in_threadpool(_label_values, ctx, name, sets, start, end)
        out, warnings = _limited(vals, limit)
        return api_success(out, warnings)

    @api_endpoint
    async def metadata(request: Request) -> Response:
        p = await request_params(request)
        limit = _int_param(p, "limit")
        per_metric = _int_param(p, "limit_per_metric")
        metric = p.get("metric") or None
        md = await run_in_threadpool(ctx.metadata, metric, limit)
        out: dict[str, list[dict[str, str]]] = {}
        for name, entries in md.items():
            if limit >= 0 and len(out) >= limit:
                break
            out[name] = list(entries)[:per_metric] if per_metric > 0 else list(entries)
        return api_success(out)

    @api_endpoint
    async def targets(request: Request) -> Response:
        pool = request.query_params.get("scrapePool", "")
        state = request.query_params.get("state", "").lower()
        show_active = state in ("", "any", "active")
        show_dropped = state in ("", "any", "dropped")
        t = await run_in_threadpool(ctx.targets)
        active = [x for x in t.get("activeTargets", []) if not pool or x.get("scrapePool") == pool]
        dropped = [
            x for x in t.get("droppedTargets", []) if not pool or x.get("scrapePool") == pool
        ]
        data: dict[str, Any] = {
            "activeTargets": active if show_active else [],
            "droppedTargets": dropped if show_dropped else [],
        }
        if show_dropped:
            data["droppedTargetCounts"] = dict(t.get("droppedTargetCounts", {}))
        return api_success(data)

    @api_endpoint
    async def status_config(request: Request) -> Response:
        return api_success({"yaml": ctx.config_yaml()})

    @api_endpoint
    async def status_flags(request: Request) -> Response:
        return api_success(dict(ctx.flags))

    @api_endpoint
    async def status_buildinfo(request: Request) -> Response:
        info = dict(ctx.build_info)
        info.setdefault("goVersion", f"python{platform.python_version()}")
        return api_success(info)

    @api_endpoint
    async def status_runtimeinfo(request: Request) -> Response:
        return api_success(dict(await run_in_threadpool(ctx.runtime_info)))

    @api_endpoint
    async def status_tsdb(request: Request) -> Response:
        limit = 10
        s = request.query_params.get("limit")
        if s:
            try:
                limit = int(s)
            except ValueError:
                limit = 0
            if limit < 1:
                raise bad_data("limit must be a positive number")
            if limit > 10_000:
                raise bad_data("limit must not exceed 10000")
        if ctx.tsdb_stats is None:
            raise ApiError("unavailable", "TSDB statistics are not available")
        try:
            stats = await run_in_threadpool(ctx.tsdb_stats, limit)
        except Exception as exc:
            raise ApiError("internal", str(exc)) from None
        return api_success(stats)

    @api_endpoint
    async def status_walreplay(request: Request) -> Response:
        return api_success(dict(ctx.wal_replay()))

    return {
        "series": series,
        "labels": labels,
        "label_values": label_values,
        "metadata": metadata,
        "targets": targets,
        "status_config": status_config,
        "status_flags": status_flags,
        "status_buildinfo": status_buildinfo,
        "status_runtimeinfo": status_runtimeinfo,
        "status_tsdb": status_tsdb,
        "status_walreplay": status_walreplay,
    }
