"""Where a query is evaluated: a query thread, or inline on the event loop.

The engine is CPU-bound and synchronous, so queries normally run in a pool of
`query_concurrency` threads and the event loop stays free for other requests.
Handing a query to a thread and its result back costs 50-100 us of pure latency
(two wake-ups), which is most of the time of a small dashboard query. Dashboards
and rule UIs send the same query texts over and over, so the runner remembers how
long each query shape took last time and evaluates shapes known to be cheaper
than `inline_budget_s` (2 ms by default) inline. A thread would not buy the loop
much during such a query anyway: Python threads share one interpreter lock, and
the loop can run only when the query thread releases it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor

from vigil.promql.errors import ParseError, PromQLError
from vigil.promql.result import QueryResult

from .params import ApiError, invalid_param

log = logging.getLogger("vigil.web")

_MAX_SHAPES = 4096


class QueryRunner:
    """Runs engine calls for the HTTP handlers; owns the query threads."""

    def __init__(self, threads: int, inline_budget_s: float = 0.002) -> None:
        self.pool = ThreadPoolExecutor(max(1, threads), thread_name_prefix="query")
        self.inline_budget_s = inline_budget_s
        # Query shape -> seconds its last evaluation took. Touched on the event
        # loop thread only.
        self._last_cost: dict[Hashable, float] = {}

    async def run(self, shape: Hashable, call: Callable[[], QueryResult], text: str) -> QueryResult:
        """Evaluate `call`; `shape` identifies queries of about the same cost (the
        text, and for range queries the span and step). Engine errors become
        `ApiError`s with Prometheus's error types."""
        inline = self._last_cost.get(shape, float("inf")) < self.inline_budget_s
        started = time.perf_counter()
        try:
            if inline:
                result = call()
            else:
                result = await asyncio.get_running_loop().run_in_executor(self.pool, call)
        except ParseError as exc:
            raise invalid_param("query", str(exc)) from None
        except PromQLError as exc:
            raise ApiError(exc.error_type, str(exc)) from None
        except Exception as exc:
            log.exception("query failed: %s", text)
            raise ApiError("internal", f"{type(exc).__name__}: {exc}") from None
        finally:
            # Failures count too: a timeout is expensive, a syntax error cheap.
            if len(self._last_cost) >= _MAX_SHAPES and shape not in self._last_cost:
                self._last_cost.clear()
            self._last_cost[shape] = time.perf_counter() - started
        return result
