"""POSTing JSON for HTTP integrations, with Alertmanager's retry classification."""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

import httpx
import orjson

from vigil.alerting.receivers.base import NotifyError, retry_for_status

USER_AGENT = "Alertmanager/0.27.0 (Vigil)"

# Building a client loads the CA bundle (~0.1 s): far too slow per notification
# when group timers are seconds, so one client is kept per event loop.
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
    weakref.WeakKeyDictionary()
)


def shared_client() -> httpx.AsyncClient:
    """The running loop's HTTP client for notifications (created on first use)."""
    loop = asyncio.get_running_loop()
    c = _clients.get(loop)
    if c is None or c.is_closed:
        c = httpx.AsyncClient(follow_redirects=False)
        _clients[loop] = c
    return c


async def aclose_client() -> None:
    """Close the running loop's shared client (the pipeline calls this on stop)."""
    c = _clients.pop(asyncio.get_running_loop(), None)
    if c is not None:
        await c.aclose()


def read_secret_file(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except OSError as exc:
        raise NotifyError(f"cannot read {path}: {exc.strerror}", retry=False) from None


async def post_json(
    url: str, payload: Any, headers: dict[str, str] | None = None, timeout: float = 30.0
) -> httpx.Response:
    """POST `payload` as JSON; raise `NotifyError` (retry on 5xx/429/network errors)."""
    return await send_json("POST", url, payload, headers, timeout)


async def send_json(
    method: str,
    url: str,
    payload: Any,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> httpx.Response:
    """Send `payload` as JSON with `method`; errors as `post_json`."""
    h = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    if headers:
        h.update(headers)
    try:
        resp = await shared_client().request(
            method, url, content=orjson.dumps(payload), headers=h, timeout=timeout
        )
    except httpx.HTTPError as exc:
        raise NotifyError(
            f"{method} {_redact(url)}: {type(exc).__name__}: {exc}", retry=True
        ) from None
    if resp.status_code // 100 != 2:
        body = resp.text[:200]
        raise NotifyError(
            f"unexpected status code {resp.status_code} from {_redact(url)}: {body}",
            retry=retry_for_status(resp.status_code),
        )
    return resp


def _redact(url: str) -> str:
    # Webhook URLs often embed secrets (Slack, Discord); show only scheme and host.
    try:
        u = httpx.URL(url)
        return f"{u.scheme}://{u.host}{':' + str(u.port) if u.port else ''}/<redacted>"
    except Exception:
        return "<url>"
