"""Prometheus's promqltest scripts: every eval parses, and each file runs clean.

The `.test` files live outside the repository (shared/conformance/promqltest); the
tests skip when they are absent. Runner logic is also tested on small scripts
with a tiny fake engine, so it is checked independently of the real engine.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vigil.model.labels import Labels
from vigil.model.samples import is_stale
from vigil.promql.errors import ExecutionError, ParseError
from vigil.promql.parser import ast, parse_expr
from vigil.promql.promqltest import (
    EvalCmd,
    ScriptError,
    almost_equal,
    main,
    parse_script,
    parse_values,
    run_file,
    run_script,
)
from vigil.promql.result import QueryResult, Sample, Scalar, Series
from vigil.storage.memory import MemoryStorage

CONFORMANCE = Path(__file__).resolve().parents[2].parent / "shared/conformance/promqltest"
FILES = sorted(CONFORMANCE.glob("*.test")) if CONFORMANCE.is_dir() else []
needs_files = pytest.mark.skipif(not FILES, reason=f"no conformance files in {CONFORMANCE}")


def _evals(path: Path) -> list[EvalCmd]:
    return [c for c in parse_script(path.read_text(encoding="utf-8")) if isinstance(c, EvalCmd)]


@needs_files
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_eval_expression_parses(path: Path) -> None:
    problems = []
    for ev in _evals(path):
        expects_parse_error = any(e.kind == "fail" and "parse error" in e.text for e in ev.expects)
        try:
            parse_expr(ev.expr, experimental=True)
        except ParseError as exc:
            if not expects_parse_error:
                problems.append(f"line {ev.line}: {ev.expr}: {exc}")
        else:
            if expects_parse_error:
                problems.append(f"line {ev.line}: {ev.expr}: parsed but should not")
    assert not problems, "\n".join(problems)


@needs_files
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_conformance_file(path: Path) -> None:
    report = run_file(path)
    assert report.failed == 0, report.summary() + "\n" + "\n".join(map(str, report.failures))


# -- runner logic, against a fake engine -------------------------------------------------


class FakeEngine:
    """Answers scalar literals and instant selectors (newest sample in 5m, stale = gone)."""

    def __init__(self, storage: MemoryStorage) -> None:
        self.storage = storage

    def instant_query(self, node: ast.Expr, t: int) -> QueryResult:
        if isinstance(node, ast.NumberLiteral):
            return QueryResult("scalar", Scalar(t, node.value))
        if isinstance(node, ast.VectorSelector):
            q = self.storage.querier(t - 300_000, t)
            out = []
            for s in q.select(list(node.matchers), t - 300_000, t):
                if len(s.values) and not is_stale(float(s.values[-1])):
                    out.append(Sample(s.labels, t, float(s.values[-1])))
            out.sort(key=lambda s: s.labels)
            return QueryResult("vector", out, warnings=["PromQL warning: fake (1:1)"])
        raise ExecutionError("fake engine: unsupported")

    def range_query(self, node: ast.Expr, start: int, end: int, step: int) -> QueryResult:
        points: dict[Labels, list[tuple[int, float]]] = {}
        for t in range(start, end + 1, step):
            res = self.instant_query(node, t)
            if isinstance(res.value, Scalar):
                points.setdefault(Labels.EMPTY, []).append((t, res.value.v))
                continue
            for s in res.value:
                assert isinstance(s, Sample)
                points.setdefault(s.labels, []).append((t, s.v))
        series = [
            Series(lbls, np.array([p[0] for p in pts]), np.array([p[1] for p in pts]))
            for lbls, pts in sorted(points.items())
        ]
        return QueryResult("matrix", series)


def _fake(storage: MemoryStorage) -> Any:
    return FakeEngine(storage)


def test_series_notation_expands_like_prometheus() -> None:
    assert parse_values(["1+2x3"], 1) == [1, 3, 5, 7]
    assert parse_values(["10-1x2", "_", "_x2", "5x1"], 1) == [10, 9, 8, None, None, None, 5, 5]
    assert parse_values(["-1e3", "Inf"], 1) == [-1000.0, float("inf")]
    stale = parse_values(["stale"], 1)[0]
    assert stale is not None and stale != stale  # NaN
    with pytest.raises(ScriptError, match="line 7"):
        parse_values(["1+x"], 7)


def test_almost_equal_matches_prometheus_tolerance() -> None:
    assert almost_equal(1.0, 1.0 + 1e-9)
    assert not almost_equal(1.0, 1.001)
    assert almost_equal(float("nan"), float("nan"))
    assert not almost_equal(0.0, 1e-12)


SCRIPT = """
# comment
load 1m
  metric{job="a"} 1+1x5
  metric{job="b"} 10 _ stale
  hist {{schema:0 sum:1 count:1}}

eval instant at 2m metric
  expect warn
  metric{job="a"} 3

eval instant at 2m 42
  42

eval instant at 2m metric
  metric{job="a"} 4

eval instant at 1m hist
  {__name__="hist"} 1

eval instant at 1m rate(metric[1m])
  expect fail msg: fake engine: unsupported

eval instant at 1m sum(
  expect fail

eval instant at 1m rate(metric[1m])
  expect fail msg: something else
"""


def test_runner_counts_pass_fail_skip_with_details() -> None:
    report = run_script(SCRIPT, "inline", _fake)
    assert (report.passed, report.failed, report.skipped) == (4, 2, 1)
    lines = sorted(f.line for f in report.failures)
    assert lines == [15, 27]
    wrong_value = next(f for f in report.failures if f.line == 15)
    assert "expected 4.0" in wrong_value.message and "got 3.0" in wrong_value.message
    assert report.skips[0][0] == 18


def test_script_errors_name_the_line() -> None:
    with pytest.raises(ScriptError, match="line 2"):
        parse_script("load 1m\n  x 1+\n")
    with pytest.raises(ScriptError, match="invalid command"):
        parse_script("bogus\n")
    with pytest.raises(ScriptError, match="invalid duration"):
        parse_script("eval instant at 5m1h x\n")


def test_main_reports_and_exit_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.test"
    good.write_text("eval instant at 0 1 + 1\n  2\n", encoding="utf-8")
    bad = tmp_path / "bad.test"
    bad.write_text("eval instant at 0 1 + 1\n  3\n", encoding="utf-8")
    assert main([str(good)]) == 0
    assert main([str(good), str(bad)]) == 1
    out = capsys.readouterr().out
    assert re.search(r"good.test: 1 passed, 0 failed, 0 skipped", out)
    assert "FAIL" in out and "expected scalar 3.0 but got 2.0" in out
    assert main([]) == 2
    assert main([str(tmp_path / "missing.test")]) == 1
