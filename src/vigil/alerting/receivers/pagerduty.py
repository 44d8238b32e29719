"""PagerDuty Events API v2 (routing_key) and v1 (service_key)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from vigil.alerting.alert import Alert
from vigil.alerting.receiver_config import PagerdutyConfig
from vigil.alerting.receivers.base import NotifyContext, TemplatedNotifier, truncate
from vigil.alerting.receivers.http import post_json, read_secret_file
from vigil.gotemplate import Template

V1_URL = "https://events.pagerduty.com/generic/2010-04-15/create_event.json"
MAX_SUMMARY = 1024
DEFAULT_DETAILS = {
    "firing": '{{ template "pagerduty.default.instances" .Alerts.Firing }}',
    "resolved": '{{ template "pagerduty.default.instances" .Alerts.Resolved }}',
    "num_firing": "{{ .Alerts.Firing | len }}",
    "num_resolved": "{{ .Alerts.Resolved | len }}",
}


class PagerDutyNotifier(TemplatedNotifier):
    def __init__(self, cfg: PagerdutyConfig, templates: Template, external_url: str) -> None:
        super().__init__(templates, external_url)
        self.cfg = cfg
        self.send_resolved = cfg.send_resolved

    def dedup_key(self, ctx: NotifyContext) -> str:
        # Alertmanager uses the SHA-256 of the group key as the incident key.
        return hashlib.sha256(ctx.group_key.encode()).hexdigest()

    def payload(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> dict[str, Any]:
        c = self.cfg
        d = self.data(ctx, alerts)
        t = self.tmpl
        details = {k: t(v, d) for k, v in (c.details or DEFAULT_DETAILS).items()}
        action = "trigger" if d.Status == "firing" else "resolve"
        if c.service_key or c.service_key_file:
            key = c.service_key or read_secret_file(c.service_key_file)
            return {
                "service_key": key,
                "event_type": action,
                "incident_key": self.dedup_key(ctx),
                "description": truncate(t(c.description, d), MAX_SUMMARY),
                "client": t(c.client, d),
                "client_url": t(c.client_url, d),
                "details": details,
            }
        key = c.routing_key or read_secret_file(c.routing_key_file)
        body: dict[str, Any] = {
            "routing_key": key,
            "event_action": action,
            "dedup_key": self.dedup_key(ctx),
            "client": t(c.client, d),
            "client_url": t(c.client_url, d),
        }
        if action == "trigger":
            payload = {
                "summary": truncate(t(c.description, d), MAX_SUMMARY),
                "source": t(c.source, d) or t(c.client, d),
                "severity": t(c.severity, d),
                "custom_details": details,
                "class": t(c.class_, d),
                "component": t(c.component, d),
                "group": t(c.group, d),
            }
            body["payload"] = {k: v for k, v in payload.items() if v != ""}
            if c.images:
                body["images"] = [
                    {k: t(str(v), d) for k, v in i.items()} for i in c.images if isinstance(i, dict)
                ]
            if c.links:
                body["links"] = [
                    {k: t(str(v), d) for k, v in i.items()} for i in c.links if isinstance(i, dict)
                ]
        return body

    async def notify(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> None:
        c = self.cfg
        url = (
            V1_URL
            if (c.service_key or c.service_key_file) and c.url.endswith("/v2/enqueue")
            else c.url
        )
        await post_json(url, self.payload(ctx, alerts))
