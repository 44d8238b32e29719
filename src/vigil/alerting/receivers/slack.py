"""Slack incoming webhooks / chat.postMessage with Alertmanager's attachment payload."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vigil.alerting.alert import Alert
from vigil.alerting.receiver_config import SlackConfig
from vigil.alerting.receivers.base import NotifyContext, NotifyError, TemplatedNotifier, truncate
from vigil.alerting.receivers.http import post_json, read_secret_file
from vigil.gotemplate import Template

MAX_TITLE_RUNES = 1024


class SlackNotifier(TemplatedNotifier):
    def __init__(self, cfg: SlackConfig, templates: Template, external_url: str) -> None:
        super().__init__(templates, external_url)
        self.cfg = cfg
        self.send_resolved = cfg.send_resolved

    def payload(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> dict[str, Any]:
        c = self.cfg
        d = self.data(ctx, alerts)
        t = self.tmpl
        att: dict[str, Any] = {
            "title": truncate(t(c.title, d), MAX_TITLE_RUNES),
            "title_link": t(c.title_link, d),
            "pretext": t(c.pretext, d),
            "text": t(c.text, d),
            "fallback": t(c.fallback, d),
            "callback_id": t(c.callback_id, d),
            "footer": t(c.footer, d),
            "color": t(c.color, d),
            "mrkdwn_in": list(c.mrkdwn_in),
        }
        if c.image_url:
            att["image_url"] = t(c.image_url, d)
        if c.thumb_url:
            att["thumb_url"] = t(c.thumb_url, d)
        if c.fields:
            att["fields"] = [
                {
                    "title": t(str(f.get("title", "")), d),
                    "value": t(str(f.get("value", "")), d),
                    "short": bool(f.get("short", c.short_fields)),
                }
                for f in c.fields
                if isinstance(f, dict)
            ]
        if c.actions:
            att["actions"] = [
                {k: (t(v, d) if isinstance(v, str) else v) for k, v in a.items()}
                for a in c.actions
                if isinstance(a, dict)
            ]
        # Empty strings are omitted as Go's `omitempty` would.
        att = {k: v for k, v in att.items() if v not in ("", None)}
        body: dict[str, Any] = {
            "channel": t(c.channel, d),
            "username": t(c.username, d),
            "icon_emoji": t(c.icon_emoji, d),
            "icon_url": t(c.icon_url, d),
            "link_names": c.link_names,
            "attachments": [att],
        }
        return {k: v for k, v in body.items() if v not in ("", None, False)}

    async def notify(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> None:
        url = self.cfg.api_url or read_secret_file(self.cfg.api_url_file)
        resp = await post_json(url, self.payload(ctx, alerts))
        # chat.postMessage answers 200 with {"ok": false, "error": ...} on failure.
        if resp.headers.get("content-type", "").startswith("application/json"):
            try:
                doc = resp.json()
            except ValueError:
                return
            if isinstance(doc, dict) and doc.get("ok") is False:
                raise NotifyError(f"slack error: {doc.get('error', 'unknown')}", retry=False)
