"""The OpenMetrics project's parser test suite, run against `vigil.scrape.exposition.parse`.

Each case directory holds `metrics` (the body) and `test.json` (`shouldParse`). The
suite lives in the shared tree next to the repository, not in it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vigil.scrape.exposition import ExpositionError, parse

SUITE = Path(__file__).resolve().parents[2].parent / "shared" / "conformance" / "openmetrics"
CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def _cases() -> list[Path]:
    if not SUITE.is_dir():
        return []
    return sorted(p for p in SUITE.iterdir() if (p / "test.json").is_file())


CASES = _cases()


@pytest.mark.skipif(not CASES, reason=f"OpenMetrics conformance suite not found at {SUITE}")
@pytest.mark.parametrize("case", CASES, ids=[p.name for p in CASES])
def test_case(case: Path) -> None:
    spec = json.loads((case / "test.json").read_text())
    assert spec.get("type", "text") == "text"
    body = (case / spec.get("file", "metrics")).read_bytes()
    if spec["shouldParse"]:
        out = parse(body, CONTENT_TYPE)
        assert out.openmetrics
        assert len(out.keys) == len(out.values) == len(out.timestamps)
    else:
        with pytest.raises(ExpositionError) as info:
            parse(body, CONTENT_TYPE)
        assert info.value.line >= 1
        assert str(info.value).startswith(f"line {info.value.line}: ")


@pytest.mark.skipif(not CASES, reason=f"OpenMetrics conformance suite not found at {SUITE}")
def test_suite_is_complete() -> None:
    # A truncated checkout would silently test less.
    assert len(CASES) >= 211
