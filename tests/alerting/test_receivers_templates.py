"""Go templates, Slack/PagerDuty payloads over a real HTTP sink, e-mail over a real SMTP server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from vigil.alerting.alert import Alert
from vigil.alerting.config import load_config
from vigil.alerting.receivers import build_notifier
from vigil.alerting.receivers.base import NotifyContext, NotifyError
from vigil.alerting.templates import build_templates
from vigil.gotemplate import Template, TemplateError
from vigil.model.labels import Labels

NOW = 1_700_000_000.0
ALERTS = [
    Alert(
        Labels.from_dict({"alertname": "Disk", "severity": "critical", "instance": "a"}),
        Labels.from_dict({"summary": "disk full"}),
        NOW - 60,
        0.0,
        "http://prom/graph",
    ),
    Alert(
        Labels.from_dict({"alertname": "Disk", "severity": "critical", "instance": "b"}),
        Labels.from_dict({"summary": "disk full"}),
        NOW - 60,
        NOW - 1,
    ),
]
CTX = NotifyContext("team", '{}:{alertname="Disk"}', Labels.from_dict({"alertname": "Disk"}), NOW)


@pytest.mark.parametrize(
    ("src", "data", "out"),
    [
        ("{{ .A }}-{{ .B.C }}", {"A": 1, "B": {"C": "x"}}, "1-x"),
        ("{{ if and .A (not .B) }}y{{ else }}n{{ end }}", {"A": 1, "B": 0}, "y"),
        ("{{ range $i, $e := .L }}{{ $i }}{{ $e }}{{ else }}none{{ end }}", {"L": []}, "none"),
        ("{{- range .L -}} [{{ . }}] {{- end }}", {"L": ["a", "b"]}, "[a][b]"),
        ('{{ .L | join ", " | toUpper }}', {"L": ["a", "b"]}, "A, B"),
        ('{{ printf "%s=%d %.1f%%" "x" 3 2.25 }}', {}, "x=3 2.2%"),
        ('{{ define "t" }}<{{ . }}>{{ end }}{{ template "t" .X }}', {"X": "v"}, "<v>"),
        ("{{ with .Missing }}a{{ else }}b{{ end }}{{ .Missing }}", {}, "b<no value>"),
        (
            '{{ reReplaceAll "(a+)" "<$1>" "baaab" }} {{ title "hello world" }}',
            {},
            "b<aaa>b Hello World",
        ),
        (
            '{{ len .M }} {{ index .M "k" }} {{ eq .S "x" "y" }}',
            {"M": {"k": "v"}, "S": "y"},
            "1 v true",
        ),
        (
            "{{/* comment */}}{{ $x := 1 }}{{ $x = 2 }}{{ $x }} {{ 1.5 }} {{ 1e21 }}",
            {},
            "2 1.5 1e+21",
        ),
    ],
)
def test_gotemplate(src: str, data: Any, out: str) -> None:
    assert Template().render(src, data) == out


@pytest.mark.parametrize(
    "src", ["{{ if .A }}", "{{ end }}", "{{ nofunc 1 }}", "{{ .A", '{{ template "nope" }}']
)
def test_gotemplate_errors(src: str) -> None:
    with pytest.raises(TemplateError):
        Template().render(src, {"A": 1})


def notifier(yaml_receiver: str, kind: str) -> Any:
    cfg = load_config(f"route: {{receiver: r}}\nreceivers:\n- name: r\n{yaml_receiver}")
    k, c = cfg.receivers[0].integrations[0]
    assert k == kind
    return build_notifier(k, c, build_templates(), "http://am:9093")


def test_slack_default_payload(sink: Any) -> None:
    n = notifier(
        f"  slack_configs: [{{api_url: '{sink.url}/slack', channel: '#ops'}}]\n", "slack_configs"
    )
    assert n.send_resolved is False
    asyncio.run(n.notify(CTX, ALERTS))
    body = sink.bodies[0]
    att = body["attachments"][0]
    assert body["channel"] == "#ops" and body["username"] == "Alertmanager"
    assert att["title"] == "[FIRING:1] Disk (critical)"
    assert att["title_link"] == "http://am:9093/#/alerts?receiver=team"
    assert att["color"] == "danger" and att["mrkdwn_in"] == ["fallback", "pretext", "text"]
    assert att["fallback"] == "[FIRING:1] Disk (critical) | http://am:9093/#/alerts?receiver=team"


def test_pagerduty_v2_payload(sink: Any) -> None:
    n = notifier(
        f"  pagerduty_configs: [{{routing_key: k1, url: '{sink.url}/pd'}}]\n", "pagerduty_configs"
    )
    asyncio.run(n.notify(CTX, ALERTS))
    body = sink.bodies[0]
    assert body["routing_key"] == "k1" and body["event_action"] == "trigger"
    assert body["payload"]["summary"] == "[FIRING:1] Disk (critical)"
    assert body["payload"]["custom_details"]["num_firing"] == "1"
    assert len(body["dedup_key"]) == 64


def test_http_errors_classified(sink: Any) -> None:
    n = notifier(f"  webhook_configs: [{{url: '{sink.url}/x'}}]\n", "webhook_configs")
    sink.status_after_fail = 400
    with pytest.raises(NotifyError) as ei:
        asyncio.run(n.notify(CTX, ALERTS))
    assert ei.value.retry is False and "400" in str(ei.value)
    dead = notifier("  webhook_configs: [{url: 'http://127.0.0.1:9/'}]\n", "webhook_configs")
    with pytest.raises(NotifyError) as ei:
        asyncio.run(dead.notify(CTX, ALERTS))
    assert ei.value.retry is True


class _Collect:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        return "250 OK"


def test_email_over_real_smtp(port: int) -> None:
    handler = _Collect()
    ctl = Controller(handler, hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        rcv = (
            "  email_configs:\n"
            f"  - {{to: 'ops@example.com', from: 'am@example.com', smarthost: '127.0.0.1:{port}',"
            " require_tls: false, headers: {Subject: 'Alert {{ .GroupLabels.alertname }}'}}\n"
        )
        n = notifier(rcv, "email_configs")
        asyncio.run(n.notify(CTX, ALERTS))
        env = handler.messages[0]
        assert env.rcpt_tos == ["ops@example.com"] and env.mail_from == "am@example.com"
        text = env.content.decode()
        assert "Subject: Alert Disk" in text and "disk full" in text
        # The default require_tls: true refuses a server without STARTTLS.
        strict = notifier(rcv.replace(" require_tls: false,", ""), "email_configs")
        with pytest.raises(NotifyError, match="STARTTLS"):
            asyncio.run(strict.notify(CTX, ALERTS))
    finally:
        ctl.stop()
