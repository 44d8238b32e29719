"""Pushgateway grouping keys: ``/metrics/job/<job>{/<label>/<value>}`` to labels.

The path after ``/metrics/`` is pairs of segments. A label name ending in
``@base64`` carries its value base64url-encoded (padding optional, ``=`` alone
is the empty value), which is how a value containing ``/`` or an empty value
travels. The first pair must be ``job`` (or ``job@base64``) with a non-empty value.

Vigil drops empty label values everywhere, so a grouping label with an empty value
names the same group as its absence (Pushgateway's ``instance=""`` default is the
same as no ``instance`` label here).
"""

from __future__ import annotations

import base64
import binascii
import urllib.parse

from vigil.model.labels import LABEL_NAME_RE, Labels

BASE64_SUFFIX = "@base64"


class GroupingError(ValueError):
    """The path does not name a valid group; the message says why."""


def parse_grouping_path(raw: str) -> Labels:
    """Labels of the group named by `raw`, the still percent-encoded path after
    ``/metrics/`` (e.g. ``job/etl/instance@base64/aG9zdC8x``).

    Raises `GroupingError` for an odd number of segments, a missing or empty job,
    an invalid or reserved (``__``) label name, a repeated label name or bad base64.
    """
    raw = raw.removesuffix("/")
    if not raw:
        raise GroupingError("the path must be /metrics/job/<job>{/<label>/<value>}")
    segments = raw.split("/")
    if len(segments) % 2:
        raise GroupingError(f"odd number of components in label string {raw!r}")
    pairs: dict[str, str] = {}
    for i in range(0, len(segments), 2):
        name = urllib.parse.unquote(segments[i])
        value = urllib.parse.unquote(segments[i + 1])
        if name.endswith(BASE64_SUFFIX):
            name = name.removesuffix(BASE64_SUFFIX)
            value = _b64decode(name, value)
        if i == 0 and name != "job":
            raise GroupingError(f"the path must start with /metrics/job/, got {name!r}")
        if not LABEL_NAME_RE.match(name) or name.startswith("__"):
            raise GroupingError(f"improper label name {name!r}")
        if name in pairs:
            raise GroupingError(f"label name {name!r} appears twice in the path")
        pairs[name] = value
    if not pairs["job"]:
        raise GroupingError("job name is required")
    return Labels.from_dict(pairs)


def _b64decode(name: str, value: str) -> str:
    stripped = value.rstrip("=")
    try:
        padded = stripped + "=" * (-len(stripped) % 4)
        return base64.b64decode(padded, altchars=b"-_", validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise GroupingError(f"invalid base64url value {value!r} for label {name!r}") from None
