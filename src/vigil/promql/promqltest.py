"""Runner for Prometheus's scripted PromQL tests (the `promqltest` `.test` format).

A script is a sequence of commands: `load <interval>` blocks of series in the
series notation (`a+bxN`, `a-bxN`, `axN`, `_`, `_xN`, `stale`, `Inf`, `NaN`),
`clear`, and `eval instant at <t> <expr>` / `eval range from <t> to <t> step <d>
<expr>` followed by `expect ...` lines and the expected result. Each file runs
against a fresh `MemoryStorage` and a `vigil.promql.engine.Engine`.

Native-histogram material (`{{...}}` samples, `load_with_nhcb`) is skipped: the
load keeps its float series, and every eval whose selectors could touch a skipped
series, or whose expected result holds a histogram, is reported as skipped.
Instant evals are also re-run as a range query around their time and compared at
that step, as Prometheus's runner does.

Entry points: `run_file(path) -> FileReport`, `run_script(text, name)`, and
`main(argv) -> int` (exit status 1 when any case failed).
"""

from __future__ import annotations

import itertools
import math
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vigil.model.duration import parse_duration
from vigil.model.labels import METRIC_NAME, Labels
from vigil.model.samples import STALE_NAN
from vigil.promql.errors import PromQLError
from vigil.promql.parser import ast, parse_expr
from vigil.promql.parser.functions import get_function
from vigil.promql.parser.lexer import STRING, Lexer
from vigil.storage.memory import MemoryStorage

EPSILON = 1e-6  # relative tolerance, as Prometheus's almost.Equal
_MIN_NORMAL = 2.2250738585072014e-308

_PAT_LOAD = re.compile(r"^load(?:_(with_nhcb))?\s+(.+?)$")
_PAT_INSTANT = re.compile(
    r"^eval(?:_(fail|warn|ordered|info))?\s+instant\s+(?:at\s+(.+?))?\s+(.+)$"
)
_PAT_RANGE = re.compile(
    r"^eval(?:_(fail|warn|info))?\s+range\s+from\s+(.+)\s+to\s+(.+)\s+step\s+(.+?)\s+(.+)$"
)
_PAT_EXPECT = re.compile(
    r"^expect\s+(ordered|fail|warn|no_warn|info|no_info)(?:\s+(regex|msg):(.+))?$"
)
_PAT_EXPECT_RANGE = re.compile(r"^expect range vector\s+from\s+(.+)\s+to\s+(.+)\s+step\s+(.+)$")
_NUM = r"(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[iI][nN][fF]|[nN][aA][nN]"
_PAT_ITEM = re.compile(
    rf"^(?P<a>[+-]?(?:{_NUM}))(?:(?P<op>[+-])(?P<b>{_NUM}))?(?:x(?P<n>[0-9]+))?$"
)
_REQUERY_SKIP = re.compile(r"\b(?:start|end|step|range)\(\)")


