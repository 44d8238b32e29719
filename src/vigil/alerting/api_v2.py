"""Alertmanager API v2 routes (the subset amtool and Prometheus use).

`create_alertmanager_routes(am)` returns Starlette routes to mount at the
server root: ``/api/v2/alerts``, ``/api/v2/alerts/groups``, ``/api/v2/silences``,
``/api/v2/silence/{id}``, ``/api/v2/receivers``, ``/api/v2/status``. Errors
answer 400 with a text message naming what is wrong, as Alertmanager does.

Vigil extensions (docs/alerting.md): ``POST/DELETE /api/v2/alerts/{fp}/ack``,
``GET /api/v2/history``, ``GET /api/v2/stats``, and an ``acknowledged`` field
on alerts.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vigil.alerting.alert import Alert, format_time, parse_time
from vigil.alerting.alertmanager import VERSION, Alertmanager, AlertValidationError
from vigil.alerting.history import KINDS
from vigil.alerting.matcher_parse import MatcherParseError, parse_matchers
from vigil.alerting.silence import Silence, SilenceError, SilenceNotFound
from vigil.model.matchers import InvalidRegexError, Matcher, MatchType, matches_all


def _json(doc: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(doc), status_code=status, media_type="application/json")


def _bad(msg: str, status: int = 400) -> Response:
    return _json(msg, status)


def _bool_param(req: Request, name: str, default: bool) -> bool:
    v = req.query_params.get(name)
    if v is None:
        return default
    return v.lower() in ("true", "1", "yes")


def _filters(req: Request) -> list[Matcher]:
    out: list[Matcher] = []
    for f in req.query_params.getlist("filter"):
        out.extend(parse_matchers(f))
    return out


def silence_json(s: Silence, now: float) -> dict[str, Any]:
    return {
        "id": s.id,
        "status": {"state": s.state(now)},
        "updatedAt": format_time(s.updated_at),
        "comment": s.comment,
        "createdBy": s.created_by,
        "endsAt": format_time(s.ends_at),
        "matchers": [
            {
                "name": m.name,
                "value": m.value,
                "isRegex": m.is_regex(),
                "isEqual": m.type in (MatchType.EQUAL, MatchType.REGEX),
            }
            for m in s.matchers
        ],
        "startsAt": format_time(s.starts_at),
    }


def create_alertmanager_routes(am: Alertmanager) -> list[Route]:
    """The API v2 routes bound to `am`."""

    def alert_json(a: Alert) -> dict[str, Any]:
        return {
            "annotations": dict(a.annotations),
            "endsAt": format_time(a.ends_at),
            "fingerprint": a.fingerprint,
            "receivers": [{"name": n} for n in am.dispatcher.receivers_for(a.labels)],
            "startsAt": format_time(a.starts_at),
            "status": am.status_of(a),
            "updatedAt": format_time(a.updated_at),
            "generatorURL": a.generator_url,
            "labels": dict(a.labels),
            **ack_field(a),
        }

    def ack_field(a: Alert) -> dict[str, Any]:
        # Vigil extension; Alertmanager clients ignore fields they don't know.
        ack = am.acks.get(a)
        return {"acknowledged": ack.api_json()} if ack else {}

    def select(req: Request, alerts: list[Alert]) -> list[Alert]:
        matchers = _filters(req)
        want_active = _bool_param(req, "active", True)
        want_silenced = _bool_param(req, "silenced", True)
        want_inhibited = _bool_param(req, "inhibited", True)
        receiver = req.query_params.get("receiver")
        rx = None
        if receiver:
            rx = Matcher(MatchType.REGEX, "receiver", receiver)
        now = am.now()
        out = []
        for a in alerts:
            if a.resolved(now) or not matches_all(matchers, a.labels):
                continue
            if rx is not None and not any(
                rx.matches(r) for r in am.dispatcher.receivers_for(a.labels)
            ):
                continue
            st = am.status_of(a)
            if not want_silenced and st["silencedBy"]:
                continue
            if not want_inhibited and st["inhibitedBy"]:
                continue
            if not want_active and st["state"] == "active":
                continue
            out.append(a)
        return sorted(out, key=lambda a: a.fingerprint)

    async def get_alerts(req: Request) -> Response:
        try:
            alerts = select(req, am.alerts.list())
        except (MatcherParseError, InvalidRegexError) as exc:
            return _bad(f"bad filter: {exc}")
        return _json([alert_json(a) for a in alerts])

    async def post_alerts(req: Request) -> Response:
        try:
            doc = orjson.loads(await req.body())
        except orjson.JSONDecodeError as exc:
            return _bad(f"invalid JSON body: {exc}")
        try:
            am.put_postable(doc)
        except AlertValidationError as exc:
            return _bad(str(exc))
        return Response(status_code=200)

    async def get_groups(req: Request) -> Response:
        try:
            matchers = _filters(req)
            allowed = {id(a) for a in select(req, am.alerts.list())}
        except (MatcherParseError, InvalidRegexError) as exc:
            return _bad(f"bad filter: {exc}")
        receiver = req.query_params.get("receiver")
        rx = Matcher(MatchType.REGEX, "receiver", receiver) if receiver else None
        out = []
        current = {a.fp: a for a in am.alerts.list()}
        for g in am.dispatcher.groups():
            if rx is not None and not rx.matches(g.route.opts.receiver):
                continue
            alerts = [current.get(fp, a) for fp, a in g.alerts.items()]
            alerts = [a for a in alerts if id(a) in allowed and matches_all(matchers, a.labels)]
            if not alerts:
                continue
            out.append(
                {
                    "labels": dict(g.labels),
                    "receiver": {"name": g.route.opts.receiver},
                    "alerts": [alert_json(a) for a in sorted(alerts, key=lambda a: a.fingerprint)],
                }
            )
        return _json(out)

    async def get_silences(req: Request) -> Response:
        try:
            matchers = _filters(req)
        except (MatcherParseError, InvalidRegexError) as exc:
            return _bad(f"bad filter: {exc}")
        now = am.now()
        out = []
        for s in am.silences.list():
            # A filter selects silences whose own matchers include an equal one.
            if matchers and not all(
                any(m == sm for sm in s.matchers) or _filter_hits(m, s) for m in matchers
            ):
                continue
            out.append(s)
        order = {"active": 0, "pending": 1, "expired": 2}

        def key(s: Silence) -> tuple[int, float]:
            st = s.state(now)
            if st == "active":
                return (0, s.ends_at)
            if st == "pending":
                return (1, s.starts_at)
            return (order[st], -s.ends_at)

        return _json([silence_json(s, now) for s in sorted(out, key=key)])

    async def post_silences(req: Request) -> Response:
        try:
            doc = orjson.loads(await req.body())
        except orjson.JSONDecodeError as exc:
            return _bad(f"invalid JSON body: {exc}")
        try:
            s = _parse_silence(doc)
            sid = am.silences.set(s)
        except SilenceNotFound:
            return _bad(f"silence {doc.get('id')} not found", 404)
        except (SilenceError, ValueError, TypeError, KeyError) as exc:
            return _bad(str(exc).strip("'\""))
        return _json({"silenceID": sid})

    async def get_silence(req: Request) -> Response:
        try:
            s = am.silences.get(req.path_params["sid"])
        except SilenceNotFound:
            return Response(status_code=404)
        return _json(silence_json(s, am.now()))

    async def delete_silence(req: Request) -> Response:
        try:
            am.silences.expire(req.path_params["sid"])
        except SilenceNotFound:
            return Response(status_code=404)
        except SilenceError as exc:
            return _bad(str(exc))
        return Response(status_code=200)

    async def get_receivers(req: Request) -> Response:
        return _json([{"name": r.name} for r in am.config.receivers])

    async def get_status(req: Request) -> Response:
        return _json(
            {
                "cluster": {"status": "disabled", "peers": []},
                "config": {"original": am.config.original},
                "uptime": format_time(am.started_at),
                "versionInfo": {
                    "branch": "main",
                    "buildDate": "",
                    "buildUser": "vigil",
                    "goVersion": "python",
                    "revision": "",
                    "version": VERSION,
                },
            }
        )

    async def post_ack(req: Request) -> Response:
        fp = req.path_params["fp"]
        try:
            doc = orjson.loads(await req.body() or b"{}")
            if not isinstance(doc, dict):
                raise ValueError("body must be a JSON object")
            by = doc.get("by") or doc.get("createdBy") or ""
            expires = doc.get("expiresAt")
            ack = am.acknowledge(
                fp,
                str(by),
                str(doc.get("comment") or ""),
                parse_time(str(expires)) if expires else 0.0,
            )
        except KeyError:
            return _bad(f"alert {fp} not found", 404)
        except (orjson.JSONDecodeError, ValueError) as exc:
            return _bad(str(exc))
        return _json({"fingerprint": fp, **ack.api_json()})

    async def delete_ack(req: Request) -> Response:
        if not am.unacknowledge(req.path_params["fp"], req.query_params.get("by", "")):
            return Response(status_code=404)
        return Response(status_code=200)

    async def get_history(req: Request) -> Response:
        q = req.query_params
        try:
            start = _time_param(q.get("start"))
            end = _time_param(q.get("end"))
            matchers = _filters(req)
            limit = int(q.get("limit") or 1000)
        except (MatcherParseError, InvalidRegexError, ValueError) as exc:
            return _bad(f"bad parameter: {exc}")
        kinds = q.getlist("kind")
        unknown = [k for k in kinds if k not in KINDS]
        if unknown:
            return _bad(f"unknown kind {unknown[0]!r}; one of {', '.join(KINDS)}")
        events = am.history.query(start, end, matchers, kinds, q.get("ref", ""), limit)
        return _json([e.api_json() for e in events])

    async def get_stats(req: Request) -> Response:
        return _json(alert_stats(am))

    return [
        Route("/api/v2/alerts", get_alerts, methods=["GET"]),
        Route("/api/v2/alerts/{fp}/ack", post_ack, methods=["POST"]),
        Route("/api/v2/alerts/{fp}/ack", delete_ack, methods=["DELETE"]),
        Route("/api/v2/history", get_history, methods=["GET"]),
        Route("/api/v2/stats", get_stats, methods=["GET"]),
        Route("/api/v2/alerts", post_alerts, methods=["POST"]),
        Route("/api/v2/alerts/groups", get_groups, methods=["GET"]),
        Route("/api/v2/silences", get_silences, methods=["GET"]),
        Route("/api/v2/silences", post_silences, methods=["POST"]),
        Route("/api/v2/silence/{sid}", get_silence, methods=["GET"]),
        Route("/api/v2/silence/{sid}", delete_silence, methods=["DELETE"]),
        Route("/api/v2/receivers", get_receivers, methods=["GET"]),
        Route("/api/v2/status", get_status, methods=["GET"]),
    ]


def _time_param(v: str | None) -> float | None:
    """RFC3339 or Unix seconds (as Prometheus's API accepts); None when absent."""
    if not v:
        return None
    try:
        return float(v)
    except ValueError:
        return parse_time(v)


def alert_stats(am: Alertmanager) -> dict[str, Any]:
    """``GET /api/v2/stats``: alerts by severity and state, notifications per integration.

    Notification counts come from the history, so they survive restarts (within
    the history's retention)."""
    now = am.now()
    by_state: dict[str, int] = {"active": 0, "suppressed": 0, "resolved": 0}
    by_sev: dict[str, dict[str, int]] = {}
    acked = 0
    for a in am.alerts.list():
        st = "resolved" if a.resolved(now) else am.status_of(a)["state"]
        by_state[st] += 1
        sev = a.labels.get("severity") or "none"
        row = by_sev.setdefault(sev, {"active": 0, "suppressed": 0, "resolved": 0})
        row[st] += 1
        if st != "resolved" and am.acks.get(a):
            acked += 1
    per: dict[tuple[str, str], dict[str, Any]] = {}
    for e in am.history.query(kinds=["notification"]):
        d = e.details
        row2 = per.setdefault(
            (str(d.get("receiver")), str(d.get("integration"))),
            {"sent": 0, "failed": 0, "lastError": "", "lastErrorAt": None},
        )
        if d.get("success"):
            row2["sent"] += 1
        else:
            row2["failed"] += 1
            row2["lastError"] = d.get("error", "")
            row2["lastErrorAt"] = format_time(e.time)
    notifications = []
    for (rcv, integ), row2 in sorted(per.items()):
        total = row2["sent"] + row2["failed"]
        notifications.append(
            {"receiver": rcv, "integration": integ, **row2, "successRate": row2["sent"] / total}
        )
    sent = sum(n["sent"] for n in notifications)
    failed = sum(n["failed"] for n in notifications)
    return {
        "alerts": {
            "total": sum(by_state.values()),
            "byState": by_state,
            "acknowledged": acked,
            "bySeverity": dict(sorted(by_sev.items())),
        },
        "notifications": {
            "sent": sent,
            "failed": failed,
            "successRate": sent / (sent + failed) if sent + failed else None,
            "byIntegration": notifications,
        },
    }


def _filter_hits(m: Matcher, s: Silence) -> bool:
    # Alertmanager filters silences by testing the filter against each silence
    # matcher's name/value as a label set.
    return any(sm.name == m.name and m.matches(sm.value) for sm in s.matchers)


def _parse_silence(doc: Any) -> Silence:
    if not isinstance(doc, dict):
        raise ValueError("silence must be a JSON object")
    for f in ("matchers", "startsAt", "endsAt", "createdBy", "comment"):
        if f not in doc:
            raise ValueError(f"{f} in body is required")
    ms = []
    for i, m in enumerate(doc["matchers"] or []):
        if not isinstance(m, dict) or "name" not in m or "value" not in m:
            raise ValueError(f"matchers.{i}: name and value are required")
        is_regex = bool(m.get("isRegex", False))
        is_equal = bool(m.get("isEqual", True))
        mt = {
            (False, True): MatchType.EQUAL,
            (False, False): MatchType.NOT_EQUAL,
            (True, True): MatchType.REGEX,
            (True, False): MatchType.NOT_REGEX,
        }[(is_regex, is_equal)]
        try:
            ms.append(Matcher(mt, str(m["name"]), str(m["value"])))
        except InvalidRegexError as exc:
            raise ValueError(f"matchers.{i}: {exc}") from None
    try:
        starts, ends = parse_time(str(doc["startsAt"])), parse_time(str(doc["endsAt"]))
    except ValueError as exc:
        raise ValueError(f"invalid time: {exc}") from None
    return Silence(
        id=str(doc.get("id") or ""),
        matchers=tuple(ms),
        starts_at=starts,
        ends_at=ends,
        created_by=str(doc["createdBy"]),
        comment=str(doc["comment"]),
    )
