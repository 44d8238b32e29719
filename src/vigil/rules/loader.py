"""Rule files as Prometheus reads them, validated as promtool does, errors at file:line:col.

The YAML is composed into nodes so every error can name the position of the node
it is about. Messages follow Prometheus's `rulefmt` package word for word (so
`vigil check rules` and `promtool check rules` print the same verdicts). Prometheus
3's group fields `labels` and `query_offset` are accepted.
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from vigil.model.duration import parse_duration
from vigil.promql.errors import PromQLError
from vigil.promql.parser import parse_expr
from vigil.rules.templates import check_template

LABEL_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
METRIC_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_GROUP_FIELDS = frozenset({"name", "interval", "query_offset", "limit", "rules", "labels"})
_RULE_FIELDS = frozenset(
    {"record", "alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
)


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """One rule as written. Exactly one of `record` / `alert` is non-empty."""

    expr: str
    record: str = ""
    alert: str = ""
    for_ms: int = 0
    keep_firing_for_ms: int = 0
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    line: int = 0

    @property
    def name(self) -> str:
        return self.alert or self.record


@dataclass(frozen=True, slots=True)
class GroupSpec:
    """One rule group. `interval_ms` / `query_offset_ms` None: use the global default."""

    name: str
    file: str
    rules: tuple[RuleSpec, ...]
    interval_ms: int | None = None
    query_offset_ms: int | None = None
    limit: int = 0
    labels: dict[str, str] = field(default_factory=dict)


class RuleFileError(Exception):
    """A rule file is invalid; `errors` are promtool-style lines, each naming the file."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("\n".join(errors))


def parse_duration_ms(text: str) -> int:
    """Prometheus's `model.ParseDuration` in ms; ValueError with its message."""
    return parse_duration(text)


def _pos(node: yaml.Node) -> str:
    return f"{node.start_mark.line + 1}:{node.start_mark.column + 1}"