class ScriptError(ValueError):
    """The script itself is malformed; names the line."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line


@dataclass
class Expect:
    kind: str  # ordered, fail, warn, no_warn, info, no_info
    mode: str | None = None  # "msg" / "regex" / None (anything)
    text: str = ""

    def matches(self, message: str) -> bool:
        if self.mode == "msg":
            return message == self.text
        if self.mode == "regex":
            return re.fullmatch(self.text, message) is not None or (
                re.search(self.text, message) is not None
            )
        return True


@dataclass
class EvalCmd:
    line: int
    expr: str
    instant: bool
    t: int = 0
    start: int = 0
    end: int = 0
    step: int = 0
    expects: list[Expect] = field(default_factory=list)
    expected: dict[Labels, list[float | None]] = field(default_factory=dict)
    positions: dict[Labels, int] = field(default_factory=dict)
    scalar: float | None = None
    expected_string: str | None = None
    range_vector: bool = False
    skip: str | None = None

    def has(self, kind: str) -> bool:
        return any(e.kind == kind for e in self.expects)


@dataclass
class LoadCmd:
    line: int
    gap: int
    series: dict[Labels, list[float | None]] = field(default_factory=dict)
    tainted: list[Labels] = field(default_factory=list)


@dataclass
class ClearCmd:
    line: int


@dataclass
class CaseFailure:
    line: int
    expr: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.expr}\n    {self.message}"


@dataclass
class FileReport:
    """Outcome of one script: counts and the details of each failure."""

    name: str
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    failures: list[CaseFailure] = field(default_factory=list)
    skips: list[tuple[int, str]] = field(default_factory=list)

    def summary(self) -> str:
        return f"{self.name}: {self.passed} passed, {self.failed} failed, {self.skipped} skipped"


# ---------------------------------------------------------------------------
# Parsing scripts


def almost_equal(a: float, b: float, epsilon: float = EPSILON) -> bool:
    """Prometheus's `almost.Equal`: NaN equals NaN; relative tolerance otherwise."""
    if math.isnan(a) and math.isnan(b):
        return True
    if a == b:
        return True
    abs_sum = abs(a) + abs(b)
    diff = abs(a - b)
    if a == 0 or b == 0 or abs_sum < _MIN_NORMAL:
        return diff < epsilon * _MIN_NORMAL
    return diff / min(abs_sum, sys.float_info.max) < epsilon


def _number(text: str) -> float:
    low = text.lower().lstrip("+")
    if low in ("inf", "-inf", "nan"):
        return float(low)
    if re.fullmatch(r"[+-]?0[xX][0-9a-fA-F]+", text):
        return float(int(text, 16))
    return float(text)


def parse_values(items: Sequence[str], line: int) -> list[float | None]:
    """Expand series-notation items; None marks an omitted sample."""
    out: list[float | None] = []
    for item in items:
        if item == "_":
            out.append(None)
            continue
        if item.startswith("_x"):
            out.extend([None] * int(item[2:]))
            continue
        if item == "stale":
            out.append(STALE_NAN)
            continue
        m = _PAT_ITEM.match(item)
        if m is None:
            raise ScriptError(line, f"invalid series value {item!r}")
        a = _number(m.group("a"))
        n = m.group("n")
        if n is None:
            if m.group("b") is not None:
                raise ScriptError(line, f"invalid series value {item!r}: missing xN")
            out.append(a)
            continue
        delta = 0.0
        if m.group("b") is not None:
            delta = _number(m.group("b")) * (-1.0 if m.group("op") == "-" else 1.0)
        for _ in range(int(n) + 1):
            out.append(a)
            a += delta  # accumulate like Prometheus so float rounding matches
    return out


def parse_series_line(text: str, line: int) -> tuple[Labels, list[str]]:
    """`metric{l="v"} items...` -> (labels, raw value items)."""
    lx = Lexer(text)
    pairs: list[tuple[str, str]] = []
    try:
        tok = lx.next()
        end = 0
        if tok.kind not in ("{", "EOF") and tok.kind != STRING:
            pairs.append((METRIC_NAME, tok.val))
            end = tok.end
            if lx.pos < len(text) and text[lx.pos] == "{":
                tok = lx.next()
        if tok.kind == "{":
            while True:
                name_tok = lx.next()
                if name_tok.kind == "}":
                    break
                if name_tok.kind == ",":
                    continue
                name = name_tok.text if name_tok.kind == STRING else name_tok.val
                nxt = lx.next()
                if nxt.kind in ("}", ",") and name_tok.kind == STRING:
                    pairs.append((METRIC_NAME, name))
                    if nxt.kind == "}":
                        break
                    continue
                if nxt.kind != "=":
                    raise ScriptError(line, f"expected '=' after label {name!r} in {text!r}")
                val = lx.next()
                if val.kind != STRING:
                    raise ScriptError(line, f"expected a quoted value for label {name!r}")
                pairs.append((name, val.text))
            end = lx.pos
    except PromQLError as exc:
        raise ScriptError(line, f"invalid series {text!r}: {exc}") from None
    return Labels.from_pairs(pairs), text[end:].split()


