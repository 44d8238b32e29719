"""Shared fixtures: where the shared conformance material lives, free ports."""

from __future__ import annotations

from pathlib import Path

import pytest

from _support import SHARED, free_port


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"shared material not found at {SHARED}")
    return SHARED


@pytest.fixture
def port() -> int:
    return free_port()
