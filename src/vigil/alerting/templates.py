"""Notification template data (Alertmanager's `template.Data`) and default templates.

`TemplateData` exposes exactly the names Alertmanager templates use:
``.Receiver .Status .Alerts .GroupLabels .CommonLabels .CommonAnnotations
.ExternalURL``; `KV` has ``SortedPairs``, ``Names``, ``Values``, ``Remove``;
`AlertList` has ``Firing`` and ``Resolved``. The default templates produce the
same titles and texts as Alertmanager's (own wording for e-mail HTML).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from vigil.alerting.alert import Alert
from vigil.gotemplate import Template
from vigil.gotemplate.exec import MISSING
from vigil.model.labels import Labels


@dataclass(frozen=True)
class Pair:
    Name: str
    Value: str


class Pairs(list[Pair]):
    def Names(self) -> list[str]:
        return [p.Name for p in self]

    def Values(self) -> list[str]:
        return [p.Value for p in self]


class KV(dict[str, str]):
    """A label or annotation map with Alertmanager's template methods."""

    def get(self, key: str, default: Any = "") -> Any:  # type: ignore[override]
        """A missing key gives "" (Go's zero value for map[string]string).

        Alertmanager parses templates with missingkey=zero, so `.Labels.nope` and
        `index .Labels "nope"` are "", not "<no value>"; the engine looks keys up here.
        """
        if default is MISSING or default is None:
            default = ""
        return super().get(key, default)

    def SortedPairs(self) -> Pairs:
        return Pairs(Pair(k, self[k]) for k in sorted(self))

    def Names(self) -> list[str]:
        return sorted(self)

    def Values(self) -> list[str]:
        return [self[k] for k in sorted(self)]

    def Remove(self, keys: Iterable[str]) -> KV:
        drop = set(keys)
        return KV({k: v for k, v in self.items() if k not in drop})


class GoTime(float):
    """A timestamp printing like Go's ``time.Time.String()``."""

    def __str__(self) -> str:
        if self == 0:
            return "0001-01-01 00:00:00 +0000 UTC"
        d = dt.datetime.fromtimestamp(float(self), dt.UTC)
        frac = f".{d.microsecond:06d}".rstrip("0") if d.microsecond else ""
        return d.strftime("%Y-%m-%d %H:%M:%S") + frac + " +0000 UTC"

    def Unix(self) -> int:
        return int(self)

    def Format(self, layout: str) -> str:
        d = dt.datetime.fromtimestamp(float(self), dt.UTC)
        if layout in ("2006-01-02T15:04:05Z07:00", "RFC3339"):
            return d.strftime("%Y-%m-%dT%H:%M:%SZ")
        table = [
            ("2006", "%Y"),
            ("01", "%m"),
            ("02", "%d"),
            ("15", "%H"),
            ("04", "%M"),
            ("05", "%S"),
            ("MST", "UTC"),
            ("Jan", "%b"),
            ("Mon", "%a"),
        ]
        fmt = layout
        for go, py in table:
            fmt = fmt.replace(go, py)
        return d.strftime(fmt)


@dataclass(frozen=True)
class TemplateAlert:
    Status: str
    Labels: KV
    Annotations: KV
    StartsAt: GoTime
    EndsAt: GoTime
    GeneratorURL: str
    Fingerprint: str


class AlertList(list[TemplateAlert]):
    def Firing(self) -> AlertList:
        return AlertList(a for a in self if a.Status == "firing")

    def Resolved(self) -> AlertList:
        return AlertList(a for a in self if a.Status == "resolved")


@dataclass(frozen=True)
class TemplateData:
    Receiver: str
    Status: str
    Alerts: AlertList
    GroupLabels: KV
    CommonLabels: KV
    CommonAnnotations: KV
    ExternalURL: str


def _common(sets: Sequence[Labels]) -> KV:
    if not sets:
        return KV()
    common = dict(sets[0])
    for s in sets[1:]:
        d = dict(s)
        common = {k: v for k, v in common.items() if d.get(k) == v}
    return KV(common)


def common_labels(alerts: Sequence[Any]) -> Labels:
    """The label pairs every one of `alerts` has."""
    return Labels.from_dict(dict(_common([a.labels for a in alerts])))