def parse_script(text: str) -> list[LoadCmd | ClearCmd | EvalCmd]:
    """Parse a whole script. Raises ScriptError naming the line."""
    lines = []
    for raw in text.split("\n"):
        s = raw.strip()
        lines.append("" if s.startswith("#") else s)
    cmds: list[LoadCmd | ClearCmd | EvalCmd] = []
    i = 0
    while i < len(lines):
        s = lines[i]
        if not s:
            i += 1
            continue
        word = s.split(None, 1)[0].lower()
        if word == "clear":
            cmds.append(ClearCmd(i + 1))
            i += 1
        elif word.startswith("load"):
            cmd, i = _parse_load(lines, i)
            cmds.append(cmd)
        elif word.startswith("eval"):
            ev, i = _parse_eval(lines, i)
            cmds.append(ev)
        else:
            raise ScriptError(i + 1, f"invalid command {s!r}")
    return cmds


def _duration(text: str, line: int) -> int:
    try:
        return parse_duration(text.strip())
    except ValueError as exc:
        raise ScriptError(line, f"invalid duration {text!r}: {exc}") from None


def _parse_load(lines: list[str], i: int) -> tuple[LoadCmd, int]:
    m = _PAT_LOAD.match(lines[i])
    if m is None:
        raise ScriptError(i + 1, "invalid load command (load[_with_nhcb] <step:duration>)")
    cmd = LoadCmd(i + 1, _duration(m.group(2), i + 1))
    nhcb = m.group(1) is not None
    i += 1
    while i < len(lines) and lines[i]:
        labels, items = parse_series_line(lines[i], i + 1)
        if any("{{" in it for it in items):
            cmd.tainted.append(labels)
        else:
            cmd.series[labels] = parse_values(items, i + 1)
            name = labels.get(METRIC_NAME)
            if nhcb and name.endswith("_bucket"):
                base = name[: -len("_bucket")]
                cmd.tainted.append(Labels.from_pairs([*labels.without("le"), (METRIC_NAME, base)]))
        i += 1
    return cmd, i


def _parse_eval(lines: list[str], i: int) -> tuple[EvalCmd, int]:
    s = lines[i]
    mi, mr = _PAT_INSTANT.match(s), _PAT_RANGE.match(s)
    if mi is None and mr is None:
        raise ScriptError(i + 1, f"invalid eval command {s!r}")
    if mi is not None:
        mod = mi.group(1)
        ev = EvalCmd(i + 1, mi.group(3), True, t=_duration(mi.group(2) or "0", i + 1))
    else:
        assert mr is not None
        mod = mr.group(1)
        ev = EvalCmd(
            i + 1,
            mr.group(5),
            False,
            start=_duration(mr.group(2), i + 1),
            end=_duration(mr.group(3), i + 1),
            step=_duration(mr.group(4), i + 1),
        )
    if mod:
        ev.expects.append(Expect(mod))
    pos = 0
    i += 1
    while i < len(lines) and lines[i]:
        s = lines[i]
        i += 1
        rv = _PAT_EXPECT_RANGE.match(s)
        if rv is not None:
            ev.range_vector = True
            ev.start = _duration(rv.group(1), i)
            ev.end = ev.t = _duration(rv.group(2), i)
            ev.step = _duration(rv.group(3), i)
            continue
        if s.startswith("expect string"):
            ev.expected_string = _go_unquote(s[len("expect string") :].strip(), i)
            continue
        if s.split(None, 1)[0] == "expect":
            m = _PAT_EXPECT.match(s)
            if m is None:
                raise ScriptError(i, f"invalid expect statement {s!r}")
            ev.expects.append(Expect(m.group(1), m.group(2), (m.group(3) or "").strip()))
            continue
        if s.startswith(("expected_fail_message", "expected_fail_regexp")):
            mode = "msg" if s.startswith("expected_fail_message") else "regex"
            ev.expects.append(Expect("fail", mode, s.split(None, 1)[1].strip()))
            continue
        if "{{" in s:
            ev.skip = "expects a native histogram"
            continue
        try:
            ev.scalar = _number(s)
            continue
        except ValueError:
            pass
        labels, items = parse_series_line(s, i)
        vals = parse_values(items, i)
        if len(vals) > 1 and ev.instant and not ev.range_vector:
            raise ScriptError(i, "multiple values in an instant evaluation")
        pos += 1
        ev.expected[labels] = vals
        ev.positions[labels] = pos
    return ev, i


