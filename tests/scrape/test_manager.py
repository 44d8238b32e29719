"""ScrapeManager end to end: real targets on 127.0.0.1, short intervals, real store."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from vigil.config import Config, load_config
from vigil.model.labels import Labels
from vigil.model.matchers import Matcher
from vigil.model.samples import is_stale
from vigil.scrape.discovery import TargetGroup
from vigil.scrape.manager import ScrapeManager
from vigil.scrape.static_target import StaticTarget
from vigil.storage.memory import MemoryStorage


@pytest.fixture
def targets() -> Iterator[list[StaticTarget]]:
    servers = [StaticTarget().start() for _ in range(3)]
    for i, s in enumerate(servers):
        s.set(
            "/metrics", f"# HELP thing_total Things.\n# TYPE thing_total counter\nthing_total {i}\n"
        )
    yield servers
    for s in servers:
        s.close()


def config(jobs: list[dict[str, Any]]) -> Config:
    import yaml

    text = yaml.safe_dump(
        {"global": {"scrape_interval": "200ms", "scrape_timeout": "150ms"}, "scrape_configs": jobs}
    )
    return load_config(text).config


def series(store: MemoryStorage, name: str) -> dict[Labels, list[tuple[int, float]]]:
    q = store.querier(0, 1 << 62)
    return {
        s.labels: list(zip(s.timestamps.tolist(), s.values.tolist(), strict=True))
        for s in q.select([Matcher.equal("__name__", name)], 0, 1 << 62)
    }


def wait_for(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


def up_count(store: MemoryStorage, instance: str) -> int:
    return sum(
        len(pts) for lb, pts in series(store, "up").items() if lb.get("instance") == instance
    )


def test_scrapes_reports_and_api_shapes(targets: list[StaticTarget]) -> None:
    store = MemoryStorage()
    m = ScrapeManager(store)
    cfg = config(
        [
            {
                "job_name": "a",
                "static_configs": [
                    {"targets": [targets[0].address, targets[1].address], "labels": {"env": "t"}},
                    {"targets": ["skip-me:1", "bad/address"]},
                ],
                "relabel_configs": [
                    {"source_labels": ["__address__"], "regex": "skip-me:1", "action": "drop"}
                ],
            }
        ]
    )
    m.apply_config(cfg)
    # Resolved before start: health unknown.
    assert {t["health"] for t in m.targets_active()} == {"unknown"}
    m.start()
    try:
        wait_for(lambda: all(up_count(store, t.address) >= 2 for t in targets[:2]))
        active = m.targets_active()
        assert len(active) == 2
        t0 = next(t for t in active if t["labels"]["instance"] == targets[0].address)
        assert t0["health"] == "up" and t0["lastError"] == ""
        assert t0["scrapePool"] == "a"
        assert t0["scrapeUrl"] == f"http://{targets[0].address}/metrics"
        assert t0["labels"] == {"instance": targets[0].address, "job": "a", "env": "t"}
        assert t0["discoveredLabels"]["__address__"] == targets[0].address
        assert t0["scrapeInterval"] == "200ms" and t0["scrapeTimeout"] == "150ms"
        assert t0["lastScrape"].endswith("Z") and t0["lastScrapeDuration"] > 0
        dropped = m.targets_dropped()
        assert [d["discoveredLabels"]["__address__"] for d in dropped] == ["skip-me:1"]
        assert m.dropped_counts() == {"a": 1}
        assert m.target_failures() == {
            "a": ['instance 1 in group 1: "bad/address" is not a valid hostname']
        }
        assert m.metadata() == {"thing_total": [{"type": "counter", "help": "Things.", "unit": ""}]}
        assert m.metadata("nope") == {}
        rows = m.targets_metadata(metric="thing_total")
        assert len(rows) == 2 and rows[0]["type"] == "counter"
        names = {s[0] for s in m.metrics()}
        assert "prometheus_target_interval_length_seconds" in names
        assert "prometheus_target_scrapes_exceeded_sample_limit_total" in names
        # Scrapes land on the interval grid: timestamps 200 ms apart.
        pts = next(iter(series(store, "thing_total").values()))
        steps = sorted(b[0] - a[0] for a, b in itertools.pairwise(pts))
        # The median, so one scrape delayed by a loaded machine cannot fail this.
        assert steps and 180 <= steps[len(steps) // 2] <= 220, steps
    finally:
        m.stop()
    # Stop writes staleness markers for every target's series.
    for lb, pts in series(store, "thing_total").items():
        assert is_stale(pts[-1][1]), lb
    assert m.targets_active() == []


def test_reload_keeps_unchanged_loops_and_marks_removed_stale(targets: list[StaticTarget]) -> None:
    store = MemoryStorage()
    m = ScrapeManager(store)
    job = {
        "job_name": "a",
        "static_configs": [{"targets": [targets[0].address, targets[1].address]}],
    }
    m.apply_config(config([job]))
    m.start()
    try:
        wait_for(lambda: all(up_count(store, t.address) >= 1 for t in targets[:2]))
        kept_loop = next(
            lp for lp in m.loops() if lp.target.url.startswith(f"http://{targets[0].address}")
        )
        # Same config again: nothing restarts.
        m.apply_config(config([job]))
        assert kept_loop in m.loops()
        # Drop target 1, add job b.
        job2 = {"job_name": "a", "static_configs": [{"targets": [targets[0].address]}]}
        jobb = {"job_name": "b", "static_configs": [{"targets": [targets[2].address]}]}
        m.apply_config(config([job2, jobb]))
        gone = [
            lb for lb in series(store, "thing_total") if lb.get("instance") == targets[1].address
        ]
        assert len(gone) == 1
        assert is_stale(series(store, "thing_total")[gone[0]][-1][1])
        wait_for(lambda: up_count(store, targets[2].address) >= 1)
        # The handed-over target keeps scraping without a staleness gap.
        n0 = up_count(store, targets[0].address)
        wait_for(lambda: up_count(store, targets[0].address) >= n0 + 2)
        t0 = next(
            lb for lb in series(store, "thing_total") if lb.get("instance") == targets[0].address
        )
        assert not any(is_stale(v) for _, v in series(store, "thing_total")[t0])
        # Remove job b entirely.
        m.apply_config(config([job2]))
        b = next(lb for lb in series(store, "up") if lb.get("job") == "b")
        assert is_stale(series(store, "up")[b][-1][1])
        assert {t["scrapePool"] for t in m.targets_active()} == {"a"}
    finally:
        m.stop()


def test_discovery_updates(targets: list[StaticTarget]) -> None:
    store = MemoryStorage()
    m = ScrapeManager(store)
    m.apply_config(config([{"job_name": "sd"}]))
    m.start()
    try:
        addr = Labels.from_dict({"__address__": targets[0].address})
        m.on_update(
            "sd",
            [TargetGroup("f.json:0", [addr], Labels.from_dict({"__meta_x": "1", "team": "t"}))],
        )
        wait_for(lambda: up_count(store, targets[0].address) >= 1)
        (t,) = m.targets_active()
        assert t["labels"]["team"] == "t" and "__meta_x" not in t["labels"]
        assert t["discoveredLabels"]["__meta_x"] == "1"
        m.on_update("unknown-job", [])  # ignored, no crash
        m.on_update("sd", [])  # the file emptied: the target goes, with markers
        assert m.targets_active() == []
        (pts,) = series(store, "thing_total").values()
        assert is_stale(pts[-1][1])
    finally:
        m.stop()


def test_target_limit_fails_scrapes(targets: list[StaticTarget]) -> None:
    store = MemoryStorage()
    m = ScrapeManager(store)
    m.apply_config(
        config(
            [
                {
                    "job_name": "lim",
                    "target_limit": 1,
                    "static_configs": [{"targets": [targets[0].address, targets[1].address]}],
                }
            ]
        )
    )
    m.start()
    try:
        wait_for(lambda: all(t["health"] == "down" for t in m.targets_active()))
        errs = {t["lastError"] for t in m.targets_active()}
        assert errs == {"target_limit exceeded (number of targets: 2, limit: 1)"}
        assert not targets[0].requests  # not even contacted
    finally:
        m.stop()


def test_down_target_reports_error(targets: list[StaticTarget]) -> None:
    targets[0].set("/metrics", "garbage here\n")
    store = MemoryStorage()
    m = ScrapeManager(store, stale_on_stop=False)
    m.apply_config(
        config([{"job_name": "a", "static_configs": [{"targets": [targets[0].address]}]}])
    )
    m.start()
    try:
        wait_for(lambda: m.targets_active()[0]["health"] == "down")
        assert m.targets_active()[0]["lastError"].startswith("line 1:")
    finally:
        m.stop()
    (pts,) = series(store, "up").values()
    assert not any(is_stale(v) for _, v in pts)  # stale_on_stop=False


def test_stop_is_idempotent_and_restartable(targets: list[StaticTarget]) -> None:
    store = MemoryStorage()
    m = ScrapeManager(store)
    m.stop()  # never started: no-op
    m.apply_config(
        config([{"job_name": "a", "static_configs": [{"targets": [targets[0].address]}]}])
    )
    m.start()
    wait_for(lambda: up_count(store, targets[0].address) >= 1)
    m.stop()
    m.stop()
    n = up_count(store, targets[0].address)
    m.start()
    try:
        wait_for(lambda: up_count(store, targets[0].address) >= n + 1)
    finally:
        m.stop()


def test_with_real_file_discovery(targets: list[StaticTarget], tmp_path: Any) -> None:
    import json

    from vigil.scrape.discovery import DiscoveryManager, jobs_from_scrape_configs

    sd_file = tmp_path / "targets.json"
    sd_file.write_text(json.dumps([{"targets": [targets[0].address], "labels": {"team": "a"}}]))
    cfg = config(
        [
            {
                "job_name": "files",
                "file_sd_configs": [{"files": [str(sd_file)]}],
                "static_configs": [{"targets": [targets[1].address]}],
            }
        ]
    )
    store = MemoryStorage()
    m = ScrapeManager(store)
    d = DiscoveryManager(m.on_update)
    # Discovery first: its update waits for the job's config.
    d.apply_config(jobs_from_scrape_configs(cfg.scrape_configs))
    m.apply_config(cfg)
    m.start()
    try:
        wait_for(lambda: all(up_count(store, t.address) >= 1 for t in targets[:2]))
        by_inst = {t["labels"]["instance"]: t for t in m.targets_active()}
        assert by_inst[targets[0].address]["labels"]["team"] == "a"
        assert by_inst[targets[0].address]["discoveredLabels"]["__meta_filepath"] == str(sd_file)
        sd_file.write_text(json.dumps([{"targets": [targets[2].address]}]))
        d.refresh(force=True)
        assert {t["labels"]["instance"] for t in m.targets_active()} == {
            targets[1].address,
            targets[2].address,
        }
        gone = next(lb for lb in series(store, "up") if lb.get("instance") == targets[0].address)
        assert is_stale(series(store, "up")[gone][-1][1])
    finally:
        m.stop()
