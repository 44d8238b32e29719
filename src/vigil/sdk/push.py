"""Push metrics from batch and ML jobs that live too short to be scraped.

The protocol is the Prometheus Pushgateway's, so the same call works against a
real Pushgateway:

* ``PUT  /metrics/job/<job>{/<label>/<value>}`` replaces every metric of the group;
* ``POST /metrics/job/<job>{/<label>/<value>}`` replaces only metrics with the
  same names;
* ``DELETE`` of the same path removes the group.

Label values that are empty or contain ``/`` are sent base64url-encoded as
``/<label>@base64/<encoded>`` (Pushgateway's rule). The body is the Prometheus
text format (``text/plain; version=0.0.4``).

Vigil extension: the ``X-Vigil-TTL`` request header (seconds) asks Vigil to drop
the group if it is not pushed again within that time, so a job that died does not
leave its last values on dashboards forever. A Pushgateway ignores the header.
"""

from __future__ import annotations

import base64
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

TTL_HEADER = "X-Vigil-TTL"


class PushError(RuntimeError):
    """The push endpoint answered with an error or could not be reached."""


def grouping_path(job: str, grouping_key: dict[str, str] | None = None) -> str:
    """Return ``/metrics/job/<job>/<label>/<value>...`` with Pushgateway escaping."""
    parts = ["metrics"]
    for name, value in [("job", job), *sorted((grouping_key or {}).items())]:
        if not value or "/" in value:
            encoded = base64.urlsafe_b64encode(value.encode()).decode()
            parts += [f"{name}@base64", encoded or "="]
        else:
            parts += [name, urllib.parse.quote(value, safe="")]
    return "/" + "/".join(parts)


def push_metrics(
    registry: CollectorRegistry,
    *,
    job: str,
    url: str = "http://127.0.0.1:9090",
    grouping_key: dict[str, str] | None = None,
    ttl: float | None = None,
    replace: bool = True,
    timeout: float = 10.0,
    headers: dict[str, str] | None = None,
) -> int:
    """Push every metric of ``registry`` under ``job`` (and ``grouping_key``).

    Args:
        registry: what to push; use a dedicated ``CollectorRegistry`` for the job.
        job: the ``job`` label of the group.
        url: base URL of Vigil or a Pushgateway.
        grouping_key: more labels identifying the group (e.g. ``{"instance": host}``).
        ttl: seconds until Vigil may forget the group (``X-Vigil-TTL``).
        replace: ``PUT`` (replace the group) when true, ``POST`` otherwise.
        timeout: seconds for the HTTP request.
        headers: extra headers (authorization).

    Returns the HTTP status. Raises :class:`PushError` on a non-2xx answer or a
    connection failure, so a job can decide whether a failed push fails the run.
    """
    from prometheus_client.exposition import generate_latest

    body = generate_latest(registry)
    # 0.0.4, not prometheus_client's newer default: what every Pushgateway parses.
    hdrs = {"Content-Type": "text/plain; version=0.0.4; charset=utf-8", **(headers or {})}
    if ttl is not None:
        if ttl <= 0:
            raise ValueError(f"ttl must be positive seconds, got {ttl!r}")
        hdrs[TTL_HEADER] = f"{ttl:g}"
    return _request("PUT" if replace else "POST", url, job, grouping_key, body, hdrs, timeout)


def delete_metrics(
    *,
    job: str,
    url: str = "http://127.0.0.1:9090",
    grouping_key: dict[str, str] | None = None,
    timeout: float = 10.0,
    headers: dict[str, str] | None = None,
) -> int:
    """Delete the group pushed under ``job``/``grouping_key``; returns the status."""
    return _request("DELETE", url, job, grouping_key, None, dict(headers or {}), timeout)


def _request(
    method: str,
    url: str,
    job: str,
    grouping_key: dict[str, str] | None,
    body: bytes | None,
    headers: dict[str, str],
    timeout: float,
) -> int:
    if not job:
        raise ValueError("job must not be empty")
    target = url.rstrip("/") + grouping_path(job, grouping_key)
    req = urllib.request.Request(target, data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        detail = err.read(500).decode("utf-8", "replace")
        raise PushError(f"{method} {target}: HTTP {err.code}: {detail}") from err
    except OSError as err:
        raise PushError(f"{method} {target}: {err}") from err
