"""Typed per-integration receiver configs (webhook, email, slack, ...).

Field names are Alertmanager's YAML keys; `GLOBAL_DEFAULTS` says which field
falls back to which ``global:`` key, and each class's `send_resolved` default is
Alertmanager's. Template-valued fields hold the *unexpanded* template text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class WebhookConfig:
    url: str = ""
    url_file: str = ""
    send_resolved: bool = True
    max_alerts: int = 0
    timeout: str = ""
    http_config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EmailConfig:
    to: str = ""
    send_resolved: bool = False
    from_: str = ""
    hello: str = ""
    smarthost: str = ""
    auth_username: str = ""
    auth_password: str = ""
    auth_password_file: str = ""
    auth_secret: str = ""
    auth_identity: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    html: str = '{{ template "email.default.html" . }}'
    text: str = ""
    require_tls: bool | None = None
    tls_config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SlackConfig:
    api_url: str = ""
    api_url_file: str = ""
    send_resolved: bool = False
    channel: str = ""
    username: str = '{{ template "slack.default.username" . }}'
    color: str = '{{ if eq .Status "firing" }}danger{{ else }}good{{ end }}'
    title: str = '{{ template "slack.default.title" . }}'
    title_link: str = '{{ template "slack.default.titlelink" . }}'
    pretext: str = '{{ template "slack.default.pretext" . }}'
    text: str = '{{ template "slack.default.text" . }}'
    footer: str = '{{ template "slack.default.footer" . }}'
    fallback: str = '{{ template "slack.default.fallback" . }}'
    callback_id: str = '{{ template "slack.default.callbackid" . }}'
    icon_emoji: str = '{{ template "slack.default.iconemoji" . }}'
    icon_url: str = '{{ template "slack.default.iconurl" . }}'
    image_url: str = ""
    thumb_url: str = ""
    link_names: bool = False
    short_fields: bool = False
    mrkdwn_in: list[str] = field(default_factory=lambda: ["fallback", "pretext", "text"])
    fields: list[Any] = field(default_factory=list)
    actions: list[Any] = field(default_factory=list)
    http_config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PagerdutyConfig:
    routing_key: str = ""
    routing_key_file: str = ""
    service_key: str = ""
    service_key_file: str = ""
    send_resolved: bool = True
    url: str = ""
    client: str = '{{ template "pagerduty.default.client" . }}'
    client_url: str = '{{ template "pagerduty.default.clientURL" . }}'
    description: str = '{{ template "pagerduty.default.description" .}}'
    details: dict[str, str] = field(default_factory=dict)
    severity: str = "error"
    class_: str = ""
    component: str = ""
    group: str = ""
    source: str = ""
    images: list[Any] = field(default_factory=list)
    links: list[Any] = field(default_factory=list)
    http_config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MSTeamsConfig:
    webhook_url: str = ""
    webhook_url_file: str = ""
    send_resolved: bool = True
    title: str = '{{ template "msteams.default.title" . }}'
    summary: str = '{{ template "msteams.default.summary" . }}'
    text: str = '{{ template "msteams.default.text" . }}'
    http_config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TelegramConfig:
    api_url: str = ""
    bot_token: str = ""
    bot_token_file: str = ""
    chat_id: int = 0
    message_thread_id: int = 0
    send_resolved: bool = True
    message: str = '{{ template "telegram.default.message" . }}'
    disable_notifications: bool = False
    parse_mode: str = "HTML"
    http_config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DiscordConfig:
    webhook_url: str = ""
    webhook_url_file: str = ""
    send_resolved: bool = True
    title: str = '{{ template "discord.default.title" . }}'
    message: str = '{{ template "discord.default.message" . }}'
    http_config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OpsgenieConfig:
    api_key: str = ""
    api_key_file: str = ""
    api_url: str = ""
    send_resolved: bool = True
    message: str = '{{ template "opsgenie.default.message" . }}'
    description: str = '{{ template "opsgenie.default.description" . }}'
    source: str = '{{ template "opsgenie.default.source" . }}'
    details: dict[str, str] = field(default_factory=dict)
    entity: str = ""
    responders: list[Any] = field(default_factory=list)
    actions: str = ""
    tags: str = ""
    note: str = ""
    priority: str = ""
    update_alerts: bool = False
    http_config: dict[str, Any] = field(default_factory=dict)


# YAML list key -> config class. Keys Alertmanager knows but Vigil does not send
# to are accepted (so real configs load) and reported as warnings.
INTEGRATIONS: dict[str, type] = {
    "webhook_configs": WebhookConfig,
    "email_configs": EmailConfig,
    "slack_configs": SlackConfig,
    "pagerduty_configs": PagerdutyConfig,
    "msteams_configs": MSTeamsConfig,
    "telegram_configs": TelegramConfig,
    "discord_configs": DiscordConfig,
    "opsgenie_configs": OpsgenieConfig,
}
UNSUPPORTED_INTEGRATIONS = frozenset(
    {
        "victorops_configs",
        "pushover_configs",
        "wechat_configs",
        "sns_configs",
        "webex_configs",
        "msteamsv2_configs",
        "jira_configs",
        "rocketchat_configs",
    }
)

# (integration key, field) -> global key supplying its default.
GLOBAL_DEFAULTS: dict[tuple[str, str], str] = {
    ("email_configs", "from_"): "smtp_from",
    ("email_configs", "hello"): "smtp_hello",
    ("email_configs", "smarthost"): "smtp_smarthost",
    ("email_configs", "auth_username"): "smtp_auth_username",
    ("email_configs", "auth_password"): "smtp_auth_password",
    ("email_configs", "auth_password_file"): "smtp_auth_password_file",
    ("email_configs", "auth_secret"): "smtp_auth_secret",
    ("email_configs", "auth_identity"): "smtp_auth_identity",
    ("email_configs", "require_tls"): "smtp_require_tls",
    ("slack_configs", "api_url"): "slack_api_url",
    ("slack_configs", "api_url_file"): "slack_api_url_file",
    ("pagerduty_configs", "url"): "pagerduty_url",
    ("opsgenie_configs", "api_url"): "opsgenie_api_url",
    ("opsgenie_configs", "api_key"): "opsgenie_api_key",
    ("opsgenie_configs", "api_key_file"): "opsgenie_api_key_file",
    ("telegram_configs", "api_url"): "telegram_api_url",
}

# Python-side names for YAML keys that are Python keywords.
RENAMED = {"from": "from_", "class": "class_"}
