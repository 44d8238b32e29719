"""Prometheus's template functions and expander for alerting-rule labels and annotations.

Built on `vigil.gotemplate`. The data is what Prometheus gives a rule template:
``.Labels``, ``.ExternalLabels``, ``.ExternalURL`` and ``.Value``, with the
convenience variables ``$labels``, ``$externalLabels``, ``$externalURL`` and
``$value`` declared in front of the text. A missing label reads as "" (Go's
``missingkey=zero`` on a ``map[string]string``). Expansion never raises: an error
becomes ``<error expanding template: ...>`` in the text, as in Prometheus.
"""

from __future__ import annotations

import datetime as _dt
import math
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import re2

from vigil.gotemplate import Template, TemplateError
from vigil.gotemplate.funcs import BUILTINS
from vigil.gotemplate.parse import (
    Action,
    Chain,
    Command,
    Ident,
    If,
    Pipe,
    Range,
    TemplateCall,
    parse,
)
from vigil.promql.result import QueryResult

QueryFunc = Callable[[str, int], QueryResult]
"""``query(expr, t_ms)``: an instant query, as handed to the rule manager."""

_DEFS = (
    "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}"
    "{{$externalURL := .ExternalURL}}{{$value := .Value}}"
)


class LabelMap(Mapping[str, str]):
    """A read-only label map whose missing keys read as "" (Go's zero string)."""

    __slots__ = ("_d",)

    def __init__(self, d: Mapping[str, str] | None = None) -> None:
        self._d = dict(d or {})

    def __getitem__(self, key: str) -> str:
        return self._d[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    def get(self, key: str, default: Any = "") -> Any:  # type: ignore[override]
        return self._d.get(key, "")

    def __str__(self) -> str:
        return "map[" + " ".join(f"{k}:{v}" for k, v in sorted(self._d.items())) + "]"


class QuerySample:
    """One element of a ``query`` result: ``.Labels`` and ``.Value``."""

    __slots__ = ("Labels", "Value")

    def __init__(self, labels: Mapping[str, str], value: float) -> None:
        self.Labels = LabelMap(labels)
        self.Value = value

    def __str__(self) -> str:
        return f"{{{self.Labels} {go_g(self.Value, -1)}}}"


# ---- number formatting as Go's fmt ---------------------------------------------


def go_g(v: float, prec: int = 4) -> str:
    """Go's ``%.<prec>g`` (prec -1: shortest ``%v``) for a float64."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if prec < 0:
        from vigil.gotemplate.exec import format_float

        return format_float(v)
    return f"{v:.{prec}g}"


def format_float_e(v: float, upper: bool = False) -> str:
    """Go's ``strconv.FormatFloat(v, 'e', -1, 64)`` (``'E'`` when `upper`)."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    r = repr(float(v))
    sign = "-" if r.startswith("-") else ""
    r = r.lstrip("-")
    if "e" in r:
        mant, exp_s = r.split("e")
        exp = int(exp_s)
        digits = mant.replace(".", "")
        point = mant.find(".") if "." in mant else len(mant)
        exp += point - 1
    else:
        intpart, _, frac = r.partition(".")
        frac = "" if frac == "0" else frac
        digits = (intpart + frac).lstrip("0")
        if intpart.strip("0"):
            exp = len(intpart.lstrip("0")) - 1
        else:
            lead = len(frac) - len(frac.lstrip("0"))
            exp = -(lead + 1)
        digits = digits or "0"
    digits = digits.lstrip("0").rstrip("0") or "0"
    if digits == "0":
        exp = 0
    mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    e = "E" if upper else "e"
    return f"{sign}{mant}{e}{'-' if exp < 0 else '+'}{abs(exp):02d}"


def _to_float(v: Any) -> float:
    if isinstance(v, bool):
        raise TemplateError(f"can't convert {type(v).__name__} to float")
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            raise TemplateError(f'strconv.ParseFloat: parsing "{v}": invalid syntax') from None
    if isinstance(v, QuerySample):
        return float(v.Value)
    raise TemplateError(f"can't convert {type(v).__name__} to float")


def humanize(i: Any) -> str:
    v = _to_float(i)
    if v == 0 or math.isnan(v) or math.isinf(v):
        return go_g(v)
    prefix = ""
    if abs(v) >= 1:
        for p in ("k", "M", "G", "T", "P", "E", "Z", "Y"):
            if abs(v) < 1000:
                break
            prefix = p
            v /= 1000
        return go_g(v) + prefix
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(v) >= 1:
            break
        prefix = p
        v *= 1000
    return go_g(v) + prefix


def humanize1024(i: Any) -> str:
    v = _to_float(i)
    if abs(v) <= 1 or math.isnan(v) or math.isinf(v):
        return go_g(v)
    prefix = ""
    for p in ("ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"):
        if abs(v) < 1024:
            break
        prefix = p
        v /= 1024
    return go_g(v) + prefix


def humanize_duration(i: Any) -> str:
    v = _to_float(i)
    if math.isnan(v) or math.isinf(v):
        return go_g(v)
    if v == 0:
        return go_g(v) + "s"
    if abs(v) >= 1:
        sign = ""
        if v < 0:
            sign, v = "-", -v
        d = int(v)
        seconds, minutes, hours, days = d % 60, (d // 60) % 60, (d // 3600) % 24, d // 86400
        if days:
            return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
        if hours:
            return f"{sign}{hours}h {minutes}m {seconds}s"
        if minutes:
            return f"{sign}{minutes}m {seconds}s"
        return f"{sign}{go_g(v)}s"
    prefix = ""
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(v) >= 1:
            break
        prefix = p
        v *= 1000
    return f"{go_g(v)}{prefix}s"


def humanize_percentage(i: Any) -> str:
    return go_g(_to_float(i) * 100) + "%"


def go_time_string(seconds: float) -> str:
    """Go's ``time.Time.String()`` of a Unix time in UTC."""
    whole = math.floor(seconds)
    nanos = round((seconds - whole) * 1e9)
    if nanos >= 1_000_000_000:
        whole, nanos = whole + 1, nanos - 1_000_000_000
    t = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC) + _dt.timedelta(seconds=whole)
    frac = f".{nanos:09d}".rstrip("0") if nanos else ""
    return t.strftime("%Y-%m-%d %H:%M:%S") + frac + " +0000 UTC"


def humanize_timestamp(i: Any) -> str:
    v = _to_float(i)
    if math.isnan(v) or math.isinf(v):
        return go_g(v)
    return go_time_string(v)


def strip_port(host_port: str) -> str:
    if host_port.startswith("["):
        end = host_port.find("]")
        if end > 0 and host_port[end + 1 : end + 2] == ":":
            return host_port[1:end]
        return host_port
    if host_port.count(":") == 1:
        return host_port.split(":")[0]
    return host_port


def strip_domain(host_port: str) -> str:
    host, sep, port = host_port.rpartition(":")
    if not sep or "]" in port:
        host, port = host_port, ""
    if host.startswith("["):
        return host_port
    short = host.split(".")[0]
    return f"{short}:{port}" if sep and port else short


def parse_duration(s: str) -> float:
    from vigil.config.types import Duration

    try:
        return Duration.parse(s).seconds
    except ValueError:
        raise TemplateError(f'not a valid duration string: "{s}"') from None


def _first(v: list[QuerySample]) -> QuerySample:
    if not v:
        raise TemplateError("first() called on vector with no elements")
    return v[0]


def _label(name: str, s: QuerySample) -> str:
    return s.Labels.get(name) if isinstance(s, QuerySample) else ""


def _value(s: QuerySample) -> float:
    return float(s.Value)


def _sort_by_label(name: str, v: list[QuerySample]) -> list[QuerySample]:
    return sorted(v, key=lambda s: s.Labels.get(name))


def _args(*a: Any) -> dict[str, Any]:
    return {f"arg{i}": x for i, x in enumerate(a)}


def _re_replace_all(pattern: str, repl: str, text: str) -> str:
    py_repl = re2.sub(r"\$\{?(\w+)\}?", r"\\\1", repl.replace("\\", "\\\\"))
    return str(re2.sub(pattern, py_repl, text))


def graph_link(expr: str) -> str:
    return f"/graph?g0.expr={urllib.parse.quote_plus(expr)}&g0.tab=0"


def table_link(expr: str) -> str:
    return f"/graph?g0.expr={urllib.parse.quote_plus(expr)}&g0.tab=1"


def _query_func(query: QueryFunc | None, t_ms: int) -> Callable[[str], list[QuerySample]]:
    def run(q: str) -> list[QuerySample]:
        if query is None:
            raise TemplateError("query function not available")
        res = query(q, t_ms)
        if res.result_type == "vector":
            return [QuerySample(s.labels.to_dict(), s.v) for s in res.value]  # type: ignore[union-attr,arg-type]
        if res.result_type == "scalar":
            return [QuerySample({}, res.value.v)]  # type: ignore[union-attr,arg-type]
        raise TemplateError("rule result is not a vector or scalar")

    return run


def template_funcs(
    query: QueryFunc | None = None, t_ms: int = 0, external_url: str = ""
) -> dict[str, Callable[..., Any]]:
    """Prometheus's template function table; `query` runs at `t_ms`."""
    path = urllib.parse.urlparse(external_url).path if external_url else ""
    return {
        "query": _query_func(query, t_ms),
        "first": _first,
        "label": _label,
        "value": _value,
        "strvalue": lambda s: s.Labels.get("__value__") if isinstance(s, QuerySample) else "",
        "args": _args,
        "reReplaceAll": _re_replace_all,
        "safeHtml": lambda s: str(s),
        "match": lambda p, t: re2.search(p, t) is not None,
        "title": BUILTINS["title"],
        "toUpper": lambda s: str(s).upper(),
        "toLower": lambda s: str(s).lower(),
        "graphLink": graph_link,
        "tableLink": table_link,
        "sortByLabel": _sort_by_label,
        "humanize": humanize,
        "humanize1024": humanize1024,
        "humanizeDuration": humanize_duration,
        "humanizePercentage": humanize_percentage,
        "humanizeTimestamp": humanize_timestamp,
        "toTime": lambda v: go_time_string(_to_float(v)),
        "toDuration": lambda v: _to_float(v),
        "pathPrefix": lambda: path,
        "externalURL": lambda: external_url,
        "parseDuration": parse_duration,
        "stripPort": strip_port,
        "stripDomain": strip_domain,
        "tmpl": lambda *a: "",
    }


_KNOWN_FUNCS = frozenset(template_funcs()) | frozenset(Template().funcs)


def _walk_idents(nodes: list[Any]) -> Iterator[str]:
    for n in nodes:
        if isinstance(n, Action):
            yield from _pipe_idents(n.pipe)
        elif isinstance(n, If | Range):
            yield from _pipe_idents(n.pipe)
            yield from _walk_idents(n.body)
            yield from _walk_idents(n.else_ or [])
        elif isinstance(n, TemplateCall) and n.pipe is not None:
            yield from _pipe_idents(n.pipe)


def _pipe_idents(p: Pipe) -> Iterator[str]:
    for cmd in p.cmds:
        yield from _cmd_idents(cmd)


def _cmd_idents(cmd: Command) -> Iterator[str]:
    for a in cmd.args:
        if isinstance(a, Ident):
            yield a.name
        elif isinstance(a, Pipe):
            yield from _pipe_idents(a)
        elif isinstance(a, Chain):
            yield from _pipe_idents(a.node)


def _prefixed(msg: str) -> str:
    return msg if msg.startswith("template: ") else "template: " + msg


def check_template(text: str, name: str) -> str | None:
    """Parse-time check as Go's: syntax and undefined functions. None when fine."""
    try:
        nodes, defines = parse(name, _DEFS + text)
    except TemplateError as exc:
        return _prefixed(str(exc))
    for body in [nodes, *defines.values()]:
        for ident in _walk_idents(body):
            if ident not in _KNOWN_FUNCS:
                line = text[: max(text.find(ident), 0)].count("\n") + 1
                return f'template: {name}:{line}: function "{ident}" not defined'
    return None


class Expander:
    """Expands one rule's label and annotation templates for one alert.

    Parsed templates are cached per text; the function table (which carries the
    evaluation time for ``query``) is rebuilt per expansion. Not thread-safe; a
    rule is evaluated by one thread at a time.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._cache: dict[str, Template | TemplateError] = {}

    def _template(self, text: str) -> Template:
        t = self._cache.get(text)
        if t is None:
            try:
                t = Template().parse(self.name, _DEFS + text)
            except TemplateError as exc:
                t = TemplateError(f"error parsing template {self.name}: {_prefixed(str(exc))}")
            self._cache[text] = t
        if isinstance(t, TemplateError):
            raise t
        return t

    def expand(
        self,
        text: str,
        labels: Mapping[str, str],
        value: float,
        *,
        external_labels: Mapping[str, str] | None = None,
        external_url: str = "",
        query: QueryFunc | None = None,
        t_ms: int = 0,
    ) -> str:
        if "{{" not in text:
            return text
        data = {
            "Labels": LabelMap(labels),
            "ExternalLabels": LabelMap(external_labels),
            "ExternalURL": external_url,
            "Value": value,
        }
        try:
            t = self._template(text)
            t.funcs.update(template_funcs(query, t_ms, external_url))
            return t.execute(self.name, data)
        except TemplateError as exc:
            msg = str(exc)
            if not msg.startswith("error parsing"):
                msg = f"error executing template {self.name}: {_prefixed(msg)}"
            return f"<error expanding template: {msg}>"
        except Exception as exc:  # a template must never break a rule
            return f"<error expanding template: error executing template {self.name}: {exc}>"


def expand_template(
    text: str,
    labels: Mapping[str, str],
    value: float,
    *,
    name: str = "__alert_",
    external_labels: Mapping[str, str] | None = None,
    external_url: str = "",
    query: QueryFunc | None = None,
    t_ms: int = 0,
) -> str:
    """One-off expansion of `text` (see `Expander.expand`)."""
    return Expander(name).expand(
        text,
        labels,
        value,
        external_labels=external_labels,
        external_url=external_url,
        query=query,
        t_ms=t_ms,
    )
