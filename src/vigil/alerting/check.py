"""`vigil check alertmanager-config`: validate Alertmanager config files as ``amtool check-config``.

Output and exit status follow amtool: for each file ``Checking '<file>'`` then
``  SUCCESS`` and a summary of what was found (global config, route, inhibit
rules, receivers, template patterns, then the templates' own verdict), or
``  FAILED: <error>``; a blank line after each file. Exit status 1 when any file
or its templates failed, with ``amtool: error: failed to validate N file(s)``
on stderr. Every named file must exist before any is checked. With no files,
standard input is read unless it is a terminal.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TextIO

from vigil.alerting.config import ConfigError, load_config, load_config_file
from vigil.alerting.templates import build_templates
from vigil.gotemplate import TemplateError

STDIN_NAME = "/dev/stdin"


def check_config(
    files: Sequence[str],
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    stdin: TextIO | None = None,
) -> int:
    """Check each file as ``amtool check-config`` does; return the exit status (0 or 1)."""
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    src = stdin if stdin is not None else sys.stdin
    for f in files:
        if not os.path.exists(f):
            print(f"amtool: error: path '{f}' does not exist", file=err)
            return 1
        if os.path.isdir(f):
            print(f"amtool: error: '{f}' is a directory", file=err)
            return 1
    stdin_text: str | None = None
    if not files:
        if src.isatty():
            print("amtool: error: Failed to read from standard input", file=err)
            return 1
        stdin_text = src.read()
        files = [STDIN_NAME]

    failed = 0
    for f in files:
        out.write(f"Checking '{f}'")
        try:
            if stdin_text is not None:
                cfg = load_config(stdin_text, f, base_dir=os.getcwd())
            else:
                cfg = load_config_file(f)
        except ConfigError as exc:
            first, *rest = str(exc).splitlines() or ["invalid configuration"]
            out.write(f"  FAILED: {first}\n")
            for line in rest:
                out.write(f"    {line}\n")
            failed += 1
        else:
            out.write("  SUCCESS\n")
            out.write("Found:\n - global config\n - route\n")
            out.write(f" - {len(cfg.inhibit_rules)} inhibit rules\n")
            out.write(f" - {len(cfg.receivers)} receivers\n")
            out.write(f" - {len(cfg.templates)} templates\n")
            if cfg.templates:
                try:
                    build_templates(cfg.template_files)
                except (TemplateError, OSError) as exc:
                    out.write(f"  FAILED: {exc}\n")
                    failed += 1
                else:
                    out.write("  SUCCESS\n")
            for w in cfg.warnings:
                print(f"warning: {w}", file=err)
        out.write("\n")
    if failed:
        print(f"amtool: error: failed to validate {failed} file(s)", file=err)
        return 1
    return 0
