"""Fixtures for tests/web (helpers live in web_fixtures.py, importable by tests)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from web_fixtures import NOW_S, SelectorEngine, TestClient, fill, make_client

from vigil.storage.memory import MemoryStorage
from vigil.web import WebContext


@pytest.fixture
def storage() -> MemoryStorage:
    s = MemoryStorage()
    fill(s)
    return s


@pytest.fixture
def ctx(storage: MemoryStorage) -> WebContext:
    return WebContext(storage=storage, engine=SelectorEngine(storage), now=lambda: NOW_S)


@pytest.fixture
def client(ctx: WebContext) -> Iterator[TestClient]:
    with make_client(ctx) as c:
        yield c
