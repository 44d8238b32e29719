"""Fixtures for tests/web (helpers live in web_fixtures.py, importable by tests).

Under pytest's default import mode this module is imported as `conftest`, like
tests/conftest.py; tests elsewhere doing `from conftest import free_port` may get
this module, so it re-exports `free_port`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from vigil.storage.memory import MemoryStorage
from vigil.web import WebContext

from web_fixtures import (  # free_port: re-exported, see the note below
    NOW_S,
    SelectorEngine,
    TestClient,
    fill,
    free_port,  # noqa: F401
    make_client,
)


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
