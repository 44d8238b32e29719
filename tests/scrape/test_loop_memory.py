"""The scrape loop keeps each series' identity once: in the store, not its cache."""

from __future__ import annotations

from vigil.config import ScrapeConfig
from vigil.model.labels import Labels
from vigil.model.matchers import Matcher, MatchType
from vigil.scrape.loop import LoopOptions, ScrapeLoop
from vigil.scrape.target import targets_from_group
from vigil.tsdb.head import Head

T0 = 1_700_000_000_000
BODY = b'# TYPE a counter\na_total{x="1"} 1\na_total{x="2"} 2\nb 3\n'


def _loop(store: Head) -> ScrapeLoop:
    cfg = ScrapeConfig.model_validate(
        {"job_name": "j", "scrape_interval": "1s", "scrape_timeout": "1s"}
    )
    target = targets_from_group(
        cfg, "0", [Labels.from_dict({"__address__": "127.0.0.1:1"})], Labels.EMPTY
    ).active[0]
    return ScrapeLoop(target, store, LoopOptions.from_config(cfg), now=lambda: T0 / 1000)


def test_cache_drops_labels_once_the_store_has_the_series() -> None:
    head = Head()
    lp = _loop(head)
    for i in range(3):
        out = lp.process(BODY, "text/plain", T0 + 1000 * i)
        assert out.error is None and out.commit.appended == 3 + 5
    cache = lp._cache
    assert len(cache) == 3
    assert cache.labels == [None, None, None]
    assert (cache.refs[:3] > 0).all()
    q = head.querier(0, 2 * T0)
    got = q.select([Matcher(MatchType.EQUAL, "__name__", "a_total")], 0, 2 * T0)
    assert [s.labels.get("x") for s in got] == ["1", "2"]
    assert all(len(s.timestamps) == 3 for s in got)


def test_new_keys_resolve_after_labels_are_dropped() -> None:
    head = Head()
    lp = _loop(head)
    lp.process(BODY, "text/plain", T0)
    out = lp.process(BODY + b'a_total{x="3"} 4\n', "text/plain", T0 + 1000)
    assert out.series_added == 1
    assert lp._cache.labels == [None] * 4
    assert head.num_series == 4 + 5
