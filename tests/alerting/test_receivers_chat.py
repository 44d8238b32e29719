"""MS Teams, Discord, Telegram and Opsgenie payloads, sent to a real HTTP sink.

Field names, types and URLs follow Alertmanager 0.27's notifiers (notify/msteams,
notify/discord, notify/telegram via telebot v3, notify/opsgenie).
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from vigil.alerting.alert import Alert
from vigil.model.labels import Labels

from .test_receivers_templates import ALERTS, CTX, NOW, notifier

FIRING = ALERTS  # one firing, one resolved: the group is firing
RESOLVED = [Alert(a.labels, a.annotations, a.starts_at, NOW - 1, a.generator_url) for a in ALERTS]
SUBJECT = "[FIRING:1] Disk (critical)"


def _one(sink: Any) -> dict[str, Any]:
    (req,) = sink.requests
    assert req["method"] == "POST"
    assert req["headers"]["Content-Type"] == "application/json"
    assert req["headers"]["User-Agent"].startswith("Alertmanager/")
    return req  # type: ignore[no-any-return]


def test_msteams_message_card(sink: Any) -> None:
    n = notifier(
        f"  msteams_configs: [{{webhook_url: '{sink.url}/teams/hook'}}]\n", "msteams_configs"
    )
    assert n.send_resolved is True
    asyncio.run(n.notify(CTX, FIRING))
    req = _one(sink)
    assert req["path"] == "/teams/hook"
    body = req["body"]
    assert set(body) == {"@context", "type", "title", "summary", "text", "themeColor"}
    assert body["@context"] == "http://schema.org/extensions" and body["type"] == "MessageCard"
    assert body["title"] == body["summary"] == SUBJECT
    assert "# Alerts Firing:" in body["text"] and "disk full" in body["text"]
    assert body["themeColor"] == "8C1A1A"
    asyncio.run(n.notify(CTX, RESOLVED))
    assert sink.bodies[1]["themeColor"] == "2DC72D"
    assert sink.bodies[1]["title"] == "[RESOLVED] Disk (critical)"


def test_discord_embeds(sink: Any, tmp_path: Any) -> None:
    url_file = tmp_path / "url"
    url_file.write_text(f"{sink.url}/api/webhooks/1/tok\n")
    n = notifier(
        f"  discord_configs: [{{webhook_url_file: '{url_file}', title: '{'x' * 300}'}}]\n",
        "discord_configs",
    )
    asyncio.run(n.notify(CTX, FIRING))
    req = _one(sink)
    assert req["path"] == "/api/webhooks/1/tok"
    body = req["body"]
    assert set(body) == {"content", "embeds"} and body["content"] == ""
    (embed,) = body["embeds"]
    assert set(embed) == {"title", "description", "color"}
    assert embed["title"] == "x" * 255 + "…"  # truncated to 256 runes
    assert "Alerts Firing:" in embed["description"] and embed["color"] == 0x992D22
    asyncio.run(n.notify(CTX, RESOLVED))
    assert sink.bodies[1]["embeds"][0]["color"] == 0x2ECC71


def test_telegram_send_message(sink: Any) -> None:
    n = notifier(
        f"  telegram_configs: [{{api_url: '{sink.url}', bot_token: '123:abc', chat_id: -1001,"
        " disable_notifications: true}]\n",
        "telegram_configs",
    )
    asyncio.run(n.notify(CTX, FIRING))
    req = _one(sink)
    assert req["path"] == "/bot123:abc/sendMessage"
    body = req["body"]
    # telebot sends every parameter as a string.
    assert body == {
        "chat_id": "-1001",
        "text": body["text"],
        "parse_mode": "HTML",
        "disable_web_page_preview": "true",
        "disable_notification": "true",
    }
    assert "Alerts Firing:" in body["text"] and "alertname = Disk" in body["text"]


def test_opsgenie_create_and_close(sink: Any) -> None:
    n = notifier(
        "  opsgenie_configs:\n"
        f"  - api_key: k3y\n    api_url: '{sink.url}/'\n"
        "    priority: '{{ if eq .CommonLabels.severity \"critical\" }}P1{{ else }}P3{{ end }}'\n"
        "    tags: 'disk,{{ .CommonLabels.severity }},'\n"
        "    actions: 'restart'\n"
        "    details: {severity: overridden, runbook: 'http://rb/{{ .GroupLabels.alertname }}'}\n"
        "    responders:\n"
        "    - {name: ops, type: team}\n"
        "    - {id: '{{ .CommonLabels.missing }}', type: '{{ .CommonLabels.missing }}'}\n"
        "    - {name: 'a,b', type: teams}\n"
        "    - {username: bob@example.com, type: user}\n",
        "opsgenie_configs",
    )
    asyncio.run(n.notify(CTX, FIRING))
    req = _one(sink)
    alias = hashlib.sha256(CTX.group_key.encode()).hexdigest()
    assert req["path"] == "/v2/alerts"
    assert req["headers"]["Authorization"] == "GenieKey k3y"
    body = req["body"]
    assert body["alias"] == alias and body["message"] == SUBJECT
    assert body["description"].startswith("disk full\nAlerts Firing:")
    assert "Alerts Resolved:" in body["description"]
    assert body["details"] == {
        "alertname": "Disk",
        "severity": "overridden",
        "runbook": "http://rb/Disk",
    }
    assert body["source"] == "http://am:9093/#/alerts?receiver=team"
    assert body["priority"] == "P1" and body["tags"] == ["disk", "critical"]
    assert body["actions"] == ["restart"]
    assert body["responders"] == [
        {"name": "ops", "type": "team"},
        {"name": "a", "type": "team"},
        {"name": "b", "type": "team"},
        {"username": "bob@example.com", "type": "user"},
    ]
    assert "note" not in body and "entity" not in body

    asyncio.run(n.notify(CTX, RESOLVED))
    close = sink.requests[1]
    assert close["method"] == "POST"
    assert close["path"] == f"/v2/alerts/{alias}/close?identifierType=alias"
    assert close["headers"]["Authorization"] == "GenieKey k3y"
    assert close["body"] == {"source": "http://am:9093/#/alerts?receiver=team"}


def test_opsgenie_update_alerts(sink: Any) -> None:
    n = notifier(
        f"  opsgenie_configs: [{{api_key: k, api_url: '{sink.url}', update_alerts: true}}]\n",
        "opsgenie_configs",
    )
    asyncio.run(n.notify(CTX, FIRING))
    alias = hashlib.sha256(CTX.group_key.encode()).hexdigest()
    got = [(r["method"], r["path"]) for r in sink.requests]
    assert got == [
        ("POST", "/v2/alerts"),
        ("PUT", f"/v2/alerts/{alias}/message?identifierType=alias"),
        ("PUT", f"/v2/alerts/{alias}/description?identifierType=alias"),
    ]
    assert sink.bodies[1] == {"message": SUBJECT}
    assert sink.bodies[2]["description"].startswith("disk full")


def test_group_labels_kept_in_common(sink: Any) -> None:
    # Opsgenie details hold common labels even without configured details.
    n = notifier(
        f"  opsgenie_configs: [{{api_key: k, api_url: '{sink.url}'}}]\n", "opsgenie_configs"
    )
    two = [
        ALERTS[0],
        Alert(Labels.from_dict({"alertname": "Disk", "instance": "c"}), Labels(), NOW - 5, 0.0),
    ]
    asyncio.run(n.notify(CTX, two))
    assert sink.bodies[0]["details"] == {"alertname": "Disk"}
