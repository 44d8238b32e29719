"""Discovery: static groups, file_sd parsing and watching, DiscoveryManager updates."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from vigil.config import FileSDConfig, StaticConfig, load_config
from vigil.model.labels import Labels
from vigil.scrape.discovery import (
    DiscoveryManager,
    FileFormatError,
    FileSDProvider,
    TargetGroup,
    jobs_from_scrape_configs,
    parse_file_groups,
    static_groups,
)


def addr(*hosts: str) -> list[Labels]:
    return [Labels.from_dict({"__address__": h}) for h in hosts]


class Recorder:
    """Collects on_update calls; `wait_for` blocks until a predicate holds."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[TargetGroup]]] = []
        self.cond = threading.Condition()

    def __call__(self, job: str, groups: list[TargetGroup]) -> None:
        with self.cond:
            self.calls.append((job, groups))
            self.cond.notify_all()

    def latest(self, job: str) -> list[TargetGroup] | None:
        for j, g in reversed(self.calls):
            if j == job:
                return g
        return None

    def wait_for(self, pred, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
        with self.cond:
            assert self.cond.wait_for(lambda: pred(self), timeout), self.calls


def _write(path: Path, content: str) -> None:
    # Write then bump mtime explicitly: coarse filesystem clocks must not hide a change.
    path.write_text(content)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_static_groups() -> None:
    groups = static_groups(
        [
            StaticConfig(targets=("a:1", "b:2"), labels={"env": "prod"}),
            StaticConfig(targets=("c:3",)),
        ]
    )
    assert groups == [
        TargetGroup("0", addr("a:1", "b:2"), Labels.from_dict({"env": "prod"})),
        TargetGroup("1", addr("c:3"), Labels.EMPTY),
    ]


def test_parse_json_and_yaml() -> None:
    js = json.dumps(
        [{"targets": ["a:1"], "labels": {"env": "x", "n": 1}}, {"targets": ["b:2"], "extra": 1}]
    )
    g = parse_file_groups("/sd/t.json", js)
    assert g[0] == TargetGroup(
        "/sd/t.json:0",
        addr("a:1"),
        Labels.from_dict({"env": "x", "n": "1", "__meta_filepath": "/sd/t.json"}),
    )
    assert g[1].source == "/sd/t.json:1"
    y = parse_file_groups("/sd/t.yml", "- targets: [c:3]\n  labels: {a: b}\n")
    assert y[0].targets == addr("c:3")
    assert parse_file_groups("/sd/empty.yml", "") == []
    assert parse_file_groups("/sd/empty.json", "  ") == []


@pytest.mark.parametrize(
    ("name", "text", "msg"),
    [
        ("a.json", "[{", "invalid JSON at line 1"),
        ("a.yml", "- targets: [a\n", "invalid YAML at line"),
        ("a.yml", "targets: [a]\n", "expected a list of target groups"),
        ("a.yml", "- 5\n", "group 0: expected a mapping"),
        ("a.yml", "- targets: a:1\n", "group 0: targets must be a list"),
        ("a.yml", "- targets: [[1]]\n", "is not a host:port string"),
        (
            "a.yml",
            "- targets: [a:1]\n  labels: {bad-name: x}\n",
            '"bad-name" is not a valid label name',
        ),
        ("a.yml", "- targets: [a:1]\n  labels: {a: [1]}\n", 'label "a" must have a string value'),
        ("a.yml", "- targets: [a:1]\n  lables: {}\n", "field lables not found"),
    ],
)
def test_parse_errors(name: str, text: str, msg: str) -> None:
    with pytest.raises(FileFormatError, match=msg.replace("[", r"\[")):
        parse_file_groups(name, text)


def test_file_provider_globs_changes_errors_and_removal(tmp_path: Path) -> None:
    a = tmp_path / "a.json"
    b = tmp_path / "b.yml"
    _write(a, json.dumps([{"targets": ["a:1"]}]))
    _write(b, "- targets: [b:1]\n")
    (tmp_path / "ignored.txt").write_text("x")
    now = [0.0]
    fp = FileSDProvider(
        FileSDConfig(files=(str(tmp_path / "*.json"), str(tmp_path / "*.yml"))),
        clock=lambda: now[0],
    )
    assert fp.refresh() is True
    assert [g.source for g in fp.groups()] == [f"{a}:0", f"{b}:0"]
    assert fp.refresh() is False  # nothing changed

    _write(a, json.dumps([{"targets": ["a:1", "a:2"]}]))
    assert fp.refresh() is True
    assert fp.groups()[0].targets == addr("a:1", "a:2")

    # A broken file keeps its last good groups and reports the error.
    _write(a, "[{")
    assert fp.refresh() is False
    assert fp.groups()[0].targets == addr("a:1", "a:2")
    assert len(fp.errors) == 1 and fp.errors[0].startswith(f"{a}: invalid JSON")
    # Fixed again: error cleared.
    _write(a, json.dumps([{"targets": ["a:3"]}]))
    assert fp.refresh() is True
    assert fp.errors == [] and fp.groups()[0].targets == addr("a:3")

    b.unlink()
    assert fp.refresh() is True
    assert [g.source for g in fp.groups()] == [f"{a}:0"]


def test_full_refresh_interval_rereads_unchanged_signature(tmp_path: Path) -> None:
    a = tmp_path / "a.yml"
    _write(a, "- targets: [a:1]\n")
    now = [0.0]
    fp = FileSDProvider(FileSDConfig(files=(str(a),), refresh_interval="1m"), clock=lambda: now[0])
    fp.refresh()
    # Same size and mtime: the cheap check cannot see it...
    st = a.stat()
    a.write_text("- targets: [b:1]\n")
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert fp.refresh() is False
    # ...but the refresh_interval re-read does.
    now[0] = 61.0
    assert fp.refresh() is True
    assert fp.groups()[0].targets == addr("b:1")


def test_manager_static_and_file_and_reload(tmp_path: Path) -> None:
    sd = tmp_path / "targets.yml"
    _write(sd, "- targets: [f:1]\n  labels: {team: x}\n")
    text = f"""
scrape_configs:
  - job_name: s
    static_configs: [{{targets: ["s:1"]}}]
  - job_name: f
    static_configs: [{{targets: ["s:2"]}}]
    file_sd_configs: [{{files: ["{tmp_path}/*.yml"]}}]
"""
    cfg = load_config(text).config
    rec = Recorder()
    mgr = DiscoveryManager(rec, poll_interval=0.05)
    mgr.apply_config(jobs_from_scrape_configs(cfg.scrape_configs))
    assert rec.latest("s") == [TargetGroup("0", addr("s:1"), Labels.EMPTY)]
    f_groups = rec.latest("f")
    assert f_groups is not None and [g.source for g in f_groups] == ["0", f"{sd}:0"]
    assert f_groups[1].labels.get("__meta_filepath") == str(sd)
    assert f_groups[1].labels.get("team") == "x"

    mgr.start()
    try:
        n = len(rec.calls)
        _write(sd, "- targets: [f:1, f:2]\n")
        rec.wait_for(lambda r: len(r.calls) > n)
        latest = rec.latest("f")
        assert latest is not None and latest[1].targets == addr("f:1", "f:2")
        assert rec.calls[-1][0] == "f"  # unchanged job "s" is not re-reported

        # Broken file: no update, last good targets stay, error surfaced per job.
        n = len(rec.calls)
        _write(sd, "- targets: [oops\n")
        deadline = time.monotonic() + 10
        while "f" not in mgr.errors and time.monotonic() < deadline:
            time.sleep(0.02)
        assert mgr.errors["f"][0].startswith(f"{sd}: invalid YAML")
        assert len(rec.calls) == n
        assert mgr.groups("f")[1].targets == addr("f:1", "f:2")

        # Reload: job "s" removed, "f" unchanged (keeps provider), "n" added.
        cfg2 = load_config(
            text.replace('  - job_name: s\n    static_configs: [{targets: ["s:1"]}]\n', "")
            + '  - job_name: n\n    static_configs: [{targets: ["n:1"]}]\n'
        ).config
        mgr.apply_config(jobs_from_scrape_configs(cfg2.scrape_configs))
        assert mgr.groups("s") == []
        assert rec.latest("n") == [TargetGroup("0", addr("n:1"), Labels.EMPTY)]
        assert "f" in mgr.errors  # same provider kept across the reload
    finally:
        mgr.stop()
    assert not any(t.name == "vigil-discovery" for t in threading.enumerate())


def test_on_update_failure_does_not_break_discovery() -> None:
    seen: list[str] = []

    def bad(job: str, groups: list[TargetGroup]) -> None:
        seen.append(job)
        if job == "a":
            raise RuntimeError("boom")

    mgr = DiscoveryManager(bad)
    mgr.apply_config({"a": [StaticConfig(targets=("x:1",))], "b": [StaticConfig(targets=("y:1",))]})
    assert seen == ["a", "b"]


def test_apply_rejects_unknown_sd_config() -> None:
    mgr = DiscoveryManager(lambda j, g: None)
    with pytest.raises(TypeError, match="unsupported SD config"):
        mgr.apply_config({"a": [object()]})  # type: ignore[list-item]


def test_apply_config_accepts_config_and_autostarts_polling(tmp_path: Path) -> None:
    sd = tmp_path / "t.json"
    _write(sd, json.dumps([{"targets": ["a:1"]}]))
    cfg = load_config(
        f'scrape_configs: [{{job_name: j, file_sd_configs: [{{files: ["{sd}"]}}]}}]'
    ).config
    rec = Recorder()
    mgr = DiscoveryManager(rec, poll_interval=0.05)
    try:
        mgr.apply_config(cfg)
        assert mgr.groups("j")[0].targets == addr("a:1")
        _write(sd, json.dumps([{"targets": ["b:1"]}]))
        rec.wait_for(
            lambda r: (
                (r.latest("j") or [None])[0] is not None and r.latest("j")[0].targets == addr("b:1")
            )
        )
    finally:
        mgr.stop()
    mgr.start()  # no-op after stop
    assert not any(t.name == "vigil-discovery" for t in threading.enumerate())
