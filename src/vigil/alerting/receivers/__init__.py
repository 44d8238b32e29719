"""Receiver integrations. `build_notifier(kind, config, templates, external_url)` makes one."""

from __future__ import annotations

from typing import Any

from vigil.alerting.receivers.base import Notifier, NotifyContext, NotifyError
from vigil.gotemplate import Template

__all__ = ["Notifier", "NotifyContext", "NotifyError", "build_notifier"]


def build_notifier(kind: str, cfg: Any, templates: Template, external_url: str) -> Notifier:
    """The notifier for one ``<kind>`` entry (e.g. ``"webhook_configs"``) of a receiver."""
    from vigil.alerting.receivers import chat, email, pagerduty, slack, webhook

    table: dict[str, Any] = {
        "webhook_configs": webhook.WebhookNotifier,
        "email_configs": email.EmailNotifier,
        "slack_configs": slack.SlackNotifier,
        "pagerduty_configs": pagerduty.PagerDutyNotifier,
        "msteams_configs": chat.MSTeamsNotifier,
        "discord_configs": chat.DiscordNotifier,
        "telegram_configs": chat.TelegramNotifier,
        "opsgenie_configs": chat.OpsgenieNotifier,
    }
    return table[kind](cfg, templates, external_url)  # type: ignore[no-any-return]
