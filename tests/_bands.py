"""The `band_width` fixture for block tests (import it into a test module to run
every test there twice: `from _bands import band_width  # noqa: F401`)."""

from __future__ import annotations

import pytest

from vigil.tsdb import block as block_mod


@pytest.fixture(autouse=True, params=["wide-bands", "narrow-bands"])
def band_width(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run with the default time bands and with narrow ones (20 minutes, or wider
    where a block would have over 4096), which cut the test data into many bands."""
    if request.param == "narrow-bands":
        monkeypatch.setattr(block_mod, "BAND_MS", 20 * 60 * 1000)
        monkeypatch.setattr(block_mod, "MAX_BANDS", 4096)