def _go_unquote(text: str, line: int) -> str:
    lx = Lexer(text)
    try:
        tok = lx.next()
    except PromQLError as exc:
        raise ScriptError(line, f"expected a quoted string: {exc}") from None
    if tok.kind != STRING or tok.end != len(text):
        raise ScriptError(line, "expected string literal not valid - a quoted string is required")
    return tok.text


# ---------------------------------------------------------------------------
# Running


EngineFactory = Callable[[MemoryStorage], Any]


def _default_engine(storage: MemoryStorage) -> Any:
    from vigil.promql.engine import Engine  # lazily: the engine is a separate module

    return Engine(storage, lookback_delta_ms=300_000)


def _engine_functions() -> frozenset[str] | None:
    try:
        from vigil.promql.functions_table import implemented
    except ImportError:
        return None
    return implemented()


def _walk(node: ast.Expr) -> list[ast.Expr]:
    out: list[ast.Expr] = []
    stack = [node]
    while stack:
        n = stack.pop()
        out.append(n)
        for name in ("expr", "lhs", "rhs", "param", "selector"):
            child = getattr(n, name, None)
            if isinstance(child, ast.Expr):
                stack.append(child)
        if isinstance(n, ast.Call):
            stack.extend(n.args)
    return out


def _skip_reason(node: ast.Expr, tainted: list[Labels], known: frozenset[str] | None) -> str | None:
    for n in _walk(node):
        if isinstance(n, ast.Call):
            fn = get_function(n.func)
            if fn is not None and fn.experimental and known is not None and n.func not in known:
                return f"experimental function {n.func}() not implemented"
        if isinstance(n, ast.VectorSelector) and tainted:
            for lbls in tainted:
                if all(m.matches(lbls.get(m.name)) for m in n.matchers):
                    return f"touches native-histogram series {lbls}"
    return None


