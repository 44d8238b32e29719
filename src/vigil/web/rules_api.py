"""``GET /api/v1/rules`` and ``GET /api/v1/alerts``, shaped as Prometheus serves them.

Only needs the rule manager's read side: ``groups()`` (objects with name, file,
interval_ms, limit, rules, last_evaluation_ms, evaluation_time_s) and each rule's
attributes. Filters: ``type=alert|record``, ``rule_name[]``, ``rule_group[]``,
``file[]``, ``exclude_alerts``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vigil.rules.alerting import Alert, AlertingRule
from vigil.rules.manager import rfc3339
from vigil.rules.templates import format_float_e

from .params import bad_data
from .responses import api_endpoint, api_success, request_params


def alert_json(a: Alert) -> dict[str, Any]:
    out: dict[str, Any] = {
        "labels": a.labels.to_dict(),
        "annotations": dict(a.annotations),
        "state": a.state,
        "activeAt": rfc3339(a.active_at),
    }
    if a.keep_firing_since is not None:
        out["keepFiringSince"] = rfc3339(a.keep_firing_since)
    out["value"] = format_float_e(a.value)
    return out


def rule_json(rule: Any, with_alerts: bool = True) -> dict[str, Any]:
    common = {
        "health": rule.health,
        "evaluationTime": rule.evaluation_time_s,
        "lastEvaluation": rfc3339(rule.last_evaluation_ms),
    }
    if isinstance(rule, AlertingRule):
        alerts = rule.snapshot()
        out: dict[str, Any] = {
            "state": rule.state(),
            "name": rule.name,
            "query": rule.query_text,
            "duration": rule.for_ms / 1000.0,
            "keepFiringFor": rule.keep_firing_for_ms / 1000.0,
            "labels": dict(rule.labels),
            "annotations": dict(rule.annotations),
            "alerts": [alert_json(a) for a in alerts] if with_alerts else [],
            **common,
            "type": "alerting",
        }
    else:
        out = {"name": rule.name, "query": rule.query_text}
        if rule.labels:
            out["labels"] = dict(rule.labels)
        out.update(common)
        out["type"] = "recording"
    if rule.last_error:
        out["lastError"] = rule.last_error
    return out


def rules_data(
    manager: Any,
    *,
    rule_type: str = "",
    names: list[str] | None = None,
    groups: list[str] | None = None,
    files: list[str] | None = None,
    exclude_alerts: bool = False,
) -> dict[str, Any]:
    """The ``data`` of ``/api/v1/rules``."""
    want_alert = rule_type in ("", "alert")
    want_record = rule_type in ("", "record")
    filtered = bool(rule_type or names or groups or files)
    out = []
    for g in manager.groups():
        if groups and g.name not in groups:
            continue
        if files and g.file not in files:
            continue
        rules = []
        for r in g.rules:
            is_alert = isinstance(r, AlertingRule)
            if (is_alert and not want_alert) or (not is_alert and not want_record):
                continue
            if names and r.name not in names:
                continue
            rules.append(rule_json(r, not exclude_alerts))
        if filtered and not rules:
            continue
        out.append(
            {
                "name": g.name,
                "file": g.file,
                "rules": rules,
                "interval": g.interval_ms / 1000.0,
                "limit": g.limit,
                "evaluationTime": g.evaluation_time_s,
                "lastEvaluation": rfc3339(g.last_evaluation_ms),
            }
        )
    return {"groups": out}


def alerts_data(manager: Any) -> dict[str, Any]:
    """The ``data`` of ``/api/v1/alerts``: every pending and firing alert."""
    return {"alerts": [alert_json(a) for _, a in manager.active_alerts()]}


def create_rules_routes(manager: Any) -> list[Route]:
    """Starlette routes for the rules and alerts endpoints over `manager`."""

    @api_endpoint
    async def rules(request: Request) -> Response:
        p = await request_params(request)
        rule_type = p.get("type").lower()
        if rule_type not in ("", "alert", "record"):
            raise bad_data(f'not supported value "{p.get("type")}"')
        exclude = p.get("exclude_alerts").lower()
        if exclude not in ("", "true", "false", "1", "0"):
            raise bad_data(f'parse exclude_alerts: strconv.ParseBool: parsing "{exclude}"')
        return api_success(
            rules_data(
                manager,
                rule_type=rule_type,
                names=p.getlist("rule_name[]"),
                groups=p.getlist("rule_group[]"),
                files=p.getlist("file[]"),
                exclude_alerts=exclude in ("true", "1"),
            )
        )

    @api_endpoint
    async def alerts(request: Request) -> Response:
        return api_success(alerts_data(manager))

    return [
        Route("/api/v1/rules", rules, methods=["GET", "POST"]),
        Route("/api/v1/alerts", alerts, methods=["GET", "POST"]),
    ]
