"""`check_config` against ``amtool check-config``: output shape, verdicts, exit codes."""

from __future__ import annotations

import io
import os
import re
import subprocess
from pathlib import Path

import pytest

from vigil.alerting.check import check_config

AMTOOL = "/usr/bin/amtool"

GOOD_FULL = """\
global:
  smtp_smarthost: 'localhost:25'
  smtp_from: 'am@example.com'
route:
  receiver: team
  group_by: [alertname]
  routes:
  - receiver: pager
    matchers: ['severity="critical"']
receivers:
- name: team
  email_configs: [{to: 'a@example.com'}]
  slack_configs: [{api_url: 'http://x/', channel: '#a'}]
- name: pager
  opsgenie_configs: [{api_key: k}]
  telegram_configs: [{bot_token: t, chat_id: 1}]
inhibit_rules:
- source_matchers: ['severity="critical"']
  target_matchers: ['severity="warning"']
  equal: [alertname]
templates: ['*.tmpl']
"""
GOOD_MIN = "route: {receiver: a}\nreceivers: [{name: a}]\n"
CONFIGS = {
    "good_full.yml": GOOD_FULL,
    "good_min.yml": GOOD_MIN,
    "good_no_template_match.yml": GOOD_MIN + "templates: ['nothing/*.tmpl']\n",
    "bad_undefined_receiver.yml": "route: {receiver: nope}\nreceivers: [{name: a}]\n",
    "bad_unknown_field.yml": GOOD_MIN + "receiver_typo: 1\n",
    "bad_duplicate_receiver.yml": "route: {receiver: a}\nreceivers: [{name: a}, {name: a}]\n",
    "bad_email_no_smarthost.yml": (
        "route: {receiver: a}\nreceivers: [{name: a, email_configs: [{to: x@y, from: a@b}]}]\n"
    ),
    "bad_template.yml": GOOD_MIN + "templates: ['broken/*.tmpl']\n",
    "bad_webhook_scheme.yml": GOOD_MIN.replace(
        "{name: a}", "{name: a, webhook_configs: [{url: 'ftp://x/'}]}"
    ),
    "bad_smarthost.yml": GOOD_MIN.replace(
        "{name: a}", "{name: a, email_configs: [{to: x@y, from: a@b, smarthost: nohost}]}"
    ),
    "bad_telegram_parse_mode.yml": GOOD_MIN.replace(
        "{name: a}", "{name: a, telegram_configs: [{bot_token: t, chat_id: 1, parse_mode: X}]}"
    ),
    "bad_opsgenie_responder.yml": GOOD_MIN.replace(
        "{name: a}", "{name: a, opsgenie_configs: [{api_key: k, responders: [{type: team}]}]}"
    ),
}


@pytest.fixture
def configs(tmp_path: Path) -> Path:
    for name, text in CONFIGS.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "ok.tmpl").write_text('{{ define "x" }}hi{{ end }}\n')
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "b.tmpl").write_text('{{ define "x" }')
    return tmp_path


def _vigil(files: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = check_config(files, stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


def test_success_summary(configs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(configs)
    rc, out, err = _vigil(["good_full.yml"])
    assert rc == 0 and err == ""
    assert out == (
        "Checking 'good_full.yml'  SUCCESS\n"
        "Found:\n - global config\n - route\n - 1 inhibit rules\n - 2 receivers\n"
        " - 1 templates\n  SUCCESS\n\n"
    )


def test_failures_and_exit_status(configs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(configs)
    rc, out, err = _vigil(["good_min.yml", "bad_undefined_receiver.yml", "bad_template.yml"])
    assert rc == 1
    assert "Checking 'good_min.yml'  SUCCESS\n" in out
    assert (
        "Checking 'bad_undefined_receiver.yml'  FAILED: bad_undefined_receiver.yml:1:19:"
        ' route.receiver: undefined receiver "nope" used in route\n\n'
    ) in out
    assert re.search(r" - 1 templates\n  FAILED: .*b\.tmpl:1", out)
    assert err == "amtool: error: failed to validate 2 file(s)\n"


def test_missing_file_checks_nothing(configs: Path) -> None:
    rc, out, err = _vigil([str(configs / "good_min.yml"), str(configs / "nope.yml")])
    assert (rc, out) == (1, "")
    assert err == f"amtool: error: path '{configs / 'nope.yml'}' does not exist\n"


def test_stdin(configs: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    rc = check_config([], stdout=out, stderr=err, stdin=io.StringIO(GOOD_MIN))
    assert rc == 0 and out.getvalue().startswith("Checking '/dev/stdin'  SUCCESS\n")


def _summary(out: str) -> list[tuple[str, str, list[str]]]:
    """Per file: name, verdict, and the Found lines plus the template verdict."""
    got = []
    for block in out.strip("\n").split("\n\n"):
        head, *rest = block.splitlines()
        m = re.match(r"Checking '(.*)'  (SUCCESS|FAILED)", head)
        assert m, head
        if m[2] == "FAILED":
            rest = []  # the error text differs (and may span lines); the verdict must not
        found = [r if not r.startswith("  FAILED") else "  FAILED" for r in rest]
        got.append((m[1], m[2], found))
    return got


@pytest.mark.interop
@pytest.mark.skipif(not os.access(AMTOOL, os.X_OK), reason="amtool not installed")
def test_same_verdicts_as_amtool(configs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(configs)
    for name in sorted(CONFIGS):
        am = subprocess.run(
            [AMTOOL, "check-config", name], capture_output=True, text=True, timeout=20
        )
        rc, out, _ = _vigil([name])
        assert (name, rc) == (name, am.returncode), am.stdout
        assert _summary(out) == _summary(am.stdout), (name, am.stdout, out)
    # Several files at once: the same per-file blocks, the same failure count.
    names = sorted(CONFIGS)
    am = subprocess.run(
        [AMTOOL, "check-config", *names], capture_output=True, text=True, timeout=20
    )
    rc, out, err = _vigil(names)
    assert rc == am.returncode == 1
    assert _summary(out) == _summary(am.stdout)
    assert err.splitlines()[-1] == am.stderr.strip().splitlines()[-1]
