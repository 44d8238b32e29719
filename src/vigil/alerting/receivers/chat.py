"""Smaller HTTP integrations: Microsoft Teams, Discord, Telegram, Opsgenie."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from vigil.alerting.alert import Alert
from vigil.alerting.receiver_config import (
    DiscordConfig,
    MSTeamsConfig,
    OpsgenieConfig,
    TelegramConfig,
)
from vigil.alerting.receivers.base import NotifyContext, TemplatedNotifier, truncate
from vigil.alerting.receivers.http import post_json, read_secret_file
from vigil.gotemplate import Template


class MSTeamsNotifier(TemplatedNotifier):
    def __init__(self, cfg: MSTeamsConfig, templates: Template, external_url: str) -> None:
        super().__init__(templates, external_url)
        self.cfg = cfg
        self.send_resolved = cfg.send_resolved

    def payload(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> dict[str, Any]:
        d = self.data(ctx, alerts)
        return {
            "@context": "http://schema.org/extensions",
            "type": "MessageCard",
            "title": self.tmpl(self.cfg.title, d),
            "summary": self.tmpl(self.cfg.summary, d),
            "text": self.tmpl(self.cfg.text, d),
            "themeColor": "8C1A1A" if d.Status == "firing" else "2DC72D",
        }

    async def notify(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> None:
        url = self.cfg.webhook_url or read_secret_file(self.cfg.webhook_url_file)
        await post_json(url, self.payload(ctx, alerts))


class DiscordNotifier(TemplatedNotifier):
    def __init__(self, cfg: DiscordConfig, templates: Template, external_url: str) -> None:
        super().__init__(templates, external_url)
        self.cfg = cfg
        self.send_resolved = cfg.send_resolved

    def payload(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> dict[str, Any]:
        d = self.data(ctx, alerts)
        color = 0x992D22 if d.Status == "firing" else 0x2ECC71
        return {
            "embeds": [
                {
                    "title": truncate(self.tmpl(self.cfg.title, d), 256),
                    "description": truncate(self.tmpl(self.cfg.message, d), 4096),
                    "color": color,
                }
            ]
        }

    async def notify(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> None:
        url = self.cfg.webhook_url or read_secret_file(self.cfg.webhook_url_file)
        await post_json(url, self.payload(ctx, alerts))


class TelegramNotifier(TemplatedNotifier):
    def __init__(self, cfg: TelegramConfig, templates: Template, external_url: str) -> None:
        super().__init__(templates, external_url)
        self.cfg = cfg
        self.send_resolved = cfg.send_resolved

    def payload(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> dict[str, Any]:
        d = self.data(ctx, alerts)
        body: dict[str, Any] = {
            "chat_id": self.cfg.chat_id,
            "text": truncate(self.tmpl(self.cfg.message, d), 4096),
            "parse_mode": self.cfg.parse_mode,
            "disable_notification": self.cfg.disable_notifications,
        }
        if self.cfg.message_thread_id:
            body["message_thread_id"] = self.cfg.message_thread_id
        return body

    async def notify(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> None:
        token = self.cfg.bot_token or read_secret_file(self.cfg.bot_token_file)
        url = f"{self.cfg.api_url.rstrip('/')}/bot{token}/sendMessage"
        await post_json(url, self.payload(ctx, alerts))


class OpsgenieNotifier(TemplatedNotifier):
    def __init__(self, cfg: OpsgenieConfig, templates: Template, external_url: str) -> None:
        super().__init__(templates, external_url)
        self.cfg = cfg
        self.send_resolved = cfg.send_resolved

    def alias(self, ctx: NotifyContext) -> str:
        return hashlib.sha256(ctx.group_key.encode()).hexdigest()

    def payload(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> dict[str, Any]:
        c = self.cfg
        d = self.data(ctx, alerts)
        body: dict[str, Any] = {
            "alias": self.alias(ctx),
            "message": truncate(self.tmpl(c.message, d), 130),
            "description": self.tmpl(c.description, d),
            "details": {k: self.tmpl(v, d) for k, v in c.details.items()},
            "source": self.tmpl(c.source, d),
        }
        if c.tags:
            body["tags"] = [x.strip() for x in self.tmpl(c.tags, d).split(",") if x.strip()]
        for k in ("note", "priority", "entity", "actions"):
            v = getattr(c, k)
            if v:
                body[k] = self.tmpl(v, d)
        if c.responders:
            body["responders"] = c.responders
        return body

    async def notify(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> None:
        c = self.cfg
        key = c.api_key or read_secret_file(c.api_key_file)
        base = c.api_url.rstrip("/") + "/v2/alerts"
        headers = {"Authorization": f"GenieKey {key}"}
        d = self.data(ctx, alerts)
        if d.Status == "resolved":
            await post_json(
                f"{base}/{self.alias(ctx)}/close?identifierType=alias",
                {"source": self.tmpl(c.source, d)},
                headers,
            )
        else:
            await post_json(base, self.payload(ctx, alerts), headers)
