"""`check rules`: promtool's output and exit codes for rule-file validation.

    Checking rules.yml
      SUCCESS: 3 rules found
    <blank line>

Errors go to stderr after ``  FAILED:``. Duplicate recording rules (same name and
labels) are a lint problem: reported, but the exit code stays 0 (promtool's
default ``--lint=duplicate-rules`` without ``--lint-fatal``).
"""

from __future__ import annotations

import sys
from typing import TextIO

from vigil.rules.loader import RuleFileError, load_rule_file

SUCCESS = 0
FAILURE = 1
LINT_FAILURE = 3


def _duplicates(groups: list) -> list[tuple[str, list[tuple[str, str]]]]:
    seen: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}
    for g in groups:
        for r in g.rules:
            if not r.record:
                continue
            key = (r.record, tuple(sorted(r.labels.items())))
            seen[key] = seen.get(key, 0) + 1
    return [(name, list(lbls)) for (name, lbls), n in sorted(seen.items()) if n > 1]


def check_rules(
    files: list[str],
    *,
    lint_fatal: bool = False,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Validate each rule file as `promtool check rules`; return the exit code."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    failed = False
    has_errors = False
    for f in files:
        print("Checking", f, file=out)
        errors: list[str] = []
        lint = False
        n = 0
        try:
            groups = load_rule_file(f)
            n = sum(len(g.rules) for g in groups)
            dups = _duplicates(groups)
            if dups:
                msg = f"{len(dups)} duplicate rule(s) found.\n"
                for name, lbls in dups:
                    msg += f"Metric: {name}\nLabel(s):\n"
                    msg += "".join(f"\t{k}: {v}\n" for k, v in lbls)
                msg += "Might cause inconsistency while recording expressions"
                errors = [f"lint error {msg}"]
                lint = True
        except RuleFileError as exc:
            errors = exc.errors
        if errors:
            out.flush()
            print("  FAILED:", file=err)
            for e in errors:
                print(e, file=err)
            err.flush()
            failed = True
            has_errors = has_errors or not lint
        else:
            print(f"  SUCCESS: {n} rules found", file=out)
        print(file=out)
    if failed and has_errors:
        return FAILURE
    if failed and lint_fatal:
        return LINT_FAILURE
    return SUCCESS
