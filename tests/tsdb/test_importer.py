"""Backfill: windows, ordering, duplicates, exposition files, and all-or-nothing."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import numpy as np
import pytest

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
