"""The `Notifier` protocol every integration implements, and shared helpers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from vigil.alerting.alert import Alert
from vigil.alerting.templates import TemplateData, expand, template_data
from vigil.gotemplate import Template, TemplateError
from vigil.model.labels import Labels


class NotifyError(Exception):
    """Sending failed. `retry` says whether trying again may help (e.g. 5xx vs 4xx)."""

    def __init__(self, message: str, retry: bool = True) -> None:
        super().__init__(message)
        self.retry = retry


@dataclass
class NotifyContext:
    """What a notifier knows about the notification besides the alerts.

    `now` is Unix seconds; `group_key` is Alertmanager's group key string.
    """

    receiver: str
    group_key: str
    group_labels: Labels
    now: float
    repeat_interval: float = 4 * 3600.0
    group_interval: float = 300.0
    mute_time_intervals: tuple[str, ...] = ()
    active_time_intervals: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


class Notifier(Protocol):
    """One integration of a receiver (one entry of e.g. ``webhook_configs``)."""

    send_resolved: bool

    async def notify(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> None:
        """Deliver `alerts`; raise `NotifyError` on failure (``retry`` says if retrying helps)."""
        ...


class TemplatedNotifier:
    """Base for notifiers whose fields are templates over `TemplateData`."""

    def __init__(self, templates: Template, external_url: str) -> None:
        self.templates = templates
        self.external_url = external_url

    def data(self, ctx: NotifyContext, alerts: Sequence[Alert]) -> TemplateData:
        return template_data(ctx.receiver, ctx.group_labels, alerts, ctx.now, self.external_url)

    def tmpl(self, text: str, data: TemplateData) -> str:
        try:
            return expand(self.templates, text, data)
        except TemplateError as exc:
            # A broken template never succeeds on retry.
            raise NotifyError(f"template error: {exc}", retry=False) from None


def retry_for_status(code: int) -> bool:
    """Alertmanager retries 5xx (and 429), not other 4xx."""
    return code >= 500 or code == 429


def truncate(s: str, n: int) -> str:
    """Truncate to `n` runes, ending with an ellipsis when cut (as Alertmanager)."""
    if len(s) <= n:
        return s
    return s[: max(n - 1, 0)] + "…"
