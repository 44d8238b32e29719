"""Rule-file loading and validation, including the seeds' rule files and promtool."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from vigil.promql.parser import parse_expr
from vigil.rules.check import check_rules
from vigil.rules.loader import RuleFileError, load_rule_file, parse_rules

from _support import SHARED

PROMTOOL = "/usr/bin/promtool"


def seed_rule_blocks() -> list[tuple[str, str]]:
    """(name, yaml) for every fenced YAML block in the seeds that is a rule file."""
    seeds = SHARED / "seeds"
    if not seeds.is_dir():
        return []
    out = []
    for path in sorted(seeds.glob("*.txt")):
        text = path.read_text(encoding="utf-8", errors="replace")
        for i, m in enumerate(re.finditer(r"```ya?ml\n(.*?)```", text, re.S)):
            block = m.group(1)
            if re.search(r"^groups:\s*$", block, re.M):
                out.append((f"{path.stem}_{i}", block))
    return out


SEED_BLOCKS = seed_rule_blocks()


@pytest.mark.skipif(not SEED_BLOCKS, reason="seeds not available")
def test_seed_rule_files_found() -> None:
    assert len(SEED_BLOCKS) >= 3  # alert_rules.yml, rules/alerts.yml, slo.yml


@pytest.mark.parametrize("name,block", SEED_BLOCKS, ids=[n for n, _ in SEED_BLOCKS])
def test_seed_rule_file_loads(name: str, block: str, tmp_path: Path) -> None:
    groups, errors = parse_rules(block, f"{name}.yml")
    assert errors == []
    assert groups and all(g.rules for g in groups)
    for g in groups:
        for r in g.rules:
            parse_expr(r.expr, experimental=True)
    f = tmp_path / f"{name}.yml"
    f.write_text(block, encoding="utf-8")
    ours = check_rules([str(f)], stdout=_Sink(), stderr=_Sink())
    if Path(PROMTOOL).exists():
        theirs = subprocess.run(
            [PROMTOOL, "check", "rules", str(f)], capture_output=True, timeout=60
        ).returncode
        assert ours == theirs == 0


class _Sink:
    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, s: str) -> int:
        self.parts.append(s)
        return len(s)

    def flush(self) -> None:
        pass

    def text(self) -> str:
        return "".join(self.parts)


BAD = """\
groups:
- name: a
  rules:
  - record: "bad name"
    expr: up
  - alert: X
    expr: up ==
  - alert: Y
    record: z
    expr: up
    annotations:
      a: "{{ .Foo"
- name: a
  rules: []
"""

EXPECTED_BAD = [
    'bad.yml: 4:13: group "a", rule 1, "bad name": invalid recording rule name: bad name',
    'bad.yml: 7:11: group "a", rule 2, "X": could not parse expression: 1:6: parse error: '
    "unexpected end of input",
    "bad.yml: 9:13: 8:12: group \"a\", rule 3, \"Y\": only one of 'record' and 'alert' must be set",
    'bad.yml: 9:13: group "a", rule 3, "Y": invalid field \'annotations\' in recording rule',
    'bad.yml: group "a", rule 3, "Y": annotation "a": template: __alert_Y:1: unclosed action',
    'bad.yml: 13:3: groupname: "a" is repeated in the same file',
]


def test_errors_name_file_line_column() -> None:
    groups, errors = parse_rules(BAD, "bad.yml")
    assert groups == []
    assert errors == EXPECTED_BAD


def test_unknown_field_and_bad_duration() -> None:
    _, errors = parse_rules(
        "groups:\n- name: a\n  rules:\n  - alert: x\n    expr: up\n    bogus: 1\n", "u.yml"
    )
    assert errors == [
        "u.yml: yaml: unmarshal errors:\n  line 6: field bogus not found in type rulefmt.RuleNode"
    ]
    _, errors = parse_rules(
        "groups:\n- name: a\n  rules:\n  - alert: x\n    expr: up\n    for: 5x\n", "u.yml"
    )
    # Prometheus 3's wording (prometheus/common >= 0.60); promtool 2.42 says
    # 'not a valid duration string: "5x"'.
    assert errors == ['u.yml: unknown unit "x" in duration "5x"']


def test_undefined_template_function_and_label_names() -> None:
    text = (
        "groups:\n- name: a\n  rules:\n  - alert: y\n    expr: up\n"
        '    labels:\n      "a-b": c\n    annotations:\n      s: "{{ nofunc 1 }}"\n'
    )
    _, errors = parse_rules(text, "f.yml")
    assert errors == [
        'f.yml: group "a", rule 1, "y": invalid label name: a-b',
        'f.yml: group "a", rule 1, "y": annotation "s": template: __alert_y:1: function "nofunc" not defined',
    ]


def test_prometheus3_group_fields() -> None:
    text = (
        "groups:\n- name: a\n  interval: 30s\n  query_offset: 1m\n  limit: 5\n"
        "  labels: {team: x}\n  rules:\n  - record: r\n    expr: up\n"
    )
    [g], errors = parse_rules(text, "f.yml")
    assert errors == []
    assert (g.interval_ms, g.query_offset_ms, g.limit, g.labels) == (
        30_000,
        60_000,
        5,
        {"team": "x"},
    )


def test_empty_file_and_missing_file(tmp_path: Path) -> None:
    assert parse_rules("", "e.yml") == ([], [])
    with pytest.raises(RuleFileError):
        load_rule_file(tmp_path / "missing.yml")


def test_check_rules_output(tmp_path: Path) -> None:
    good = tmp_path / "good.yml"
    good.write_text(
        "groups:\n- name: a\n  rules:\n  - record: job:up\n    expr: sum by (job) (up)\n"
    )
    bad = tmp_path / "bad.yml"
    bad.write_text(BAD)
    out, err = _Sink(), _Sink()
    assert check_rules([str(good)], stdout=out, stderr=err) == 0
    assert out.text() == f"Checking {good}\n  SUCCESS: 1 rules found\n\n"
    out, err = _Sink(), _Sink()
    assert check_rules([str(bad)], stdout=out, stderr=err) == 1
    assert err.text().startswith("  FAILED:\n")


@pytest.mark.interop
@pytest.mark.skipif(not shutil.which(PROMTOOL), reason="promtool not installed")
def test_check_rules_matches_promtool(tmp_path: Path) -> None:
    cases = {
        "good.yml": "groups:\n- name: a\n  rules:\n  - record: job:up\n    expr: sum by (job) (up)\n"
        "  - alert: Down\n    expr: up == 0\n    for: 1m\n",
        "bad.yml": BAD,
        "dup.yml": "groups:\n- name: a\n  rules:\n  - record: r\n    expr: up\n  - record: r\n    expr: up\n",
        "unk.yml": "grups: []\n",
    }
    for name, text in cases.items():
        f = tmp_path / name
        f.write_text(text)
        out, err = _Sink(), _Sink()
        cwd = os.getcwd()
        os.chdir(tmp_path)
        try:
            rc = check_rules([name], stdout=out, stderr=err)
            p = subprocess.run(
                [PROMTOOL, "check", "rules", name], capture_output=True, text=True, timeout=60
            )
        finally:
            os.chdir(cwd)
        assert rc == p.returncode, name
        assert out.text() == p.stdout, name
        assert err.text() == p.stderr, name