class _Runner:
    def __init__(self, name: str, factory: EngineFactory) -> None:
        self.report = FileReport(name)
        self.factory = factory
        self.storage = MemoryStorage()
        self.engine: Any = None
        self.tainted: list[Labels] = []
        self.known = _engine_functions()

    def run(self, cmds: list[LoadCmd | ClearCmd | EvalCmd]) -> FileReport:
        for cmd in cmds:
            if isinstance(cmd, ClearCmd):
                self.storage = MemoryStorage()
                self.engine = None
                self.tainted = []
            elif isinstance(cmd, LoadCmd):
                self.load(cmd)
            else:
                self.eval(cmd)
        return self.report

    def load(self, cmd: LoadCmd) -> None:
        app = self.storage.appender()
        for labels, vals in cmd.series.items():
            for k, v in enumerate(vals):
                if v is not None:
                    app.append(labels, k * cmd.gap, v)
        app.commit()
        self.tainted.extend(cmd.tainted)

    def skip(self, ev: EvalCmd, reason: str) -> None:
        self.report.skipped += 1
        self.report.skips.append((ev.line, reason))

    def fail(self, ev: EvalCmd, message: str) -> None:
        self.report.failed += 1
        self.report.failures.append(CaseFailure(ev.line, ev.expr, message))

    def eval(self, ev: EvalCmd) -> None:
        if ev.skip:
            return self.skip(ev, ev.skip)
        expect_fail = ev.has("fail")
        try:
            node = parse_expr(ev.expr, experimental=True)
        except PromQLError as exc:
            if expect_fail:
                return self._check_failure(ev, exc)
            return self.fail(ev, f"parse error: {exc}")
        reason = _skip_reason(node, self.tainted, self.known)
        if reason:
            return self.skip(ev, reason)
        if self.engine is None:
            self.engine = self.factory(self.storage)
        try:
            if ev.instant:
                result = self.engine.instant_query(node, ev.t)
            else:
                result = self.engine.range_query(node, ev.start, ev.end, ev.step)
        except PromQLError as exc:
            if expect_fail:
                return self._check_failure(ev, exc)
            return self.fail(ev, f"error evaluating query: {exc}")
        except Exception as exc:  # an engine bug must not stop the run
            return self.fail(ev, f"engine crashed: {type(exc).__name__}: {exc}")
        if expect_fail:
            return self.fail(ev, "expected an error but got none")
        err = self._check_annotations(ev, result) or self.compare(ev, result)
        if err is None and ev.instant and not ev.range_vector and ev.expected_string is None:
            err = self._check_range_mode(ev, node, result)
        if err:
            return self.fail(ev, err)
        self.report.passed += 1

    def _check_failure(self, ev: EvalCmd, exc: Exception) -> None:
        message = getattr(exc, "message", None) or str(exc)
        for e in ev.expects:
            if e.kind == "fail" and not (e.matches(str(exc)) or e.matches(message)):
                return self.fail(ev, f"expected error matching {e.mode} {e.text!r}, got: {exc}")
        self.report.passed += 1

    def _check_annotations(self, ev: EvalCmd, result: Any) -> str | None:
        for kind, found in (("warn", list(result.warnings)), ("info", list(result.infos))):
            wanted = [e for e in ev.expects if e.kind == kind]
            if wanted and not found:
                return f"expected {kind} annotations but none were found"
            for e in wanted:
                if e.mode and not any(e.matches(a) for a in found):
                    return f"expected {kind} annotation matching {e.text!r}, found {found}"
            if ev.has("no_" + kind) and found:
                return f"unexpected {kind} annotations: {found}"
        return None

    def _check_range_mode(self, ev: EvalCmd, node: ast.Expr, inst: Any) -> str | None:
        if _REQUERY_SKIP.search(ev.expr) or inst.result_type not in ("vector", "scalar"):
            return None
        try:
            res = self.engine.range_query(node, ev.t - 60_000, ev.t + 60_000, 60_000)
        except PromQLError as exc:
            return f"error evaluating query in range mode: {exc}"
        if ev.has("ordered"):
            return None
        samples = []
        for s in res.value:
            hit = [k for k, t in enumerate(s.timestamps.tolist()) if t == ev.t]
            if hit:
                samples.append((s.labels, float(s.values[hit[0]])))
        if inst.result_type == "scalar":
            if not samples:
                return "range mode: no scalar value at the evaluation time"
            return self._cmp_scalar(ev, samples[0][1], "range mode: ")
        return self._cmp_vector(ev, samples, "range mode: ")

    def compare(self, ev: EvalCmd, result: Any) -> str | None:
        rt = result.result_type
        if rt == "string":
            if ev.expected_string != result.value.v:
                return f'expected string "{ev.expected_string}" but got "{result.value.v}"'
            return None
        if rt == "scalar":
            return self._cmp_scalar(ev, result.value.v, "")
        if rt == "vector":
            return self._cmp_vector(ev, [(s.labels, s.v) for s in result.value], "")
        return self._cmp_matrix(ev, result.value)

    def _cmp_scalar(self, ev: EvalCmd, got: float, prefix: str) -> str | None:
        if ev.scalar is None:
            return f"{prefix}expected vector or matrix result, but got scalar {got}"
        if not almost_equal(ev.scalar, got):
            return f"{prefix}expected scalar {ev.scalar} but got {got}"
        return None

    def _cmp_vector(self, ev: EvalCmd, got: list[tuple[Labels, float]], prefix: str) -> str | None:
        if ev.scalar is not None:
            return f"{prefix}expected scalar result, but got vector {got}"
        seen = set()
        for k, (labels, v) in enumerate(got):
            if labels not in ev.expected:
                return f"{prefix}unexpected metric {labels} in result, has value {v}"
            if ev.has("ordered") and ev.positions[labels] != k + 1:
                return (
                    f"{prefix}expected metric {labels} at position {ev.positions[labels]} "
                    f"but was at {k + 1}"
                )
            want = ev.expected[labels][0]
            if want is None or not almost_equal(want, v):
                return f"{prefix}expected {want} for {labels} but got {v}"
            seen.add(labels)
        for labels, vals in ev.expected.items():
            if labels not in seen:
                return f"{prefix}expected metric {labels} with {vals} not found"
        return None

    def _cmp_matrix(self, ev: EvalCmd, series: list[Any]) -> str | None:
        if ev.has("ordered"):
            return "expected ordered result, but query returned a matrix"
        if ev.scalar is not None:
            return "expected scalar result, but got matrix"
        for a, b in itertools.pairwise(series):
            if a.labels > b.labels:
                return f"matrix is not sorted: {b.labels} after {a.labels}"
        seen = set()
        for s in series:
            if s.labels not in ev.expected:
                return f"unexpected metric {s.labels} in result"
            seen.add(s.labels)
            want = [
                (ev.start + k * ev.step, v)
                for k, v in enumerate(ev.expected[s.labels])
                if v is not None
            ]
            if want and want[-1][0] > ev.end:
                return (
                    f"expected {len(ev.expected[s.labels])} points for {s.labels}, beyond the range"
                )
            got = list(zip(s.timestamps.tolist(), s.values.tolist(), strict=True))
            if len(want) != len(got):
                return f"expected {len(want)} points for {s.labels}, got {len(got)}: {got}"
            for (wt, wv), (gt, gv) in zip(want, got, strict=True):
                if wt != gt:
                    return f"expected a point at t={wt} for {s.labels}, got t={gt}"
                if not almost_equal(wv, gv):
                    return f"expected {wv} at t={wt} for {s.labels} but got {gv}"
        for labels in ev.expected:
            if labels not in seen:
                return f"expected metric {labels} not found"
        return None


