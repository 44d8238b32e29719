"""Alertmanager's configuration file: YAML -> validated, frozen objects.

`load_config(text, filename)` accepts what Alertmanager 0.25+ accepts (``global``,
``route``, ``inhibit_rules``, ``receivers``, ``templates``, ``time_intervals``
and legacy ``mute_time_intervals``) and raises `ConfigError` listing every
problem with file:line:column. Durations are stored in seconds (float).
"""

from __future__ import annotations

import dataclasses
import glob
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from vigil.alerting import receiver_config as rc
from vigil.alerting.matcher_parse import MatcherParseError, parse_matcher
from vigil.alerting.timeintervals import TimeInterval, TimeIntervalError, parse_time_interval
from vigil.alerting.yamlpos import Path as YPath
from vigil.alerting.yamlpos import Problems, load_located
from vigil.config.loader import ConfigError, ConfigProblem
from vigil.config.types import Duration
from vigil.model.labels import LABEL_NAME_RE
from vigil.model.matchers import InvalidRegexError, Matcher, MatchType

__all__ = [
    "AlertmanagerConfig",
    "ConfigError",
    "GlobalConfig",
    "InhibitRuleConfig",
    "ReceiverConfig",
    "RouteConfig",
    "load_config",
    "load_config_file",
]

DEFAULT_GROUP_WAIT = 30.0
DEFAULT_GROUP_INTERVAL = 300.0
DEFAULT_REPEAT_INTERVAL = 4 * 3600.0


@dataclass(frozen=True)
class GlobalConfig:
    resolve_timeout: float = 300.0
    smtp_from: str = ""
    smtp_hello: str = "localhost"
    smtp_smarthost: str = ""
    smtp_auth_username: str = ""
    smtp_auth_password: str = ""
    smtp_auth_password_file: str = ""
    smtp_auth_secret: str = ""
    smtp_auth_identity: str = ""
    smtp_require_tls: bool = True
    slack_api_url: str = ""
    slack_api_url_file: str = ""
    pagerduty_url: str = "https://events.pagerduty.com/v2/enqueue"
    opsgenie_api_url: str = "https://api.opsgenie.com/"
    opsgenie_api_key: str = ""
    opsgenie_api_key_file: str = ""
    telegram_api_url: str = "https://api.telegram.org"
    webex_api_url: str = "https://webexapis.com/v1/messages"
    wechat_api_url: str = "https://qyapi.weixin.qq.com/cgi-bin/"
    wechat_api_secret: str = ""
    wechat_api_corp_id: str = ""
    victorops_api_url: str = "https://alert.victorops.com/integrations/generic/20131114/alert/"
    victorops_api_key: str = ""
    victorops_api_key_file: str = ""
    http_config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RouteConfig:
    """One route node as written. ``None`` fields inherit from the parent."""

    receiver: str | None = None
    group_by: tuple[str, ...] | None = None
    matchers: tuple[Matcher, ...] = ()
    continue_: bool = False
    group_wait: float | None = None
    group_interval: float | None = None
    repeat_interval: float | None = None
    mute_time_intervals: tuple[str, ...] = ()
    active_time_intervals: tuple[str, ...] = ()
    routes: tuple[RouteConfig, ...] = ()


@dataclass(frozen=True)
class InhibitRuleConfig:
    source_matchers: tuple[Matcher, ...]
    target_matchers: tuple[Matcher, ...]
    equal: tuple[str, ...]


@dataclass(frozen=True)
class ReceiverConfig:
    """A named receiver: its integrations as ``(yaml list key, typed config)`` pairs."""

    name: str
    integrations: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class AlertmanagerConfig:
    """A validated configuration; `original` is the YAML text it came from."""

    global_: GlobalConfig
    route: RouteConfig
    receivers: tuple[ReceiverConfig, ...]
    inhibit_rules: tuple[InhibitRuleConfig, ...] = ()
    time_intervals: dict[str, tuple[TimeInterval, ...]] = field(default_factory=dict)
    templates: tuple[str, ...] = ()
    template_files: tuple[str, ...] = ()
    original: str = ""
    warnings: tuple[str, ...] = ()

    def receiver(self, name: str) -> ReceiverConfig | None:
        return next((r for r in self.receivers if r.name == name), None)


