"""Vigil's push endpoint: the Pushgateway protocol, with a TTL per group.

Batch jobs push with ``PUT|POST|DELETE /metrics/job/<job>{/<label>/<value>}``
(`vigil.sdk.push_metrics` or any Pushgateway client); `PushRegistry` keeps the groups
and writes their series into the store, `create_push_routes` serves the HTTP side.
See docs/push.md.
"""

from vigil.push.api import create_push_routes
from vigil.push.body import PushRejected
from vigil.push.registry import Group, PushRegistry

__all__ = ["Group", "PushRegistry", "PushRejected", "create_push_routes"]
