"""Prometheus API envelopes as Starlette responses, and request helpers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from .json_format import dumps, error_body, success_body
from .params import ApiError, Params

JSON = "application/json"


def api_success(data: Any, warnings: list[str] | None = None) -> Response:
    """``{"status":"success","data":data}``; `data` is converted with orjson."""
    return Response(success_body(dumps(data), warnings), media_type=JSON)


def api_success_raw(
    data_json: bytes, warnings: list[str] | None = None, infos: list[str] | None = None
) -> Response:
    """Success envelope around already-serialized `data` JSON bytes."""
    return Response(success_body(data_json, warnings, infos), media_type=JSON)


def api_error(err: ApiError) -> Response:
    return Response(
        error_body(err.error_type, err.message), status_code=err.status_code, media_type=JSON
    )


async def request_params(request: Request) -> Params:
    """Query string plus, for form-encoded POST/PUT bodies, the form fields.

    Parsed here with the standard library (no python-multipart dependency);
    multipart bodies are not accepted, as Prometheus's clients never send them.
    """
    form = None
    if request.method in ("POST", "PUT"):
        ctype = request.headers.get("content-type", "")
        if ctype.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
            raw = await request.body()
            try:
                pairs = parse_qsl(
                    raw.decode("utf-8"),
                    keep_blank_values=True,
                    strict_parsing=False,
                    max_num_fields=100_000,
                )
            except (UnicodeDecodeError, ValueError) as exc:
                raise ApiError("bad_data", f"error parsing form values: {exc}") from None
            form = FormData([(k, v) for k, v in pairs])  # type: ignore[arg-type]
    return Params(request.query_params, form)


Handler = Callable[[Request], Awaitable[Response]]


def api_endpoint(fn: Handler) -> Handler:
    """Turns `ApiError` raised by `fn` into the Prometheus error envelope."""

    async def wrapper(request: Request) -> Response:
        try:
            return await fn(request)
        except ApiError as err:
            return api_error(err)

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper
