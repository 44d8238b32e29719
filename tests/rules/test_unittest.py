"""promtool's rule unit-test format: our runner, and promtool's verdicts on the same files."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from vigil.rules.unittest import go_duration, test_rules

PROMTOOL = "/usr/bin/promtool"

RULES = """
groups:
- name: g
  rules:
  - record: job:x:sum
    expr: sum by (job) (x)
  - alert: XHigh
    expr: x > 5
    for: 2m
    labels:
      severity: page
    annotations:
      summary: "{{ $labels.instance }} is {{ $value | humanize }}"
"""

PASSING = """
rule_files: [rules.yml]
evaluation_interval: 1m
tests:
- interval: 1m
  input_series:
  - series: 'x{job="a",instance="i1"}'
    values: '1 10 10 10 10'
  - series: 'x{job="a",instance="i2"}'
    values: '1+1x4'
  alert_rule_test:
  - eval_time: 4m
    alertname: XHigh
    exp_alerts:
    - exp_labels: {severity: page, job: a, instance: i1}
      exp_annotations: {summary: "i1 is 10"}
  - eval_time: 1m
    alertname: XHigh
    exp_alerts: []
  promql_expr_test:
  - expr: job:x:sum
    eval_time: 2m
    exp_samples:
    - labels: 'job:x:sum{job="a"}'
      value: 13
  - expr: scalar(sum(x))
    eval_time: 0m
    exp_samples:
    - labels: '{}'
      value: 2
"""

FAILING = """
rule_files: [rules.yml]
tests:
- interval: 1m
  name: failing
  input_series:
  - series: 'x{job="a",instance="i1"}'
    values: '1 10 10 10 10'
  alert_rule_test:
  - eval_time: 4m
    alertname: XHigh
    exp_alerts:
    - exp_labels: {severity: warn, job: a, instance: i1}
  promql_expr_test:
  - expr: job:x:sum
    eval_time: 2m
    exp_samples:
    - labels: 'job:x:sum{job="a"}'
      value: 12
"""


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


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "rules.yml").write_text(RULES)
    (tmp_path / "pass.yml").write_text(PASSING)
    (tmp_path / "fail.yml").write_text(FAILING)
    return tmp_path


def test_go_duration() -> None:
    assert [go_duration(x) for x in (0, 500, 1500, 240_000, 3_600_000)] == [
        "0s",
        "500ms",
        "1.5s",
        "4m0s",
        "1h0m0s",
    ]


def test_passing_and_failing(files: Path) -> None:
    out, err = _Sink(), _Sink()
    assert test_rules([str(files / "pass.yml")], stdout=out, stderr=err) == 0
    assert out.text().endswith("  SUCCESS\n\n") and err.text() == ""
    out, err = _Sink(), _Sink()
    assert test_rules([str(files / "fail.yml")], stdout=out, stderr=err) == 1
    assert "    name: failing,\n    alertname: XHigh, time: 4m, \n" in err.text()
    assert 'got: {__name__="job:x:sum", job="a"} 1E+01' in err.text()


@pytest.mark.interop
@pytest.mark.skipif(not shutil.which(PROMTOOL), reason="promtool not installed")
@pytest.mark.parametrize("name", ["pass.yml", "fail.yml"])
def test_same_verdict_and_output_as_promtool(
    files: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(files)
    out, err = _Sink(), _Sink()
    rc = test_rules([name], stdout=out, stderr=err)
    p = subprocess.run(
        [PROMTOOL, "test", "rules", name], capture_output=True, text=True, timeout=60
    )
    assert rc == p.returncode
    assert out.text() == p.stdout
    assert err.text() == p.stderr
