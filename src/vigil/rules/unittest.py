"""`test rules`: promtool's rule unit-test format, runner and output.

A test file names `rule_files`, an `evaluation_interval` (default 1m), an optional
`group_eval_order`, and `tests`, each with `interval`, `input_series` (series
notation: ``'1+1x10 _ stale'``), `alert_rule_test` (firing alerts expected at an
`eval_time`) and `promql_expr_test`. Each test group runs on its own MemoryStorage
with the real engine; the rule groups are evaluated every `evaluation_interval`
from 0 up to the last `eval_time`, exactly as promtool does, and failures are
printed in promtool's words.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

from vigil.config.types import Duration
from vigil.model.labels import Labels
from vigil.promql.engine import Engine
from vigil.promql.promqltest import ScriptError, parse_series_line, parse_values
from vigil.rules.alerting import STATE_FIRING, AlertingRule
from vigil.rules.loader import RuleFileError, expand_rule_files, load_rule_files, parse_duration_ms
from vigil.rules.manager import RuleManager
from vigil.rules.templates import format_float_e
from vigil.storage.memory import MemoryStorage

SUCCESS = 0
FAILURE = 1

_FILE_FIELDS = {"rule_files", "evaluation_interval", "group_eval_order", "tests", "fuzzy_compare"}
_GROUP_FIELDS = {
    "interval",
    "input_series",
    "alert_rule_test",
    "promql_expr_test",
    "external_labels",
    "external_url",
    "name",
}


class _TestFileError(Exception):
    pass


def go_quote(s: str) -> str:
    """Go's ``strconv.Quote`` for the common cases."""
    return json.dumps(s, ensure_ascii=False)


def go_labels(lbls: Labels | dict[str, str]) -> str:
    """Prometheus's ``labels.Labels.String()``: ``{a="1", b="2"}``."""
    items = sorted(lbls.items()) if isinstance(lbls, dict) else list(lbls)
    return "{" + ", ".join(f"{k}={go_quote(v)}" for k, v in items) + "}"


def go_duration(ms: int) -> str:
    """Go's ``time.Duration.String()`` for whole milliseconds."""
    if ms == 0:
        return "0s"
    sign = "-" if ms < 0 else ""
    ms = abs(ms)
    if ms < 1000:
        return f"{sign}{ms}ms"
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, frac = divmod(rem, 1000)
    secs = f"{s}" + (f".{frac:03d}".rstrip("0") if frac else "") + "s"
    if h:
        return f"{sign}{h}h{m}m{secs}"
    if m:
        return f"{sign}{m}m{secs}"
    return sign + secs


def _indent(lines: str, indent: str) -> str:
    return ("\n" + indent).join(lines.split("\n"))


@dataclass
class _LA:
    labels: Labels
    annotations: Labels

    def __str__(self) -> str:
        return f"Labels:{go_labels(self.labels)}\nAnnotations:{go_labels(self.annotations)}"


def _la_list(items: list[_LA]) -> str:
    if not items:
        return "[]"
    s = "[\n0:" + _indent("\n" + str(items[0]), "  ")
    for i, la in enumerate(items[1:], start=1):
        s += f",\n{i}:" + _indent("\n" + str(la), "  ")
    return s + "\n]"


def _dur(v: Any, what: str) -> int:
    try:
        return parse_duration_ms(str(v))
    except ValueError as exc:
        raise _TestFileError(str(exc)) from None


def _map(v: Any) -> dict[str, str]:
    if v is None or v == "":
        return {}
    if not isinstance(v, dict):
        raise _TestFileError(f"expected a map, got {v!r}")
    return {str(k): str(x) for k, x in v.items()}


def _check_fields(d: Any, known: set[str], gotype: str) -> None:
    if not isinstance(d, dict):
        raise _TestFileError(f"yaml: unmarshal errors:\n  cannot unmarshal into {gotype}")
    bad = [k for k in d if k not in known]
    if bad:
        lines = "\n".join(f"  field {k} not found in type {gotype}" for k in bad)
        raise _TestFileError(f"yaml: unmarshal errors:\n{lines}")


@dataclass
class _TestGroup:
    raw: dict[str, Any]
    interval_ms: int
    name: str = ""
    external_labels: dict[str, str] = field(default_factory=dict)
    external_url: str = ""


def _parse_value(s: str) -> float:
    low = s.strip().lower().lstrip("+")
    if low in ("inf", "-inf", "nan"):
        return float(low)
    return float(s)


