from __future__ import annotations

import asyncio
import threading
import time

import pytest

from vigil.promql.errors import ExecutionError, ParseError
from vigil.web.params import ApiError
from vigil.web.query_runner import QueryRunner


def _where() -> str:
    return threading.current_thread().name


def test_cheap_shapes_run_inline_after_their_first_evaluation() -> None:
    runner = QueryRunner(threads=2, inline_budget_s=0.05)

    async def go() -> list[str]:
        return [await runner.run(("instant", "up"), _where, "up") for _ in range(3)]  # type: ignore[arg-type]

    first, second, third = asyncio.run(go())
    assert first.startswith("query")  # unknown cost: a query thread
    assert second == third == threading.current_thread().name  # known cheap: inline


def test_expensive_shapes_stay_on_query_threads() -> None:
    runner = QueryRunner(threads=2, inline_budget_s=0.001)

    def slow() -> str:
        time.sleep(0.01)
        return _where()

    async def go() -> list[str]:
        return [await runner.run(("range", "x", 3600, 15), slow, "x") for _ in range(3)]  # type: ignore[arg-type]

    assert all(name.startswith("query") for name in asyncio.run(go()))


def test_zero_budget_never_runs_inline() -> None:
    runner = QueryRunner(threads=1, inline_budget_s=0.0)

    async def go() -> list[str]:
        return [await runner.run("s", _where, "s") for _ in range(3)]  # type: ignore[arg-type]

    assert all(name.startswith("query") for name in asyncio.run(go()))


@pytest.mark.parametrize(
    ("exc", "error_type"),
    [
        (ParseError("1:5: parse error: unexpected end of input"), "bad_data"),
        (ExecutionError("many-to-many matching not allowed"), "execution"),
        (RuntimeError("boom"), "internal"),
    ],
)
def test_engine_errors_become_api_errors_inline_and_threaded(
    exc: Exception, error_type: str
) -> None:
    runner = QueryRunner(threads=1, inline_budget_s=10.0)

    def fail() -> None:
        where.append(_where())
        raise exc

    where: list[str] = []

    async def go() -> list[ApiError]:
        out = []
        for _ in range(2):  # threaded, then inline (a failure's cost is remembered too)
            with pytest.raises(ApiError) as info:
                await runner.run("bad", fail, "bad")  # type: ignore[arg-type]
            out.append(info.value)
        return out

    for err in asyncio.run(go()):
        assert err.error_type == error_type
    assert where[0].startswith("query") and where[1] == threading.current_thread().name
