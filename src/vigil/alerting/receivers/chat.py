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
from vigil.alerting.receivers.http import post_json, read_secret_file, send_json
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
        # Alertmanager always sends "content" (empty): Discord needs content or embeds.
        return {
            "content": "",
            "embeds": [
                {
                    "title": truncate(self.tmpl(self.cfg.title, d), 256),
                    "description": truncate(self.tmpl(self.cfg.message, d), 4096),
                    "color": color,
                }
            ],
        }

    async def notify(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> None:
        url = self.cfg.webhook_url or read_secret_file(self.cfg.webhook_url_file)
        await post_json(url, self.payload(ctx, alerts))


class TelegramNotifier(TemplatedNotifier):
    def __init__(self, cfg: TelegramConfig, templates: Template, external_url: str) -> None:
        super().__init__(templates, external_url)
        self.cfg = cfg
        self.send_resolved = cfg.send_resolved

    def payload(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> dict[str, str]:
        """sendMessage parameters as Alertmanager's Telegram client sends them: all strings."""
        d = self.data(ctx, alerts)
        body = {
            "chat_id": str(self.cfg.chat_id),
            "text": truncate(self.tmpl(self.cfg.message, d), 4096),
        }
        if self.cfg.parse_mode:
            body["parse_mode"] = self.cfg.parse_mode
        body["disable_web_page_preview"] = "true"
        if self.cfg.disable_notifications:
            body["disable_notification"] = "true"
        if self.cfg.message_thread_id:
            body["message_thread_id"] = str(self.cfg.message_thread_id)
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
        """The create-alert body (POST /v2/alerts); empty optional fields are left out."""
        c = self.cfg
        d = self.data(ctx, alerts)
        # Common labels first; configured details override them.
        details = dict(d.CommonLabels.items())
        details.update({k: self.tmpl(v, d) for k, v in c.details.items()})
        body: dict[str, Any] = {
            "alias": self.alias(ctx),
            "message": truncate(self.tmpl(c.message, d), 130),
        }
        description = self.tmpl(c.description, d)
        if description:
            body["description"] = description
        body["details"] = details
        body["source"] = self.tmpl(c.source, d)
        responders = self.responders(d)
        if responders:
            body["responders"] = responders
        optional = {
            "tags": _split(self.tmpl(c.tags, d)),
            "note": self.tmpl(c.note, d),
            "priority": self.tmpl(c.priority, d),
            "entity": self.tmpl(c.entity, d),
            "actions": _split(self.tmpl(c.actions, d)),
        }
        body.update({k: v for k, v in optional.items() if v})
        return body

    def responders(self, d: Any) -> list[dict[str, str]]:
        """Templated responders; empty ones dropped, ``type: teams`` split into teams."""
        out: list[dict[str, str]] = []
        for r in self.cfg.responders:
            if not isinstance(r, dict):
                continue
            got = {k: self.tmpl(str(r.get(k) or ""), d) for k in ("id", "name", "username", "type")}
            if not any(got.values()):
                continue
            if got["type"] == "teams":
                out.extend({"name": t, "type": "team"} for t in _split(got["name"]))
                continue
            out.append({k: v for k, v in got.items() if v or k == "type"})
        return out

    async def notify(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> None:
        c = self.cfg
        d = self.data(ctx, alerts)
        key = self.tmpl(c.api_key or read_secret_file(c.api_key_file), d)
        base = c.api_url.rstrip("/") + "/v2/alerts"
        headers = {"Authorization": f"GenieKey {key}"}
        alias = self.alias(ctx)
        if d.Status == "resolved":
            await post_json(
                f"{base}/{alias}/close?identifierType=alias",
                {"source": self.tmpl(c.source, d)},
                headers,
            )
            return
        body = self.payload(ctx, alerts)
        await post_json(base, body, headers)
        if c.update_alerts:
            # Opsgenie keeps the first message/description of an alias unless told.
            for field in ("message", "description"):
                await send_json(
                    "PUT",
                    f"{base}/{alias}/{field}?identifierType=alias",
                    {field: body[field]} if body.get(field) else {},
                    headers,
                )


def _split(s: str) -> list[str]:
    """Comma-separated values without empty ones (Alertmanager's safeSplit)."""
    return [x for x in s.strip().split(",") if x]
