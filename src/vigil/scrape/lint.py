"""`vigil check metrics`: the metric-naming linter of ``promtool check metrics``.

The rules and their wording follow Prometheus's promlint (checked against promtool
2.42 in tests/scrape/test_lint.py): help text, counter `_total` suffix, reserved
histogram/summary suffixes and labels, base units, abbreviated units, the type in
the name, ':' and camelCase in names, and (as newer promtool does) duplicate series.
Problems are reported per family as ``"<family> <text>"``, sorted by family then text,
one per offending sample where promtool repeats them.
"""

from __future__ import annotations

import re

from vigil.scrape._expo_common import MetricMetadata
from vigil.scrape._series import OM_SERIES, PROM_SERIES
from vigil.scrape.exposition import ExpositionError, parse

EXIT_OK = 0
EXIT_PARSE_ERROR = 1
EXIT_LINT_PROBLEMS = 3

_BASE_UNITS = ("amperes", "bytes", "celsius", "grams", "joules", "kelvin", "meters", "metres",
               "seconds", "volts")  # fmt: skip
_UNITS: dict[str, str] = {u: u for u in _BASE_UNITS} | {
    "minutes": "seconds", "hours": "seconds", "days": "seconds", "weeks": "seconds",
    "kelvins": "kelvin", "fahrenheit": "celsius", "rankine": "celsius",
    "inches": "meters", "yards": "meters", "miles": "meters",
    "bits": "bytes", "calories": "joules", "pounds": "grams", "ounces": "grams",
}  # fmt: skip
_UNIT_PREFIXES = ("pico", "nano", "micro", "milli", "centi", "deci", "deca", "hecto", "kilo",
                  "kibi", "mega", "mibi", "giga", "gibi", "tera", "tebi", "peta", "pebi")  # fmt: skip
_ABBREVIATIONS = ("s", "ms", "us", "ns", "sec", "b", "kb", "mb", "gb", "tb", "pb", "m", "h", "d")
_TYPE_NAMES = ("counter", "gauge", "summary", "untyped", "histogram", "gauge_histogram")
_CAMEL = re.compile(r"[a-z][A-Z]")
_TEXT_TYPE = {"unknown": "untyped"}


def _unit_of(name: str) -> tuple[str, str] | None:
    for part in name.split("_"):
        base = _UNITS.get(part)
        if base is not None:
            return part, base
        for prefix in _UNIT_PREFIXES:
            if part.startswith(prefix):
                base = _UNITS.get(part[len(prefix) :])
                if base is not None:
                    return part, base
    return None


def _family_problems(name: str, typ: str, has_help: bool, label_sets: list[list[str]]) -> list[str]:
    out: list[str] = []
    if not has_help:
        out.append("no help text")
    unit = _unit_of(name)
    if unit is not None and unit[0] != unit[1]:
        out.append(f'use base unit "{unit[1]}" instead of "{unit[0]}"')
    untyped = typ == "untyped"
    if not untyped and (typ == "counter") != name.endswith("_total"):
        if typ == "counter":
            out.append('counter metrics should have "_total" suffix')
        else:
            out.append('non-counter metrics should not have "_total" suffix')
    if not untyped:
        hist, summ = typ == "histogram", typ == "summary"
        if not hist and name.endswith("_bucket"):
            out.append('non-histogram metrics should not have "_bucket" suffix')
        if not hist and not summ:
            for suffix in ("_count", "_sum"):
                if name.endswith(suffix):
                    out.append(
                        f'non-histogram and non-summary metrics should not have "{suffix}" suffix'
                    )
        for names in label_sets:
            for ln in names:
                if ln == "le" and not hist:
                    out.append('non-histogram metrics should not have "le" label')
                if ln == "quantile" and not summ:
                    out.append('non-summary metrics should not have "quantile" label')
    lower = name.lower()
    for t in _TYPE_NAMES:
        if f"_{t}_" in lower or lower.endswith(f"_{t}"):
            out.append(f"metric name should not include type '{t}'")
    if ":" in name:
        out.append("metric names should not contain ':'")
    if _CAMEL.search(name):
        out.append("metric names should be written in 'snake_case' not 'camelCase'")
    for names in label_sets:
        for ln in names:
            if _CAMEL.search(ln):
                out.append("label names should be written in 'snake_case' not 'camelCase'")
    for abbr in _ABBREVIATIONS:
        if f"_{abbr}_" in lower or lower.endswith(f"_{abbr}"):
            out.append("metric names should not contain abbreviated units")
    return out