class _Parser:
    def __init__(self, problems: Problems, base_dir: Path, strict: bool = True) -> None:
        self.p = problems
        self.base_dir = base_dir
        self.strict = strict
        self.warnings: list[str] = []

    def unknown(self, path: YPath, message: str) -> None:
        """Unknown keys are errors (as in Alertmanager) unless loading leniently."""
        if self.strict:
            self.p.add(path, message)
        else:
            p = Problems(self.p.filename, self.p.marks)
            p.add(path, message + " (ignored)")
            self.warnings.append(str(p.items[0]))

    # -- scalars ---------------------------------------------------------
    def duration(self, v: Any, path: YPath) -> float | None:
        if v is None:
            return None
        try:
            return Duration.parse(str(v)).seconds
        except ValueError as exc:
            self.p.add(path, str(exc))
            return None

    def str_(self, v: Any, path: YPath) -> str:
        if v is None:
            return ""
        if isinstance(v, dict | list):
            self.p.add(path, "expected a string")
            return ""
        return str(v)

    def bool_(self, v: Any, path: YPath) -> bool:
        if not isinstance(v, bool):
            self.p.add(path, f"expected true or false, got {v!r}")
            return False
        return v

    def str_list(self, v: Any, path: YPath) -> tuple[str, ...]:
        if v is None:
            return ()
        if not isinstance(v, list):
            self.p.add(path, "expected a list of strings")
            return ()
        return tuple(self.str_(x, (*path, i)) for i, x in enumerate(v))

    def mapping(self, v: Any, path: YPath, known: set[str] | None = None) -> dict[str, Any]:
        if v is None:
            return {}
        if not isinstance(v, dict):
            self.p.add(path, "expected a mapping")
            return {}
        if known is not None:
            for k in v:
                if k not in known:
                    hint = (
                        " (set the subject with headers: {Subject: ...})" if k == "subject" else ""
                    )
                    self.unknown((*path, k), f'unknown field "{k}"{hint}')
        return v

    # -- matchers --------------------------------------------------------
    def matchers(self, node: dict[str, Any], path: YPath, prefix: str) -> tuple[Matcher, ...]:
        """Combine ``{prefix}matchers``, legacy ``{prefix}match`` and ``{prefix}match_re``."""
        out: list[Matcher] = []
        for i, text in enumerate(
            self.str_list(node.get(prefix + "matchers"), (*path, prefix + "matchers"))
        ):
            try:
                out.append(parse_matcher(text))
            except MatcherParseError as exc:
                self.p.add((*path, prefix + "matchers", i), str(exc))
        for key, mt in (
            (prefix + "match", MatchType.EQUAL),
            (prefix + "match_re", MatchType.REGEX),
        ):
            for name, value in self.mapping(node.get(key), (*path, key)).items():
                if not LABEL_NAME_RE.match(name):
                    self.p.add((*path, key, name), f"invalid label name {name!r}")
                    continue
                try:
                    out.append(Matcher(mt, name, self.str_(value, (*path, key, name))))
                except InvalidRegexError as exc:
                    self.p.add((*path, key, name), str(exc))
        return tuple(out)

    # -- sections --------------------------------------------------------
    def global_(self, v: Any) -> GlobalConfig:
        path: YPath = ("global",)
        hints = typing.get_type_hints(GlobalConfig)
        names = {f.name for f in dataclasses.fields(GlobalConfig)}
        data = self.mapping(v, path, names)
        kw: dict[str, Any] = {}
        for k, val in data.items():
            if k not in names:
                continue
            if k == "resolve_timeout":
                d = self.duration(val, (*path, k))
                if d is not None:
                    kw[k] = d
            elif hints[k] is bool:
                kw[k] = self.bool_(val, (*path, k))
            elif k == "http_config":
                kw[k] = self.mapping(val, (*path, k))
            else:
                kw[k] = self.str_(val, (*path, k))
        return GlobalConfig(**kw)

    _ROUTE_KEYS: typing.ClassVar[set[str]] = {
        "receiver",
        "group_by",
        "matchers",
        "match",
        "match_re",
        "continue",
        "group_wait",
        "group_interval",
        "repeat_interval",
        "mute_time_intervals",
        "active_time_intervals",
        "routes",
    }

    def route(self, v: Any, path: YPath) -> RouteConfig:
        node = self.mapping(v, path, self._ROUTE_KEYS)
        group_by = None
        if "group_by" in node:
            group_by = self.str_list(node["group_by"], (*path, "group_by"))
            if "..." in group_by and len(group_by) > 1:
                self.p.add(
                    (*path, "group_by"),
                    "cannot have wildcard group_by (`...`) and other labels at the same time",
                )
            for i, name in enumerate(group_by):
                if name != "..." and not LABEL_NAME_RE.match(name):
                    self.p.add((*path, "group_by", i), f"invalid label name {name!r} in group_by")
            if len(set(group_by)) != len(group_by):
                self.p.add((*path, "group_by"), "duplicated label in group_by")
        gi = self.duration(node.get("group_interval"), (*path, "group_interval"))
        if gi == 0:
            self.p.add((*path, "group_interval"), "group_interval cannot be zero")
        ri = self.duration(node.get("repeat_interval"), (*path, "repeat_interval"))
        if ri == 0:
            self.p.add((*path, "repeat_interval"), "repeat_interval cannot be zero")
        children = node.get("routes") or []
        if not isinstance(children, list):
            self.p.add((*path, "routes"), "expected a list of routes")
            children = []
        return RouteConfig(
            receiver=self.str_(node["receiver"], (*path, "receiver"))
            if "receiver" in node
            else None,
            group_by=group_by,
            matchers=self.matchers(node, path, ""),
            continue_=self.bool_(node["continue"], (*path, "continue"))
            if "continue" in node
            else False,
            group_wait=self.duration(node.get("group_wait"), (*path, "group_wait")),
            group_interval=gi,
            repeat_interval=ri,
            mute_time_intervals=self.str_list(
                node.get("mute_time_intervals"), (*path, "mute_time_intervals")
            ),
            active_time_intervals=self.str_list(
                node.get("active_time_intervals"), (*path, "active_time_intervals")
            ),
            routes=tuple(self.route(c, (*path, "routes", i)) for i, c in enumerate(children)),
        )

    def inhibit_rule(self, v: Any, path: YPath) -> InhibitRuleConfig:
        keys = {
            "source_matchers",
            "target_matchers",
            "source_match",
            "source_match_re",
            "target_match",
            "target_match_re",
            "equal",
        }
        node = self.mapping(v, path, keys)
        equal = self.str_list(node.get("equal"), (*path, "equal"))
        for i, name in enumerate(equal):
            if not LABEL_NAME_RE.match(name):
                self.p.add((*path, "equal", i), f"invalid label name {name!r}")
        return InhibitRuleConfig(
            source_matchers=self.matchers(node, path, "source_"),
            target_matchers=self.matchers(node, path, "target_"),
            equal=equal,
        )

    def integration(self, key: str, cls: type, v: Any, path: YPath, g: GlobalConfig) -> Any:
        hints = typing.get_type_hints(cls)
        fields = {f.name for f in dataclasses.fields(cls)}
        yaml_names = {next((y for y, p in rc.RENAMED.items() if p == f), f) for f in fields}
        node = self.mapping(v, path, yaml_names)
        kw: dict[str, Any] = {}
        for yk, val in node.items():
            name = rc.RENAMED.get(yk, yk)
            if name not in fields:
                continue
            hint = hints[name]
            fp = (*path, yk)
            if hint is bool or hint == (bool | None):
                kw[name] = self.bool_(val, fp)
            elif hint is int:
                if isinstance(val, bool) or not isinstance(val, int):
                    self.p.add(fp, f"expected an integer, got {val!r}")
                else:
                    kw[name] = val
            elif typing.get_origin(hint) is dict:
                m = self.mapping(val, fp)
                kw[name] = (
                    dict(m)
                    if name == "http_config"
                    else {str(a): self.str_(b, (*fp, a)) for a, b in m.items()}
                )
            elif typing.get_origin(hint) is list:
                if not isinstance(val, list):
                    self.p.add(fp, "expected a list")
                else:
                    kw[name] = val
            else:
                kw[name] = self.str_(val, fp)
        for (ikey, fname), gkey in rc.GLOBAL_DEFAULTS.items():
            if ikey == key and fname not in kw:
                kw[fname] = getattr(g, gkey)
        cfg = cls(**kw)
        self.check_integration(key, cfg, path)
        return cfg

    def check_integration(self, key: str, cfg: Any, path: YPath) -> None:
        def need(cond: bool, msg: str) -> None:
            if not cond:
                self.p.add(path, msg)

        for name in _URL_FIELDS.get(key, ()):
            url_problem = _url_problem(getattr(cfg, name))
            if url_problem:
                self.p.add((*path, name), url_problem)

        if key == "webhook_configs":
            need(bool(cfg.url or cfg.url_file), "one of url or url_file must be configured")
            need(not (cfg.url and cfg.url_file), "at most one of url & url_file must be configured")
            need(cfg.max_alerts >= 0, "max_alerts must not be negative")
        elif key == "email_configs":
            need(bool(cfg.to), "missing to address in email config")
            need(bool(cfg.smarthost), "no global SMTP smarthost set")
            need(bool(cfg.from_), "no global SMTP from set")
            hp_problem = _hostport_problem(cfg.smarthost)
            if hp_problem:
                self.p.add((*path, "smarthost"), hp_problem)
            for h in cfg.headers:
                if h.lower() in {k.lower() for k in cfg.headers if k != h}:
                    self.p.add(path, f"duplicate header {h!r} in email config")
        elif key == "slack_configs":
            need(bool(cfg.api_url or cfg.api_url_file), "no global Slack API URL set")
        elif key == "pagerduty_configs":
            need(
                bool(
                    cfg.routing_key
                    or cfg.routing_key_file
                    or cfg.service_key
                    or cfg.service_key_file
                ),
                "missing service or routing key in PagerDuty config",
            )
        elif key in ("msteams_configs", "discord_configs"):
            need(
                bool(cfg.webhook_url or cfg.webhook_url_file),
                "one of webhook_url or webhook_url_file must be configured",
            )
        elif key == "telegram_configs":
            need(
                bool(cfg.bot_token or cfg.bot_token_file),
                "missing bot_token or bot_token_file on telegram_config",
            )
            need(cfg.chat_id != 0, "missing chat_id on telegram_config")
            need(
                cfg.parse_mode in ("", "Markdown", "MarkdownV2", "HTML"),
                "unknown parse_mode on telegram_config, must be Markdown, MarkdownV2, HTML or empty",
            )
        elif key == "opsgenie_configs":
            need(bool(cfg.api_key or cfg.api_key_file), "no global OpsGenie API key set")
            for i, r in enumerate(cfg.responders):
                rp: YPath = (*path, "responders", i)
                if not isinstance(r, dict):
                    self.p.add(rp, "expected a mapping")
                    continue
                if not any(r.get(k) for k in ("id", "username", "name")):
                    self.p.add(
                        rp, "opsgenie responder has to have at least one of id, username or name"
                    )
                rtype = str(r.get("type") or "")
                if "{{" not in rtype and rtype.lower() not in _OPSGENIE_RESPONDER_TYPES:
                    self.p.add(
                        (*rp, "type"),
                        f"opsgenie responder type {rtype!r} does not match valid options"
                        " team, teams, user, escalation, schedule",
                    )

    def receiver(self, v: Any, path: YPath, g: GlobalConfig) -> ReceiverConfig:
        keys = {"name"} | set(rc.INTEGRATIONS) | set(rc.UNSUPPORTED_INTEGRATIONS)
        node = self.mapping(v, path, keys)
        name = self.str_(node.get("name"), (*path, "name"))
        if not name:
            self.p.add(path, "missing name in receiver")
        integ: list[tuple[str, Any]] = []
        for key, val in node.items():
            if key in rc.UNSUPPORTED_INTEGRATIONS:
                self.warnings.append(f"receiver {name!r}: {key} are accepted but not sent by Vigil")
                continue
            cls = rc.INTEGRATIONS.get(key)
            if cls is None:
                continue
            if not isinstance(val, list):
                self.p.add((*path, key), "expected a list")
                continue
            integ.extend(
                (key, self.integration(key, cls, item, (*path, key, i), g))
                for i, item in enumerate(val)
            )
        return ReceiverConfig(name=name, integrations=tuple(integ))

    def intervals(self, v: Any, key: str) -> dict[str, tuple[TimeInterval, ...]]:
        out: dict[str, tuple[TimeInterval, ...]] = {}
        if v is None:
            return out
        if not isinstance(v, list):
            self.p.add((key,), "expected a list")
            return out
        for i, item in enumerate(v):
            path: YPath = (key, i)
            node = self.mapping(item, path, {"name", "time_intervals"})
            name = self.str_(node.get("name"), (*path, "name"))
            if not name:
                self.p.add(path, "missing name in time interval")
                continue
            specs = []
            for j, spec in enumerate(node.get("time_intervals") or []):
                try:
                    specs.append(parse_time_interval(spec))
                except TimeIntervalError as exc:
                    self.p.add((*path, "time_intervals", j), str(exc))
            out[name] = tuple(specs)
        return out

    def templates(self, v: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
        patterns = self.str_list(v, ("templates",))
        files: list[str] = []
        for i, pat in enumerate(patterns):
            full = pat if os.path.isabs(pat) else str(self.base_dir / pat)
            try:
                files.extend(sorted(glob.glob(full)))
            except Exception as exc:  # a malformed glob pattern
                self.p.add(("templates", i), f"invalid template glob {pat!r}: {exc}")
        return patterns, tuple(files)


# URL-valued integration fields: http(s) with a host, as Alertmanager's URL type.
_URL_FIELDS: dict[str, tuple[str, ...]] = {
    "webhook_configs": ("url",),
    "slack_configs": ("api_url",),
    "pagerduty_configs": ("url",),
    "opsgenie_configs": ("api_url",),
    "msteams_configs": ("webhook_url",),
    "discord_configs": ("webhook_url",),
    "telegram_configs": ("api_url",),
}
_OPSGENIE_RESPONDER_TYPES = frozenset({"team", "teams", "user", "escalation", "schedule"})


def _url_problem(url: str) -> str:
    if not url:
        return ""
    try:
        u = urlsplit(url)
        host = u.netloc.rpartition("@")[2]
    except ValueError as exc:
        return f"invalid URL: {exc}"
    if u.scheme.lower() not in ("http", "https"):
        return f'unsupported scheme "{u.scheme}" for URL'
    if not host:
        return "missing host for URL"
    return ""


def _hostport_problem(s: str) -> str:
    """Alertmanager's HostPort: ``host:port`` (``[v6]:port``), the port not empty."""
    if not s:
        return ""
    host, sep, port = s.rpartition(":")
    if not sep:
        return f"address {s}: missing port in address"
    if ":" in host and not (host.startswith("[") and host.endswith("]")):
        return f"address {s}: too many colons in address"
    if not port:
        return f'address "{s}": port cannot be empty'
    return ""


def _check_refs(cfg: AlertmanagerConfig, p: Problems, parser: _Parser) -> list[str]:
    """Check cross references; returns receiver names to add empty (lenient mode only)."""
    missing: list[str] = []
    names = [r.name for r in cfg.receivers]
    seen: set[str] = set()
    for i, n in enumerate(names):
        if n in seen:
            p.add(("receivers", i, "name"), f'notification config name "{n}" is not unique')
        seen.add(n)

    def walk(r: RouteConfig, path: YPath) -> None:
        if r.receiver is not None and r.receiver not in seen:
            msg = f'undefined receiver "{r.receiver}" used in route'
            if parser.strict:
                p.add((*path, "receiver"), msg)
            elif r.receiver not in missing:
                parser.unknown((*path, "receiver"), msg + "; alerts routed to it are dropped")
                missing.append(r.receiver)
        for key, refs in (
            ("mute_time_intervals", r.mute_time_intervals),
            ("active_time_intervals", r.active_time_intervals),
        ):
            for j, ref in enumerate(refs):
                if ref not in cfg.time_intervals:
                    p.add((*path, key, j), f'undefined time interval "{ref}" used in route')
        for i, c in enumerate(r.routes):
            walk(c, (*path, "routes", i))

    walk(cfg.route, ("route",))
    if not cfg.route.receiver:
        p.add(("route",), "root route must specify a default receiver")
    if cfg.route.matchers:
        p.add(("route",), "root route must not have any matchers")
    if cfg.route.mute_time_intervals or cfg.route.active_time_intervals:
        p.add(("route",), "root route must not have any mute or active time intervals")
    return missing


def load_config(
    text: str,
    filename: str = "alertmanager.yml",
    base_dir: str | Path | None = None,
    strict: bool = True,
) -> AlertmanagerConfig:
    """Parse and validate Alertmanager YAML; raise `ConfigError` listing every problem.

    `strict=True` rejects what Alertmanager rejects. `strict=False` turns unknown
    fields and references to undefined receivers into `warnings` (such receivers
    are created with no integrations), so hand-written configs such as the seeds'
    load as they are.
    """
    data, marks = load_located(text, filename)
    p = Problems(filename, marks)
    if not isinstance(data, dict):
        raise ConfigError(
            [ConfigProblem(filename, 1, 1, "the configuration must be a YAML mapping")]
        )
    known = {
        "global",
        "route",
        "inhibit_rules",
        "receivers",
        "templates",
        "time_intervals",
        "mute_time_intervals",
    }
    parser = _Parser(p, Path(base_dir) if base_dir else Path.cwd(), strict)
    for k in data:
        if k not in known:
            parser.unknown(
                (k,), f'unknown field "{k}" (expected one of {", ".join(sorted(known))})'
            )
    g = parser.global_(data.get("global"))
    if "route" not in data:
        p.add((), "no route provided in config")
    route = parser.route(data.get("route") or {}, ("route",))
    recv_data = data.get("receivers") or []
    if not isinstance(recv_data, list):
        p.add(("receivers",), "expected a list of receivers")
        recv_data = []
    receivers = tuple(parser.receiver(r, ("receivers", i), g) for i, r in enumerate(recv_data))
    inh = data.get("inhibit_rules") or []
    if not isinstance(inh, list):
        p.add(("inhibit_rules",), "expected a list")
        inh = []
    rules = tuple(parser.inhibit_rule(r, ("inhibit_rules", i)) for i, r in enumerate(inh))
    intervals = parser.intervals(data.get("mute_time_intervals"), "mute_time_intervals")
    for name, specs in parser.intervals(data.get("time_intervals"), "time_intervals").items():
        if name in intervals:
            p.add(("time_intervals",), f'time interval "{name}" is not unique')
        intervals[name] = specs
    patterns, files = parser.templates(data.get("templates"))
    cfg = AlertmanagerConfig(
        global_=g,
        route=route,
        receivers=receivers,
        inhibit_rules=rules,
        time_intervals=intervals,
        templates=patterns,
        template_files=files,
        original=text,
        warnings=tuple(parser.warnings),
    )
    missing = _check_refs(cfg, p, parser)
    p.raise_if_any()
    if missing:
        cfg = dataclasses.replace(
            cfg,
            receivers=cfg.receivers + tuple(ReceiverConfig(n) for n in missing),
            warnings=tuple(parser.warnings),
        )
    return cfg


def load_config_file(path: str | Path, strict: bool = True) -> AlertmanagerConfig:
    """Read and validate an Alertmanager config file; template globs are relative to it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            [ConfigProblem(str(path), 0, 0, f"cannot read config: {exc.strerror}")]
        ) from None
    return load_config(text, str(path), base_dir=path.parent, strict=strict)
