"""HTTP side of scraping: one client per scrape pool, one bounded GET per scrape.

Errors come back as `ScrapeError` with Prometheus' wording (e.g. `server returned
HTTP status 500 Internal Server Error`, `body size limit exceeded`,
`Get "<url>": context deadline exceeded`), because users compare them with what
Prometheus shows on its targets page.

Credentials given as files (`password_file`, `credentials_file`,
`bearer_token_file`) are read at every scrape, so rotated secrets are picked up
without a reload.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from vigil import __version__

USER_AGENT = f"Vigil/{__version__}"


class ScrapeError(Exception):
    """A failed scrape; `str()` is the target's `lastError`."""


class BodySizeLimitError(ScrapeError):
    def __init__(self) -> None:
        super().__init__("body size limit exceeded")


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if obj is None:
        return default
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _secret(value: Any) -> str:
    """Plain text of a config secret (pydantic SecretStr or str)."""
    if value is None:
        return ""
    get = getattr(value, "get_secret_value", None)
    return str(get() if get is not None else value)


def _read_file(path: str, what: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError as exc:
        raise ScrapeError(f"unable to read {what} {path}: {exc.strerror or exc}") from None


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """How to authenticate scrapes of one pool (at most one scheme is set)."""

    basic_user: str = ""
    basic_password: str = ""
    basic_password_file: str = ""
    auth_type: str = ""
    credentials: str = ""
    credentials_file: str = ""

    @classmethod
    def from_config(cls, cfg: Any) -> AuthSettings:
        basic = _get(cfg, "basic_auth")
        if basic is not None:
            return cls(
                basic_user=str(_get(basic, "username", "") or ""),
                basic_password=_secret(_get(basic, "password")),
                basic_password_file=str(_get(basic, "password_file", "") or ""),
            )
        authz = _get(cfg, "authorization")
        if authz is not None:
            return cls(
                auth_type=str(_get(authz, "type", "") or "Bearer"),
                credentials=_secret(_get(authz, "credentials")),
                credentials_file=str(_get(authz, "credentials_file", "") or ""),
            )
        token = _secret(_get(cfg, "bearer_token"))
        token_file = str(_get(cfg, "bearer_token_file", "") or "")
        if token or token_file:
            return cls(auth_type="Bearer", credentials=token, credentials_file=token_file)
        return cls()

    def header(self) -> str | None:
        """The `Authorization` header value, reading secret files now."""
        if self.basic_user or self.basic_password or self.basic_password_file:
            pw = self.basic_password
            if self.basic_password_file:
                pw = _read_file(self.basic_password_file, "basic auth password file")
            raw = f"{self.basic_user}:{pw}".encode()
            return "Basic " + base64.b64encode(raw).decode()
        if self.auth_type:
            cred = self.credentials
            if self.credentials_file:
                cred = _read_file(self.credentials_file, "authorization credentials file")
            return f"{self.auth_type} {cred}"
        return None


def ssl_context(tls: Any) -> ssl.SSLContext | bool:
    """An SSL context from a `tls_config` (None -> system defaults)."""
    if tls is None:
        return True
    ctx = ssl.create_default_context()
    ca = _get(tls, "ca_file")
    ca_text = _secret(_get(tls, "ca"))
    if ca:
        ctx.load_verify_locations(cafile=str(ca))
    elif ca_text:
        ctx.load_verify_locations(cadata=ca_text)
    cert, key = _get(tls, "cert_file"), _get(tls, "key_file")
    if cert:
        ctx.load_cert_chain(str(cert), str(key) if key else None)
    if _get(tls, "insecure_skip_verify", False):
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    versions = {
        "TLS10": ssl.TLSVersion.TLSv1,
        "TLS11": ssl.TLSVersion.TLSv1_1,
        "TLS12": ssl.TLSVersion.TLSv1_2,
        "TLS13": ssl.TLSVersion.TLSv1_3,
    }
    min_v = _get(tls, "min_version")
    if min_v and str(min_v) in versions:
        ctx.minimum_version = versions[str(min_v)]
    return ctx


def make_client(cfg: Any) -> httpx.AsyncClient:
    """A pooled client for one scrape config; keep-alive connections are reused."""
    tls = _get(cfg, "tls_config")
    follow = _get(cfg, "follow_redirects", True)
    proxy = _get(cfg, "proxy_url")
    return httpx.AsyncClient(
        verify=ssl_context(tls),
        follow_redirects=True if follow is None else bool(follow),
        timeout=None,  # the scrape loop bounds each scrape as a whole
        trust_env=False,
        proxy=str(proxy) if proxy else None,
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=1000),
    )


