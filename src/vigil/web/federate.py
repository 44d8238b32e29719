"""/federate: the newest sample of every matching series, in the text format.

Like Prometheus: series whose newest sample within the lookback window is a
staleness marker are left out, external labels are added where a series lacks
them, and the output is grouped by metric name, each group headed by
``# TYPE <name> untyped``. Values use Go's shortest ``%g`` formatting, timestamps
are int milliseconds.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from vigil.model.labels import METRIC_NAME, Labels
from vigil.model.matchers import Matcher
from vigil.model.samples import is_stale

from .context import WebContext
from .params import ApiError
from .responses import request_params
from .selectors import parse_match_params

TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def format_go_g(v: float) -> str:
    """`v` as the Prometheus text format writes it: Go's FormatFloat(v, 'g', -1, 64)."""
    if v != v:
        return "NaN"
    if v == math.inf:
        return "+Inf"
    if v == -math.inf:
        return "-Inf"
    if v == 0:
        return "-0" if math.copysign(1.0, v) < 0 else "0"
    sign, digits, exponent = Decimal(repr(v)).as_tuple()
    ds = "".join(map(str, digits)).rstrip("0") or "0"
    assert isinstance(exponent, int)
    dp = len(digits) + exponent  # position of the decimal point in `ds`
    exp = dp - 1
    neg = "-" if sign else ""
    # Shortest %g switches to an exponent outside [1e-4, 1e6), like Go.
    if exp < -4 or exp >= 6:
        mant = ds[0] + ("." + ds[1:] if len(ds) > 1 else "")
        esign = "-" if exp < 0 else "+"
        return f"{neg}{mant}e{esign}{abs(exp):02d}"
    if dp <= 0:
        return f"{neg}0.{'0' * -dp}{ds}"
    if dp >= len(ds):
        return f"{neg}{ds}{'0' * (dp - len(ds))}"
    return f"{neg}{ds[:dp]}.{ds[dp:]}"


def _escape_value(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _series_line(name: str, labels: Labels, t: int, v: float) -> str:
    parts = [f'{k}="{_escape_value(val)}"' for k, val in labels if k != METRIC_NAME]
    lbl = "{" + ",".join(parts) + "}" if parts else ""
    return f"{name}{lbl} {format_go_g(v)} {t}\n"


def federate_text(ctx: WebContext, sets: list[list[Matcher]], now_ms: int) -> str:
    """The exposition text for the given matcher sets at `now_ms`."""
    mint = now_ms - ctx.lookback_delta_ms
    latest: dict[Labels, tuple[int, float]] = {}
    q = ctx.storage.querier(mint, now_ms)
    try:
        for ms in sets:
            for sd in q.select(ms, mint, now_ms):
                if sd.labels in latest or not len(sd.timestamps):
                    continue
                v = float(sd.values[-1])
                if is_stale(v):
                    continue
                latest[sd.labels] = (int(sd.timestamps[-1]), v)
    finally:
        q.close()
    ext = dict(ctx.external_labels)
    rows: list[tuple[str, Labels, int, float]] = []
    for labels, (t, v) in latest.items():
        out = labels
        if ext:
            have = dict(labels)
            for k, val in ext.items():
                have.setdefault(k, val)
            out = Labels.from_dict(have)
        rows.append((out.get(METRIC_NAME), out, t, v))
    rows.sort(key=lambda r: (r[0], r[1]))
    lines: list[str] = []
    current = None
    for name, labels, t, v in rows:
        if name != current:
            lines.append(f"# TYPE {name} untyped\n")
            current = name
        lines.append(_series_line(name, labels, t, v))
    return "".join(lines)


def make_handler(ctx: WebContext) -> Any:
    async def federate(request: Request) -> Response:
        try:
            p = await request_params(request)
            texts = p.getlist("match[]")
            if not texts:
                # Prometheus answers an empty body here; naming the problem helps more.
                return PlainTextResponse("no match[] parameter provided\n", status_code=400)
            sets = parse_match_params(texts)
        except ApiError as exc:
            return PlainTextResponse(exc.message + "\n", status_code=400)
        now_ms = int(ctx.now() * 1000)
        body = await run_in_threadpool(federate_text, ctx, sets, now_ms)
        return Response(body, media_type=TEXT_CONTENT_TYPE)

    return federate
