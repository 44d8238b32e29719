"""Fixtures for SDK tests."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# Make sdk_helpers importable by the test modules here (no __init__.py in tests).
if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

from sdk_helpers import Sink, run_sink


@pytest.fixture
def sink() -> Iterator[Sink]:
    with run_sink() as s:
        yield s