def check_metrics(body: bytes, fmt: str = "prometheus") -> tuple[int, list[str]]:
    """Lint an exposition body as ``promtool check metrics`` does.

    `fmt` is "prometheus" (text 0.0.4) or "openmetrics". Returns ``(exit_code,
    messages)``: 0 and no messages when clean; 1 and one message naming the line when
    the body does not parse; 3 and ``"<metric> <problem>"`` lines for lint findings.
    """
    if fmt not in ("prometheus", "openmetrics"):
        raise ValueError(f"unknown format {fmt!r}: expected 'prometheus' or 'openmetrics'")
    try:
        exp = parse(body, "openmetrics" if fmt == "openmetrics" else None)
        if fmt == "prometheus":
            _check_type_order(body)
    except ExpositionError as e:
        return EXIT_PARSE_ERROR, [
            f"error while linting: text format parsing error in line {e.line}: {e.message}"
        ]
    cache = OM_SERIES if exp.openmetrics else PROM_SERIES
    meta = exp.metadata
    problems: list[tuple[str, str]] = []
    fams: dict[str, list[list[str]]] = {}
    seen: dict[str, set[tuple[str, tuple[tuple[str, str], ...], int]]] = {}
    dups: list[tuple[str, str]] = []
    for key, ts in zip(exp.keys, exp.timestamps.tolist(), strict=True):
        name, pairs = cache.get(key)
        fam = _family_of(name, meta, exp.openmetrics)
        fams.setdefault(fam, []).append([k for k, _ in pairs])
        # Same series and timestamp twice (empty label values count as absent).
        ident = (name, tuple(p for p in pairs if p[1] != ""), ts)
        s = seen.setdefault(fam, set())
        if ident in s:
            dups.append((fam, "metric not unique"))
        s.add(ident)
    for fam, label_sets in fams.items():
        md = meta.get(fam)
        typ = _TEXT_TYPE.get(md.type, md.type) if md else "untyped"
        lint_name = fam
        if exp.openmetrics and typ == "counter":
            lint_name = fam + "_total"  # OpenMetrics names counter families without it
        has_help = md is not None and md.help != ""
        for text in _family_problems(lint_name, typ, has_help, label_sets):
            problems.append((lint_name, text))
    problems.extend(dups)
    problems.sort()
    if not problems:
        return EXIT_OK, []
    return EXIT_LINT_PROBLEMS, [f"{m} {t}" for m, t in problems]


def _family_of(name: str, meta: dict[str, MetricMetadata], openmetrics: bool) -> str:
    if name in meta:
        return name
    # Prometheus text folds only histogram and summary samples into their family.
    for suffix, types in _FAMILY_SUFFIXES if openmetrics else _FAMILY_SUFFIXES[:3]:
        base = name.removesuffix(suffix)
        if base != name and base in meta and meta[base].type in types:
            return base
    return name


_FAMILY_SUFFIXES = (
    ("_bucket", ("histogram", "gaugehistogram")),
    ("_sum", ("histogram", "summary")),
    ("_count", ("histogram", "summary")),
    ("_total", ("counter",)),
    ("_created", ("counter", "histogram", "summary")),
    ("_info", ("info",)),
    ("_gsum", ("gaugehistogram",)),
    ("_gcount", ("gaugehistogram",)),
)


def _check_type_order(body: bytes) -> None:
    """promtool's parser refuses a TYPE line that follows samples of its metric."""
    sampled: set[str] = set()
    for lineno, raw in enumerate(body.split(b"\n"), 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith(b"#"):
            parts = line[1:].split(None, 2)
            if len(parts) >= 2 and parts[0] == b"TYPE":
                name = parts[1].decode("utf-8", "replace")
                if name in sampled:
                    raise ExpositionError(
                        lineno,
                        f'second TYPE line for metric name "{name}", or TYPE reported after samples',
                    )
            continue
        end = len(line)
        for i, c in enumerate(line):
            if c in b"{ \t":
                end = i
                break
        sampled.add(line[:end].decode("utf-8", "replace"))