def server_name(cfg: Any) -> str | None:
    tls = _get(cfg, "tls_config")
    name = _get(tls, "server_name")
    return str(name) if name else None


async def fetch(
    client: httpx.AsyncClient,
    url: str,
    *,
    accept: str,
    timeout_s: float,
    body_size_limit: int = 0,
    auth: AuthSettings | None = None,
    sni: str | None = None,
) -> tuple[bytes, str | None]:
    """GET `url` within `timeout_s` seconds; return (uncompressed body, content type).

    `body_size_limit` (bytes, 0 = none) bounds the *uncompressed* body and is enforced
    while streaming, so an oversized target costs at most that much memory. As in
    Prometheus, a body of exactly the limit counts as exceeding it.
    """
    headers = {
        "Accept": accept,
        "Accept-Encoding": "gzip",
        "User-Agent": USER_AGENT,
        "X-Prometheus-Scrape-Timeout-Seconds": _fmt_seconds(timeout_s),
    }
    if auth is not None:
        value = auth.header()
        if value is not None:
            headers["Authorization"] = value
    extensions = {"sni_hostname": sni} if sni else None
    try:
        async with asyncio.timeout(timeout_s):
            return await _get_body(client, url, headers, body_size_limit, extensions)
    except TimeoutError:
        raise ScrapeError(f'Get "{url}": context deadline exceeded') from None
    except httpx.HTTPError as exc:
        raise ScrapeError(f'Get "{url}": {_describe(exc)}') from None


async def _get_body(
    client: httpx.AsyncClient,
    url: str,
    headers: dict[str, str],
    limit: int,
    extensions: dict[str, Any] | None,
) -> tuple[bytes, str | None]:
    req = client.build_request("GET", url, headers=headers, extensions=extensions)
    resp = await client.send(req, stream=True)
    try:
        if resp.status_code != 200:
            raise ScrapeError(
                f"server returned HTTP status {resp.status_code} {resp.reason_phrase}"
            )
        limit = limit if limit > 0 else (1 << 62)
        gz = resp.headers.get("content-encoding", "").lower() == "gzip"
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if gz else None
        parts: list[bytes] = []
        size = 0
        async for chunk in resp.aiter_raw():
            if inflater is not None:
                try:
                    # Bounded output: a gzip bomb stops just past the limit. Input left
                    # unconsumed means the cap was hit, which the check below rejects.
                    chunk = inflater.decompress(chunk, limit - size + 1)
                except zlib.error as exc:
                    raise ScrapeError(f"gzip: invalid body: {exc}") from None
            size += len(chunk)
            if size >= limit:
                raise BodySizeLimitError()
            parts.append(chunk)
        if inflater is not None:
            tail = inflater.flush()
            size += len(tail)
            if size >= limit:
                raise BodySizeLimitError()
            parts.append(tail)
        return b"".join(parts), resp.headers.get("content-type")
    finally:
        await resp.aclose()


def _fmt_seconds(s: float) -> str:
    return repr(float(s)).removesuffix(".0") if float(s).is_integer() else repr(float(s))


def _describe(exc: httpx.HTTPError) -> str:
    text = str(exc)
    if not text:
        text = type(exc).__name__
    if isinstance(exc, httpx.ConnectError) and "refused" in text.lower():
        return "connect: connection refused"
    return text