def template_data(
    receiver: str, group_labels: Labels, alerts: Sequence[Alert], now: float, external_url: str
) -> TemplateData:
    """Build template data; firing alerts expose a zero EndsAt as in Alertmanager."""
    items = AlertList(
        TemplateAlert(
            Status=a.status(now),
            Labels=KV(a.labels),
            Annotations=KV(a.annotations),
            StartsAt=GoTime(a.starts_at),
            EndsAt=GoTime(a.ends_at if a.resolved(now) else 0.0),
            GeneratorURL=a.generator_url,
            Fingerprint=a.fingerprint,
        )
        for a in alerts
    )
    status = "firing" if any(a.Status == "firing" for a in items) else "resolved"
    return TemplateData(
        Receiver=receiver,
        Status=status,
        Alerts=items,
        GroupLabels=KV(group_labels),
        CommonLabels=_common([a.labels for a in alerts]),
        CommonAnnotations=_common([a.annotations for a in alerts]),
        ExternalURL=external_url,
    )


# Our own wording of Alertmanager's default templates; names and outputs match
# Alertmanager's so configs referring to them behave the same.
DEFAULT_TEMPLATES = r"""
{{ define "__alertmanager" }}Alertmanager{{ end }}
{{ define "__alertmanagerURL" }}{{ .ExternalURL }}/#/alerts?receiver={{ .Receiver | urlquery }}{{ end }}
{{ define "__subject" }}[{{ .Status | toUpper }}{{ if eq .Status "firing" }}:{{ .Alerts.Firing | len }}{{ end }}] {{ .GroupLabels.SortedPairs.Values | join " " }} {{ if gt (len .CommonLabels) (len .GroupLabels) }}({{ with .CommonLabels.Remove .GroupLabels.Names }}{{ .Values | join " " }}{{ end }}){{ end }}{{ end }}
{{ define "__description" }}{{ end }}
{{ define "__text_alert_list" }}{{ range . }}Labels:
{{ range .Labels.SortedPairs }} - {{ .Name }} = {{ .Value }}
{{ end }}Annotations:
{{ range .Annotations.SortedPairs }} - {{ .Name }} = {{ .Value }}
{{ end }}Source: {{ .GeneratorURL }}
{{ end }}{{ end }}
{{ define "__text_alert_list_markdown" }}{{ range . }}
Labels:
{{ range .Labels.SortedPairs }}  - {{ .Name }} = {{ .Value }}
{{ end }}
Annotations:
{{ range .Annotations.SortedPairs }}  - {{ .Name }} = {{ .Value }}
{{ end }}
Source: {{ .GeneratorURL }}
{{ end }}{{ end }}
{{ define "slack.default.title" }}{{ template "__subject" . }}{{ end }}
{{ define "slack.default.username" }}{{ template "__alertmanager" . }}{{ end }}
{{ define "slack.default.fallback" }}{{ template "slack.default.title" . }} | {{ template "slack.default.titlelink" . }}{{ end }}
{{ define "slack.default.callbackid" }}{{ end }}
{{ define "slack.default.pretext" }}{{ end }}
{{ define "slack.default.titlelink" }}{{ template "__alertmanagerURL" . }}{{ end }}
{{ define "slack.default.iconemoji" }}{{ end }}
{{ define "slack.default.iconurl" }}{{ end }}
{{ define "slack.default.text" }}{{ end }}
{{ define "slack.default.footer" }}{{ end }}
{{ define "pagerduty.default.description" }}{{ template "__subject" . }}{{ end }}
{{ define "pagerduty.default.client" }}{{ template "__alertmanager" . }}{{ end }}
{{ define "pagerduty.default.clientURL" }}{{ template "__alertmanagerURL" . }}{{ end }}
{{ define "pagerduty.default.instances" }}{{ template "__text_alert_list" . }}{{ end }}
{{ define "opsgenie.default.message" }}{{ template "__subject" . }}{{ end }}
{{ define "opsgenie.default.description" }}{{ .CommonAnnotations.SortedPairs.Values | join " " }}
{{ if gt (len .Alerts.Firing) 0 -}}
Alerts Firing:
{{ template "__text_alert_list" .Alerts.Firing }}
{{- end }}
{{ if gt (len .Alerts.Resolved) 0 -}}
Alerts Resolved:
{{ template "__text_alert_list" .Alerts.Resolved }}
{{- end }}
{{- end }}
{{ define "opsgenie.default.source" }}{{ template "__alertmanagerURL" . }}{{ end }}
{{ define "email.default.subject" }}{{ template "__subject" . }}{{ end }}
{{ define "email.default.html" }}<!DOCTYPE html>
<html><head><meta charset="UTF-8"><title>{{ template "__subject" . }}</title></head>
<body style="font-family: sans-serif">
<h2>{{ .Alerts | len }} alert{{ if gt (len .Alerts) 1 }}s{{ end }} for {{ range .GroupLabels.SortedPairs }}{{ .Name }}={{ .Value }} {{ end }}</h2>
<p><a href="{{ template "__alertmanagerURL" . }}">View in {{ template "__alertmanager" . }}</a></p>
{{ if gt (len .Alerts.Firing) 0 }}<h3>[{{ .Alerts.Firing | len }}] Firing</h3>
{{ range .Alerts.Firing }}<p><b>Labels</b><br>{{ range .Labels.SortedPairs }}{{ .Name }} = {{ .Value }}<br>{{ end }}{{ if .Annotations }}<b>Annotations</b><br>{{ range .Annotations.SortedPairs }}{{ .Name }} = {{ .Value }}<br>{{ end }}{{ end }}<a href="{{ .GeneratorURL }}">Source</a></p>
{{ end }}{{ end }}{{ if gt (len .Alerts.Resolved) 0 }}<h3>[{{ .Alerts.Resolved | len }}] Resolved</h3>
{{ range .Alerts.Resolved }}<p><b>Labels</b><br>{{ range .Labels.SortedPairs }}{{ .Name }} = {{ .Value }}<br>{{ end }}{{ if .Annotations }}<b>Annotations</b><br>{{ range .Annotations.SortedPairs }}{{ .Name }} = {{ .Value }}<br>{{ end }}{{ end }}<a href="{{ .GeneratorURL }}">Source</a></p>
{{ end }}{{ end }}<p style="color:#999">Sent by {{ template "__alertmanager" . }}</p>
</body></html>
{{ end }}
{{ define "msteams.default.summary" }}{{ template "__subject" . }}{{ end }}
{{ define "msteams.default.title" }}{{ template "__subject" . }}{{ end }}
{{ define "msteams.default.text" }}
{{ if gt (len .Alerts.Firing) 0 }}
# Alerts Firing:
{{ template "__text_alert_list_markdown" .Alerts.Firing }}
{{ end }}
{{ if gt (len .Alerts.Resolved) 0 }}
# Alerts Resolved:
{{ template "__text_alert_list_markdown" .Alerts.Resolved }}
{{ end }}
{{ end }}
{{ define "telegram.default.message" }}
{{ if gt (len .Alerts.Firing) 0 }}
Alerts Firing:
{{ template "__text_alert_list" .Alerts.Firing }}
{{ end }}
{{ if gt (len .Alerts.Resolved) 0 }}
Alerts Resolved:
{{ template "__text_alert_list" .Alerts.Resolved }}
{{ end }}
{{ end }}
{{ define "discord.default.title" }}{{ template "__subject" . }}{{ end }}
{{ define "discord.default.message" }}
{{ if gt (len .Alerts.Firing) 0 }}
Alerts Firing:
{{ template "__text_alert_list" .Alerts.Firing }}
{{ end }}
{{ if gt (len .Alerts.Resolved) 0 }}
Alerts Resolved:
{{ template "__text_alert_list" .Alerts.Resolved }}
{{ end }}
{{ end }}
"""


def build_templates(files: Sequence[str] = ()) -> Template:
    """The default templates plus the user's template files (later definitions win).

    Raises `TemplateError` (naming the file and line) when a file does not parse.
    """
    t = Template()
    t.parse("__default__", DEFAULT_TEMPLATES)
    for path in files:
        with open(path, encoding="utf-8") as f:
            t.parse(path, f.read())
    return t


def expand(t: Template, text: str, data: Any) -> str:
    """Render a config field's template text (plain text passes through fast)."""
    if "{{" not in text:
        return text
    return t.render(text, data)
