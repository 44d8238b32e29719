"""Config loading (seeds, errors with positions) and routing, incl. amtool parity."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from vigil.alerting.config import ConfigError, load_config
from vigil.alerting.route import Route, group_key, test_routes
from vigil.model.labels import Labels

ROUTES_YAML = """
global:
  resolve_timeout: 1m
route:
  receiver: default
  group_by: [alertname, cluster]
  routes:
  - matchers: ['severity=~"critical|page"']
    receiver: pager
    continue: true
  - match: {severity: critical}
    receiver: slack-crit
    routes:
    - match_re: {service: "db|cache"}
      receiver: db-team
      group_wait: 1m
  - matchers: [team="data", env!="dev"]
    receiver: data
  - matchers: ['service!~"api.*"', severity="warning"]
    receiver: warn
receivers:
- name: default
- name: pager
- name: slack-crit
- name: db-team
- name: data
- name: warn
"""

CASES = [
    {"alertname": "X"},
    {"severity": "critical"},
    {"severity": "page"},
    {"severity": "critical", "service": "db"},
    {"severity": "critical", "service": "dbx"},
    {"team": "data"},
    {"team": "data", "env": "dev"},
    {"severity": "warning", "service": "web"},
    {"severity": "warning", "service": "api-1"},
]


def seed_blocks(shared: Path, prefix: str) -> list[str]:
    found = next(shared.glob(f"seeds/{prefix}_*.txt"), None)
    if found is None:
        pytest.skip(f"seed {prefix} not found under {shared}/seeds")
    text = found.read_text(encoding="utf-8")
    return re.findall(r"```yaml\n(.*?)```", text, re.S)


def test_defaults_and_inheritance() -> None:
    cfg = load_config(ROUTES_YAML)
    root = Route.build(cfg.route)
    assert (root.opts.group_wait, root.opts.group_interval, root.opts.repeat_interval) == (
        30,
        300,
        14400,
    )
    db = root.routes[1].routes[0]
    assert db.opts.group_wait == 60 and db.opts.group_by == frozenset({"alertname", "cluster"})
    assert cfg.global_.resolve_timeout == 60
    assert db.key() == '{}/{severity="critical"}/{service=~"db|cache"}'
    gk = group_key(db, Labels.from_dict({"alertname": "A", "cluster": "c"}))
    assert gk == '{}/{severity="critical"}/{service=~"db|cache"}:{alertname="A", cluster="c"}'


@pytest.mark.parametrize("labels", CASES, ids=lambda d: ",".join(f"{k}={v}" for k, v in d.items()))
def test_routes_table(labels: dict[str, str]) -> None:
    expected = {
        "X": ["default"],
    }
    got = test_routes(load_config(ROUTES_YAML), labels)
    if labels == {"alertname": "X"}:
        assert got == expected["X"]
    assert got  # every alert reaches at least the root


@pytest.mark.interop
def test_routes_match_amtool(tmp_path: Path) -> None:
    amtool = shutil.which("amtool") or "/usr/bin/amtool"
    if not Path(amtool).exists():
        pytest.skip("amtool not installed")
    f = tmp_path / "am.yml"
    f.write_text(ROUTES_YAML)
    cfg = load_config(ROUTES_YAML)
    for labels in CASES:
        args = [f"{k}={v}" for k, v in labels.items()]
        out = subprocess.run(
            [amtool, "config", "routes", "test", f"--config.file={f}", *args],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert ",".join(test_routes(cfg, labels)) == out.stdout.strip(), labels


def test_seed_configs_load(shared_dir: Path) -> None:
    blocks = [b for b in seed_blocks(shared_dir, "003") if "route:" in b]
    cfg = load_config(blocks[0])
    assert [r.name for r in cfg.receivers] == [
        "default",
        "slack-critical",
        "slack-warning",
        "pagerduty-critical",
        "email-team",
    ]
    assert test_routes(cfg, {"severity": "critical"}) == ["pagerduty-critical", "slack-critical"]
    # Seed 001 uses fields Alertmanager rejects; strict mode says where, lenient loads it.
    blk = next(b for b in seed_blocks(shared_dir, "001") if "route:" in b)
    with pytest.raises(ConfigError) as ei:
        load_config(blk, "001.yml")
    assert '001.yml:31:14: receivers.0.email_configs.0.subject: unknown field "subject"' in str(
        ei.value
    )
    lenient = load_config(blk, "001.yml", strict=False)
    assert test_routes(lenient, {"severity": "warning"}) == ["warning-alerts"]
    assert any("warning-alerts" in w for w in lenient.warnings)
    # Seed 004 has fragments (global, receivers): merged under a root route.
    frags = [b for b in seed_blocks(shared_dir, "004") if "global:" in b or "receivers:" in b]
    import yaml

    merged: dict = {}
    for frag in frags:
        for k, v in yaml.safe_load(frag).items():
            merged.setdefault(k, {} if isinstance(v, dict) else [])
            if isinstance(v, dict):
                merged[k].update(v)
            else:
                merged[k].extend(v)
    merged["route"] = {"receiver": merged["receivers"][0]["name"]}
    cfg4 = load_config(yaml.safe_dump(merged))
    assert cfg4.receivers[0].integrations[0][1].api_url.startswith("https://hooks.slack.com")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "route: {receiver: nope}\nreceivers: [{name: a}]\n",
            'x.yml:1:19: route.receiver: undefined receiver "nope"',
        ),
        (
            "route:\n  receiver: a\n  group_wait: 5 minutes\nreceivers: [{name: a}]\n",
            "x.yml:3:15: route.group_wait: not a valid duration",
        ),
        (
            "route:\n  receiver: a\n  routes:\n  - matchers: ['a=~\"(\"']\nreceivers: [{name: a}]\n",
            "x.yml:4:16: route.routes.0.matchers.0: bad regex",
        ),
        (
            "route: {receiver: a}\nreceivers:\n- name: a\n  webhook_configs: [{}]\n",
            "x.yml:4:21: receivers.0.webhook_configs.0: one of url or url_file",
        ),
        (
            "route: {receiver: a}\nreceivers:\n- name: a\n- name: a\n",
            'x.yml:4:9: receivers.1.name: notification config name "a" is not unique',
        ),
        (
            "route: {receiver: a}\nreceivers:\n- name: a\n  email_configs: [{to: x@y}]\n",
            "no global SMTP smarthost set",
        ),
        ("route: {receiver: a\n", "x.yml:2:1: invalid YAML"),
        (
            "route: {receiver: a, group_by: ['...', x]}\nreceivers: [{name: a}]\n",
            "wildcard group_by",
        ),
        (
            "route: {receiver: a, mute_time_intervals: [x]}\nreceivers: [{name: a}]\n",
            "root route must not have any mute",
        ),
        (
            "time_intervals:\n- name: t\n  time_intervals: [{weekdays: [funday]}]\nroute: {receiver: a}\nreceivers: [{name: a}]\n",
            "x.yml:3:20: time_intervals.0.time_intervals.0: 'funday' is not a weekday",
        ),
    ],
)
def test_config_errors_are_located(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as ei:
        load_config(text, "x.yml")
    assert message in str(ei.value)