def _run_group(
    tg: _TestGroup,
    eval_interval_ms: int,
    order: dict[str, int],
    rule_files: list[str],
) -> list[str]:
    storage = MemoryStorage()
    engine = Engine(storage, subquery_step_ms=eval_interval_ms)
    app = storage.appender()
    for item in tg.raw.get("input_series") or []:
        try:
            lbls, _ = parse_series_line(str(item.get("series", "")), 0)
            values = parse_values(str(item.get("values", "")).split(), 0)
        except ScriptError as exc:
            return [str(exc)]
        for i, v in enumerate(values):
            if v is not None:
                app.append(lbls, i * tg.interval_ms, v)
    app.commit()

    mgr = RuleManager(
        query=engine.instant_query,
        appendable=storage,
        external_labels=tg.external_labels,
        external_url=tg.external_url,
    )
    try:
        specs = load_rule_files(rule_files)
    except RuleFileError as exc:
        return list(exc.errors)
    groups = mgr.build_groups(specs, tg.interval_ms, restored=True)
    groups.sort(key=lambda g: order.get(g.name, 0))

    alert_tests: dict[int, list[dict[str, Any]]] = {}
    for at in tg.raw.get("alert_rule_test") or []:
        t = _dur(at.get("eval_time", "0s"), "eval_time")
        if not at.get("alertname"):
            where = f" (in TestGroup {tg.name})" if tg.name else ""
            return [
                "an item under alert_rule_test misses required attribute alertname at "
                f"eval_time {Duration(t)}{where}"
            ]
        alert_tests.setdefault(t, []).append(at)
    expr_tests = tg.raw.get("promql_expr_test") or []
    times = sorted(alert_tests)
    max_t = max(times + [_dur(e.get("eval_time", "0s"), "eval_time") for e in expr_tests] + [0])

    errs: list[str] = []
    cur = 0
    ts = 0
    while ts <= max_t:
        eval_errs = []
        for g in groups:
            g.evaluate(ts)
            for r in g.rules:
                if r.last_error:
                    eval_errs.append(
                        f"    rule: {r.name}, time: {go_duration(ts)}, err: {r.last_error}"
                    )
        errs.extend(eval_errs)
        if eval_errs:
            return errs
        while cur < len(times) and ts <= times[cur] < ts + eval_interval_ms:
            t = times[cur]
            wanted = {str(a["alertname"]) for a in alert_tests[t]}
            got: dict[str, list[_LA]] = {}
            for g in groups:
                for r in g.rules:
                    if not isinstance(r, AlertingRule) or r.name not in wanted:
                        continue
                    got.setdefault(r.name, []).extend(
                        _LA(a.labels, Labels.from_dict(a.annotations))
                        for a in r.snapshot()
                        if a.state == STATE_FIRING
                    )
            for case in alert_tests[t]:
                name = str(case["alertname"])
                got_alerts = sorted(got.get(name, []), key=lambda x: (x.labels, x.annotations))
                exp_alerts = []
                for ea in case.get("exp_alerts") or []:
                    el = _map(ea.get("exp_labels"))
                    el["alertname"] = name
                    exp_alerts.append(
                        _LA(Labels.from_dict(el), Labels.from_dict(_map(ea.get("exp_annotations"))))
                    )
                exp_alerts.sort(key=lambda x: (x.labels, x.annotations))
                if exp_alerts != got_alerts:
                    test_name = f"    name: {tg.name},\n" if tg.name else ""
                    exp_s = _indent(_la_list(exp_alerts), "            ")
                    got_s = _indent(_la_list(got_alerts), "            ")
                    errs.append(
                        f"{test_name}    alertname: {name}, time: {Duration(t)}, \n"
                        f"        exp:{exp_s}, \n        got:{got_s}"
                    )
            cur += 1
        ts += eval_interval_ms

    for case in expr_tests:
        expr = str(case.get("expr", ""))
        t = _dur(case.get("eval_time", "0s"), "eval_time")
        head = f"    expr: {go_quote(expr)}, time: {Duration(t)}"
        try:
            res = engine.instant_query(expr, t)
            got_samples: list[tuple[Labels, float]]
            if res.result_type == "vector":
                got_samples = [(s.labels, float(s.v)) for s in res.value]  # type: ignore[union-attr]
            elif res.result_type == "scalar":
                got_samples = [(Labels.EMPTY, float(res.value.v))]  # type: ignore[union-attr]
            else:
                raise ValueError("rule result is not a vector or scalar")
        except Exception as exc:
            errs.append(f"{head}, err: {exc}")
            continue
        exp_samples: list[tuple[Labels, float]] = []
        bad = None
        for es in case.get("exp_samples") or []:
            text = str(es.get("labels", ""))
            try:
                lbls, rest = parse_series_line(text, 0)
                if rest:
                    raise ScriptError(0, f"unexpected {rest[0]!r}")
                exp_samples.append((lbls, _parse_value(str(es.get("value", "0")))))
            except (ScriptError, ValueError) as exc:
                bad = f"{head}, err: labels {go_quote(text)}: {exc}"
                break
        if bad:
            errs.append(bad)
            continue
        exp_samples.sort(key=lambda x: x[0])
        got_samples.sort(key=lambda x: x[0])
        if not _samples_equal(exp_samples, got_samples):
            errs.append(
                f"{head},\n        exp: {_samples_str(exp_samples)}\n        got: {_samples_str(got_samples)}"
            )
    return errs


