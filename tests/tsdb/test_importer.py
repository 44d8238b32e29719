"""Backfill: windows, ordering, duplicates, exposition files, and all-or-nothing."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import numpy as np
import pytest

from _bands import band_width  # noqa: F401 - autouse: every test with wide and narrow bands
from vigil.model.labels import Labels
from vigil.model.matchers import Matcher, MatchType
from vigil.model.samples import STALE_NAN
from vigil.storage.interface import SeriesData
from vigil.tsdb.block import Block
from vigil.tsdb.importer import BackfillError, import_exposition, import_series
from vigil.tsdb.merge import MergeQuerier

H2 = 7_200_000
ALL = (-(2**62), 2**62)
HAVE_PARSER = importlib.util.find_spec("vigil.scrape.exposition") is not None
needs_parser = pytest.mark.skipif(not HAVE_PARSER, reason="vigil.scrape.exposition not present")


def blocks_in(d: Path) -> list[Block]:
    return [Block.open(p) for p in sorted(d.iterdir()) if not p.name.startswith(".")]


def read_all(d: Path) -> dict[Labels, tuple[list[int], list[float]]]:
    blocks = blocks_in(d)
    mq = MergeQuerier([b.querier(*ALL) for b in blocks])
    out = {s.labels: (s.timestamps.tolist(), s.values.tolist()) for s in mq.select([], *ALL)}
    mq.close()
    for b in blocks:
        b.close()
    return out


def L(name: str, **kw: str) -> Labels:
    return Labels.from_dict({"__name__": name, **kw})


def test_import_series_windows_and_order(tmp_path: Path) -> None:
    a, b = L("a", x="1"), L("b")
    # Out of order, repeated labels, spanning windows, negative (pre-1970) times.
    series = [
        SeriesData(b, np.array([H2 + 5, 10]), np.array([2.0, 1.0])),
        SeriesData(a, np.array([3 * H2, -5]), np.array([3.0, STALE_NAN])),
        SeriesData(a, np.array([100, 3 * H2]), np.array([4.0, 30.0])),
        SeriesData(b, np.array([], dtype=np.int64), np.array([])),
    ]
    rep = import_series(series, tmp_path)
    assert rep.samples == 5 and rep.duplicates == 1 and rep.series == 2
    assert rep.mint == -5 and rep.maxt == 3 * H2
    blocks = blocks_in(tmp_path)
    metas = sorted((b.meta.mint, b.meta.maxt) for b in blocks)
    for blk in blocks:
        blk.close()
    assert metas == [(-5, -5), (10, 100), (H2 + 5, H2 + 5), (3 * H2, 3 * H2)]
    assert len(rep.blocks) == 4 and all(p.parent == tmp_path for p in rep.blocks)
    data = read_all(tmp_path)
    assert data[a][0] == [-5, 100, 3 * H2]
    assert data[a][1][1:] == [4.0, 30.0]  # the later sample at 3*H2 wins
    assert data[b] == ([10, H2 + 5], [1.0, 2.0])
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    doc = rep.to_dict()
    assert doc["samples"] == 5 and doc["minTime"] == -5 and len(doc["blocks"]) == 4


def test_import_series_bad_input_leaves_nothing(tmp_path: Path) -> None:
    good = SeriesData(L("a"), np.array([1]), np.array([1.0]))
    bad = SeriesData(L("b"), np.array([1, 2]), np.array([1.0]))
    with pytest.raises(BackfillError, match="2 timestamps, 1 values"):
        import_series([good, bad], tmp_path)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="positive"):
        import_series([good], tmp_path, block_duration_ms=0)


PROM_TEXT = b"""# HELP http_requests_total Requests.
# TYPE http_requests_total counter
http_requests_total{code="200",method="GET"} 10 1000
http_requests_total{code="200",method="GET"} 12 16000
http_requests_total{code="500",method="GET"} 1 16000
# a comment
old_metric 1.5 -86400000000
old_metric 2.5 946684800000
http_requests_total{method="GET",code="200"} 13 7200000
"""

OM_TEXT = b"""# TYPE temp_celsius gauge
# UNIT temp_celsius celsius
temp_celsius{room="a"} 21.5 1.000
temp_celsius{room="a"} NaN 16.5
temp_celsius{room="b"} +Inf 946684800
# EOF
"""


@needs_parser
def test_import_prometheus_text(tmp_path: Path) -> None:
    rep = import_exposition(io.BytesIO(PROM_TEXT), tmp_path)
    assert rep.samples == 6
    data = read_all(tmp_path)
    ok = L("http_requests_total", code="200", method="GET")
    assert data[ok] == ([1000, 16000, 7_200_000], [10.0, 12.0, 13.0])
    assert data[L("old_metric")] == ([-86_400_000_000, 946_684_800_000], [1.5, 2.5])
    # Three windows: 1970's first two hours, the next, 1967 and 2000.
    assert len(rep.blocks) == 4


@needs_parser
def test_import_openmetrics_file(tmp_path: Path) -> None:
    src = tmp_path / "in.om"
    src.write_bytes(OM_TEXT)
    out = tmp_path / "data"
    rep = import_exposition(src, out)
    assert rep.samples == 3
    data = read_all(out)
    ts, vs = data[L("temp_celsius", room="a")]
    assert ts == [1000, 16500] and vs[0] == 21.5 and np.isnan(vs[1])
    assert data[L("temp_celsius", room="b")] == ([946_684_800_000], [float("inf")])
    q = Matcher(MatchType.EQUAL, "room", "b")
    blocks = blocks_in(out)
    mq = MergeQuerier([b.querier(*ALL) for b in blocks])
    assert len(mq.select([q], *ALL)) == 1
    mq.close()
    for b in blocks:
        b.close()


@needs_parser
@pytest.mark.parametrize(
    ("body", "content_type", "match"),
    [
        (PROM_TEXT + b"no_ts 1\n", None, "no timestamp"),
        (PROM_TEXT + b"broken{ 1 2\n", None, "line 10"),
        (OM_TEXT.replace(b"# EOF\n", b'temp_celsius{room="c"} 1\n# EOF\n'), None, "no timestamp"),
    ],
)
def test_malformed_input_leaves_no_block(
    tmp_path: Path, body: bytes, content_type: str | None, match: str
) -> None:
    with pytest.raises(BackfillError, match=match):
        import_exposition(io.BytesIO(body), tmp_path, content_type=content_type)
    assert list(tmp_path.iterdir()) == []


@needs_parser
def test_progress_bar_on_large_inputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from vigil.tsdb import importer

    monkeypatch.setattr(importer, "_PROGRESS_MIN_BYTES", 10)
    src = tmp_path / "in.txt"
    src.write_bytes(PROM_TEXT)
    rep = import_exposition(src, tmp_path / "data", progress=True)
    assert rep.samples == 6
    err = capsys.readouterr().err
    assert "parsing" in err and "writing" in err and "blocks" in err


def _reference(
    chunks: list[tuple[Labels, list[int], list[float]]],
) -> dict[Labels, tuple[list[int], list[float]]]:
    got: dict[Labels, dict[int, float]] = {}
    for ls, ts, vs in chunks:
        for t, v in zip(ts, vs, strict=True):
            got.setdefault(ls, {})[t] = v  # the later sample wins
    return {ls: (sorted(d), [d[t] for t in sorted(d)]) for ls, d in got.items()}


@pytest.mark.parametrize("seed", range(6))
def test_import_series_matches_reference(tmp_path: Path, seed: int) -> None:
    # Series-major, time-major and shuffled inputs, split at random, with repeats:
    # covers both the run-ordered (streamed) and the sorted way of writing a window.
    rng = np.random.default_rng(seed)
    names = [L("m", i=str(i)) for i in rng.permutation(12)]
    samples = [(ls, int(t)) for ls in names for t in rng.integers(-H2, 4 * H2, 40)]
    mode = seed % 3
    if mode == 1:
        samples.sort(key=lambda s: s[1])
    elif mode == 2:
        samples = [samples[i] for i in rng.permutation(len(samples))]
    else:
        samples.sort(key=lambda s: (names.index(s[0]), s[1]))
    chunks: list[tuple[Labels, list[int], list[float]]] = []
    for k, (ls, t) in enumerate(samples):
        if chunks and chunks[-1][0] == ls and rng.random() < 0.8:
            chunks[-1][1].append(t)
            chunks[-1][2].append(float(k))
        else:
            chunks.append((ls, [t], [float(k)]))
    rep = import_series(
        [SeriesData(ls, np.array(ts), np.array(vs)) for ls, ts, vs in chunks], tmp_path
    )
    want = _reference(chunks)
    assert read_all(tmp_path) == want
    assert rep.samples == sum(len(ts) for ts, _ in want.values())
    assert rep.duplicates == len(samples) - rep.samples
    assert rep.series == len(want)


def test_import_series_run_going_back_across_adds(tmp_path: Path) -> None:
    # One run of a series split over two appends whose times go back: it must be
    # sorted (and deduplicated), not streamed as it was written.
    a, b = L("a"), L("b")
    series = [
        SeriesData(b, np.array([1, 2]), np.array([1.0, 2.0])),
        SeriesData(a, np.array([5, 6]), np.array([5.0, 6.0])),
        SeriesData(a, np.array([3, 6]), np.array([3.0, 60.0])),
    ]
    rep = import_series(series, tmp_path)
    assert rep.duplicates == 1 and rep.samples == 5
    assert read_all(tmp_path) == {a: ([3, 5, 6], [3.0, 5.0, 60.0]), b: ([1, 2], [1.0, 2.0])}


def test_import_series_far_apart_windows(tmp_path: Path) -> None:
    # More than 65536 windows between samples of one append.
    a = L("a")
    ts = np.array([70_000 * H2 + 1, 0, 5 * H2, 70_000 * H2])
    rep = import_series([SeriesData(a, ts, np.arange(4.0))], tmp_path)
    assert len(rep.blocks) == 3 and rep.samples == 4
    assert read_all(tmp_path) == {a: ([0, 5 * H2, 70_000 * H2, 70_000 * H2 + 1], [1, 2, 3, 0])}


def test_run_starts_matches_neighbour_comparison() -> None:
    from vigil.tsdb.importer import _run_starts

    rng = np.random.default_rng(7)
    for trial in range(300):
        if trial % 3 == 0:
            keys = [str(k) for k in rng.integers(0, 3, int(rng.integers(1, 3000)))]
        else:
            keys = []
            for k in rng.integers(0, 4, int(rng.integers(1, 40))):
                keys += [f"k{k}"] * int(rng.integers(1, 500))
        want = [0] + [i for i in range(1, len(keys)) if keys[i] != keys[i - 1]]
        assert _run_starts(keys) == want


@needs_parser
def test_import_time_major_text_with_repeats(tmp_path: Path) -> None:
    # One sample per series in a row (a scrape after a scrape), one repeated.
    lines = [f'm{{i="{i}"}} {t} {t * 1000}' for t in range(50) for i in range(30)]
    lines.append('m{i="3"} -1 49000')
    rep = import_exposition(io.BytesIO(("\n".join(lines) + "\n").encode()), tmp_path)
    assert rep.series == 30 and rep.samples == 1500 and rep.duplicates == 1
    data = read_all(tmp_path)
    assert data[L("m", i="3")][1][-1] == -1.0
    assert data[L("m", i="7")] == ([t * 1000 for t in range(50)], [float(t) for t in range(50)])
