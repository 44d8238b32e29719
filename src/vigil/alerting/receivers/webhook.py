"""The generic webhook: Alertmanager's JSON payload, version "4"."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vigil.alerting.alert import Alert, format_time
from vigil.alerting.receiver_config import WebhookConfig
from vigil.alerting.receivers.base import NotifyContext
from vigil.alerting.receivers.http import post_json, read_secret_file
from vigil.alerting.templates import template_data
from vigil.config.types import Duration
from vigil.gotemplate import Template


def webhook_payload(
    ctx: NotifyContext, alerts: Sequence[Alert], external_url: str, max_alerts: int = 0
) -> dict[str, Any]:
    """The exact body Alertmanager POSTs (keys in its order)."""
    data = template_data(ctx.receiver, ctx.group_labels, alerts, ctx.now, external_url)
    shown = list(alerts)
    truncated = 0
    if max_alerts and len(shown) > max_alerts:
        truncated = len(shown) - max_alerts
        shown = shown[:max_alerts]
    return {
        "receiver": data.Receiver,
        "status": data.Status,
        "alerts": [
            {
                "status": a.status(ctx.now),
                "labels": dict(a.labels),
                "annotations": dict(a.annotations),
                "startsAt": format_time(a.starts_at),
                "endsAt": format_time(a.ends_at if a.resolved(ctx.now) else 0.0),
                "generatorURL": a.generator_url,
                "fingerprint": a.fingerprint,
            }
            for a in shown
        ],
        "groupLabels": dict(data.GroupLabels),
        "commonLabels": dict(data.CommonLabels),
        "commonAnnotations": dict(data.CommonAnnotations),
        "externalURL": external_url,
        "version": "4",
        "groupKey": ctx.group_key,
        "truncatedAlerts": truncated,
    }


class WebhookNotifier:
    def __init__(self, cfg: WebhookConfig, templates: Template, external_url: str) -> None:
        self.cfg = cfg
        self.external_url = external_url
        self.send_resolved = cfg.send_resolved
        self.timeout = Duration.parse(cfg.timeout).seconds if cfg.timeout else 30.0

    async def notify(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> None:
        url = self.cfg.url or read_secret_file(self.cfg.url_file)
        body = webhook_payload(ctx, alerts, self.external_url, self.cfg.max_alerts)
        await post_json(url, body, timeout=self.timeout)