def _samples_equal(a: list[tuple[Labels, float]], b: list[tuple[Labels, float]]) -> bool:
    if len(a) != len(b):
        return False
    for (la, va), (lb, vb) in zip(a, b, strict=True):
        if la != lb:
            return False
        if not (va == vb or (math.isnan(va) and math.isnan(vb))):
            return False
    return True


def _samples_str(ss: list[tuple[Labels, float]]) -> str:
    if not ss:
        return "nil"
    return ", ".join(f"{go_labels(lbls)} {format_float_e(v, upper=True)}" for lbls, v in ss)


def rule_unit_test(filename: str) -> list[str]:
    """Run one test file; returns promtool-style error texts (empty when it passes)."""
    try:
        text = Path(filename).read_text(encoding="utf-8")
    except OSError as exc:
        return [f"open {filename}: {exc.strerror or exc}"]
    try:
        doc = yaml.load(text, Loader=yaml.BaseLoader) or {}
        _check_fields(doc, _FILE_FIELDS, "main.unitTestFile")
        base = os.path.dirname(filename)
        rule_files = expand_rule_files([str(p) for p in doc.get("rule_files") or []], base)
        eval_interval = _dur(doc.get("evaluation_interval") or "1m", "evaluation_interval")
        if eval_interval == 0:
            eval_interval = 60_000
        order: dict[str, int] = {}
        for i, gn in enumerate(doc.get("group_eval_order") or []):
            if gn in order:
                return [f"group name repeated in evaluation order: {gn}"]
            order[gn] = i
        groups = []
        for raw in doc.get("tests") or []:
            _check_fields(raw, _GROUP_FIELDS, "main.testGroup")
            for key, gotype in (
                ("input_series", "main.series"),
                ("alert_rule_test", "main.alertTestCase"),
                ("promql_expr_test", "main.promqlTestCase"),
            ):
                for item in raw.get(key) or []:
                    _check_fields(item, _ITEM_FIELDS[key], gotype)
            interval = _dur(raw.get("interval") or "0s", "interval") or eval_interval
            groups.append(
                _TestGroup(
                    raw,
                    interval,
                    name=str(raw.get("name", "")),
                    external_labels=_map(raw.get("external_labels")),
                    external_url=str(raw.get("external_url", "")),
                )
            )
    except yaml.YAMLError as exc:
        return [f"yaml: {exc}"]
    except _TestFileError as exc:
        return [str(exc)]
    errs: list[str] = []
    for tg in groups:
        errs.extend(_run_group(tg, eval_interval, order, rule_files))
    return errs


_ITEM_FIELDS = {
    "input_series": {"series", "values"},
    "alert_rule_test": {"eval_time", "alertname", "exp_alerts"},
    "promql_expr_test": {"expr", "eval_time", "exp_samples"},
}


def test_rules(
    files: list[str],
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    runner: Callable[[str], list[str]] = rule_unit_test,
) -> int:
    """Run promtool-format rule unit tests; print as promtool; return the exit code."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    failed = False
    for f in files:
        print("Unit Testing: ", f, file=out)
        errs = runner(f)
        if errs:
            out.flush()
            print("  FAILED:", file=err)
            for e in errs:
                print(e, file=err)
                err.flush()
                print(file=out)
            failed = True
        else:
            print("  SUCCESS", file=out)
        print(file=out)
    return FAILURE if failed else SUCCESS


test_rules.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