def run_script(
    text: str, name: str = "<script>", engine_factory: EngineFactory | None = None
) -> FileReport:
    """Run a script's text. Raises ScriptError if the script is malformed."""
    cmds = parse_script(text)
    return _Runner(name, engine_factory or _default_engine).run(cmds)


def run_file(path: str | Path, engine_factory: EngineFactory | None = None) -> FileReport:
    """Run one `.test` file against a fresh MemoryStorage and the engine."""
    p = Path(path)
    return run_script(p.read_text(encoding="utf-8"), str(p), engine_factory)


def main(argv: Sequence[str] | None = None) -> int:
    """`vigil promqltest FILE...`: print a report per file; 1 when anything failed."""
    args = list(sys.argv[1:] if argv is None else argv)
    verbose = "-v" in args
    files = [a for a in args if a != "-v"]
    if not files:
        print("usage: promqltest [-v] FILE...", file=sys.stderr)
        return 2
    status = 0
    for f in files:
        try:
            report = run_file(f)
        except (OSError, ScriptError) as exc:
            print(f"{f}: error: {exc}")
            status = 1
            continue
        for failure in report.failures:
            print(f"FAIL {f}:{failure}")
        if verbose:
            for line, reason in report.skips:
                print(f"SKIP {f}:{line}: {reason}")
        print(report.summary())
        if report.failed:
            status = 1
    return status


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