def _go_type(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "!!map"
    if isinstance(node, yaml.SequenceNode):
        return "!!seq"
    tag = str(node.tag).rsplit(":", 1)[-1]
    return f"!!{tag}"


class _Unmarshal(Exception):
    def __init__(self, lines: list[str]) -> None:
        self.lines = lines


def _scalar(node: yaml.Node | None, into: str, errs: list[str]) -> str:
    if node is None:
        return ""
    if not isinstance(node, yaml.ScalarNode):
        errs.append(
            f"  line {node.start_mark.line + 1}: cannot unmarshal {_go_type(node)} into {into}"
        )
        return ""
    if node.tag.endswith(":null"):
        return ""
    return str(node.value)


def _string_map(node: yaml.Node | None, errs: list[str]) -> dict[str, str]:
    if node is None or (isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null")):
        return {}
    if not isinstance(node, yaml.MappingNode):
        errs.append(
            f"  line {node.start_mark.line + 1}: cannot unmarshal {_go_type(node)} "
            "into map[string]string"
        )
        return {}
    out: dict[str, str] = {}
    for k, v in node.value:
        out[_scalar(k, "string", errs)] = _scalar(v, "string", errs)
    return out


def _fields(
    node: yaml.MappingNode, known: frozenset[str], gotype: str, errs: list[str]
) -> dict[str, yaml.Node]:
    out: dict[str, yaml.Node] = {}
    for k, v in node.value:
        key = str(k.value)
        if key not in known:
            errs.append(f"  line {k.start_mark.line + 1}: field {key} not found in type {gotype}")
            continue
        if key in out:
            errs.append(
                f'  line {k.start_mark.line + 1}: mapping key "{key}" already defined at line '
                f"{out[key].start_mark.line}"
            )
        out[key] = v
    return out


def _validate_rule(r: dict[str, yaml.Node], rule: RuleSpec) -> list[str]:
    """rulefmt's RuleNode.Validate: (position or "", message) pairs as strings."""
    errs: list[str] = []
    rec, alert, expr = r.get("record"), r.get("alert"), r.get("expr")
    if rule.record and rule.alert:
        assert rec is not None and alert is not None
        errs.append(f"{_pos(rec)}: {_pos(alert)}: \x00only one of 'record' and 'alert' must be set")
    if not rule.record and not rule.alert:
        node = rec if rec is not None else alert
        where = f"{_pos(node)}: " if node is not None else ""
        errs.append(f"{where}\x00one of 'record' or 'alert' must be set")
    if not rule.expr:
        where = f"{_pos(expr)}: " if expr is not None else ""
        errs.append(f"{where}\x00field 'expr' must be set in rule")
    else:
        try:
            parse_expr(rule.expr, experimental=True)
        except PromQLError as exc:
            assert expr is not None
            errs.append(
                f"{_pos(expr)}: \x00could not parse expression: {_promql_msg(exc, rule.expr)}"
            )
    if rule.record:
        assert rec is not None
        where = f"{_pos(rec)}: "
        if rule.annotations:
            errs.append(f"{where}\x00invalid field 'annotations' in recording rule")
        if rule.for_ms:
            errs.append(f"{where}\x00invalid field 'for' in recording rule")
        if rule.keep_firing_for_ms:
            errs.append(f"{where}\x00invalid field 'keep_firing_for' in recording rule")
        if not METRIC_NAME_RE.match(rule.record):
            errs.append(f"{where}\x00invalid recording rule name: {rule.record}")
    for k in sorted(rule.labels):
        if not LABEL_NAME_RE.match(k) or k == "__name__":
            errs.append(f"\x00invalid label name: {k}")
    for k in sorted(rule.annotations):
        if not LABEL_NAME_RE.match(k):
            errs.append(f"\x00invalid annotation name: {k}")
    if rule.alert:
        name = "__alert_" + rule.alert
        for k in sorted(rule.labels):
            msg = check_template(rule.labels[k], name)
            if msg:
                errs.append(f'\x00label "{k}": {msg}')
        for k in sorted(rule.annotations):
            msg = check_template(rule.annotations[k], name)
            if msg:
                errs.append(f'\x00annotation "{k}": {msg}')
    return errs


def _promql_msg(exc: PromQLError, query: str) -> str:
    """Prometheus's ParseErr text: ``line:col: parse error: msg``."""
    msg = getattr(exc, "message", None) or str(exc)
    pos = getattr(exc, "position", None)
    if pos is None or pos < 0 or pos > len(query):
        return f"parse error: {msg}"
    line = query.count("\n", 0, pos) + 1
    col = pos - query.rfind("\n", 0, pos)
    return f"{line}:{col}: parse error: {msg}"


def parse_rules(text: str, filename: str) -> tuple[list[GroupSpec], list[str]]:
    """Parse rule-file `text`. Returns (groups, errors); groups are only usable
    when errors is empty. Each error starts with `filename`."""
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}:" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        return [], [f"{filename}: yaml:{where} {problem}"]
    if root is None:
        return [], []
    unmarshal: list[str] = []
    if not isinstance(root, yaml.MappingNode):
        return [], [
            f"{filename}: yaml: unmarshal errors:\n  line {root.start_mark.line + 1}: "
            f"cannot unmarshal {_go_type(root)} into rulefmt.RuleGroups"
        ]
    top = _fields(root, frozenset({"groups"}), "rulefmt.RuleGroups", unmarshal)
    groups_node = top.get("groups")
    group_nodes: list[yaml.Node] = []
    if groups_node is not None and not (
        isinstance(groups_node, yaml.ScalarNode) and groups_node.tag.endswith(":null")
    ):
        if isinstance(groups_node, yaml.SequenceNode):
            group_nodes = list(groups_node.value)
        else:
            unmarshal.append(
                f"  line {groups_node.start_mark.line + 1}: cannot unmarshal "
                f"{_go_type(groups_node)} into []rulefmt.RuleGroup"
            )
    parsed: list[
        tuple[yaml.Node, dict[str, yaml.Node], list[tuple[dict[str, yaml.Node], RuleSpec]]]
    ] = []
    dur_errs: list[str] = []
    groups: list[GroupSpec] = []
    for gnode in group_nodes:
        if not isinstance(gnode, yaml.MappingNode):
            unmarshal.append(
                f"  line {gnode.start_mark.line + 1}: cannot unmarshal {_go_type(gnode)} "
                "into rulefmt.RuleGroup"
            )
            continue
        g = _fields(gnode, _GROUP_FIELDS, "rulefmt.RuleGroup", unmarshal)
        rules: list[tuple[dict[str, yaml.Node], RuleSpec]] = []
        rnodes = g.get("rules")
        if isinstance(rnodes, yaml.SequenceNode):
            for rnode in rnodes.value:
                if not isinstance(rnode, yaml.MappingNode):
                    unmarshal.append(
                        f"  line {rnode.start_mark.line + 1}: cannot unmarshal "
                        f"{_go_type(rnode)} into rulefmt.RuleNode"
                    )
                    continue
                r = _fields(rnode, _RULE_FIELDS, "rulefmt.RuleNode", unmarshal)
                durs = {}
                for key in ("for", "keep_firing_for"):
                    raw = _scalar(r.get(key), "model.Duration", unmarshal)
                    try:
                        durs[key] = parse_duration_ms(raw) if raw else 0
                    except ValueError as exc:
                        dur_errs.append(f"{filename}: {exc}")
                        durs[key] = 0
                spec = RuleSpec(
                    expr=_scalar(r.get("expr"), "string", unmarshal),
                    record=_scalar(r.get("record"), "string", unmarshal),
                    alert=_scalar(r.get("alert"), "string", unmarshal),
                    for_ms=durs["for"],
                    keep_firing_for_ms=durs["keep_firing_for"],
                    labels=_string_map(r.get("labels"), unmarshal),
                    annotations=_string_map(r.get("annotations"), unmarshal),
                    line=rnode.start_mark.line + 1,
                )
                rules.append((r, spec))
        elif rnodes is not None and not (
            isinstance(rnodes, yaml.ScalarNode) and rnodes.tag.endswith(":null")
        ):
            unmarshal.append(
                f"  line {rnodes.start_mark.line + 1}: cannot unmarshal {_go_type(rnodes)} "
                "into []rulefmt.RuleNode"
            )
        optional: dict[str, int | None] = {}
        for key in ("interval", "query_offset"):
            raw = _scalar(g.get(key), "model.Duration", unmarshal)
            try:
                optional[key] = parse_duration_ms(raw) if raw else None
            except ValueError as exc:
                dur_errs.append(f"{filename}: {exc}")
                optional[key] = None
        limit_raw = _scalar(g.get("limit"), "int", unmarshal)
        limit = 0
        if limit_raw:
            try:
                limit = int(limit_raw)
            except ValueError:
                unmarshal.append(
                    f"  line {g['limit'].start_mark.line + 1}: cannot unmarshal !!str "
                    f"`{limit_raw}` into int"
                )
        parsed.append((gnode, g, rules))
        groups.append(
            GroupSpec(
                name=_scalar(g.get("name"), "string", unmarshal),
                file=filename,
                rules=tuple(spec for _, spec in rules),
                interval_ms=optional["interval"],
                query_offset_ms=optional["query_offset"],
                limit=limit,
                labels=_string_map(g.get("labels"), unmarshal),
            )
        )
    if unmarshal:
        return [], [f"{filename}: yaml: unmarshal errors:\n" + "\n".join(unmarshal)]
    if dur_errs:
        return [], dur_errs[:1]
    errors: list[str] = []
    seen: set[str] = set()
    for (gnode, _g, rules), group in zip(parsed, groups, strict=True):
        if not group.name:
            errors.append(f"{filename}: {_pos(gnode)}: Groupname must not be empty")
        if group.name in seen:
            errors.append(
                f'{filename}: {_pos(gnode)}: groupname: "{group.name}" is repeated in the same file'
            )
        seen.add(group.name)
        for k in sorted(group.labels):
            if not LABEL_NAME_RE.match(k) or k == "__name__":
                errors.append(f'{filename}: group "{group.name}": invalid label name: {k}')
        for i, (rnodes, spec) in enumerate(rules, start=1):
            for err in _validate_rule(rnodes, spec):
                where, _, msg = err.partition("\x00")
                errors.append(
                    f'{filename}: {where}group "{group.name}", rule {i}, "{spec.name}": {msg}'
                )
    return (groups if not errors else []), errors


def load_rule_file(path: str | os.PathLike[str]) -> list[GroupSpec]:
    """Read and validate one rule file; raise `RuleFileError` listing every problem."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise RuleFileError([f"{name}: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError as exc:
        raise RuleFileError([f"{name}: {exc}"]) from None
    groups, errors = parse_rules(text, name)
    if errors:
        raise RuleFileError(errors)
    return groups


def expand_rule_files(patterns: list[str] | tuple[str, ...], base: str | None = None) -> list[str]:
    """Glob `patterns` (relative to `base` when given) like Prometheus's rule_files."""
    out: list[str] = []
    for pat in patterns:
        full = pat if base is None or os.path.isabs(pat) else os.path.join(base, pat)
        matches = sorted(glob.glob(full))
        if not matches and not glob.has_magic(full):
            matches = [full]
        for m in matches:
            if m not in out:
                out.append(m)
    return out


def load_rule_files(files: list[str] | tuple[str, ...]) -> list[GroupSpec]:
    """Load every file; raise one `RuleFileError` with all files' problems."""
    groups: list[GroupSpec] = []
    errors: list[str] = []
    for f in files:
        try:
            groups.extend(load_rule_file(f))
        except RuleFileError as exc:
            errors.extend(exc.errors)
    if errors:
        raise RuleFileError(errors)
    return groups
