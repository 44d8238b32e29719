"""Per-request context (request id, user id) carried in :mod:`contextvars`.

Context variables follow asyncio tasks and ``contextvars.copy_context()``-based
thread pools (Starlette's ``run_in_threadpool``), so a log line written deep inside a
handler carries the id of the request that caused it, even with many requests
interleaved on one event loop.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Any

request_id_var: ContextVar[str | None] = ContextVar("vigil_request_id", default=None)
user_id_var: ContextVar[str | None] = ContextVar("vigil_user_id", default=None)
# Extra fields bound for the current context; every log record inherits them.
fields_var: ContextVar[dict[str, Any] | None] = ContextVar("vigil_log_fields", default=None)


# Request ids come from os.urandom, 128 bits each, made 256 at a time: formatting
# one id costs more than the rest of the middleware's bookkeeping, and a batch
# costs one system call and one hex conversion. The pool is emptied in a forked
# child, whose ids must not repeat the parent's.
_POOL_BATCH = 256
_pool: list[tuple[str, bytes]] = []


def _refill() -> None:
    raw = os.urandom(16 * _POOL_BATCH).hex()
    _pool.extend(
        [(h, h.encode("ascii")) for h in (raw[i : i + 32] for i in range(0, len(raw), 32))]
    )


def take_request_id() -> tuple[str, bytes]:
    """Return a fresh random request id as text and as ASCII bytes."""
    try:
        return _pool.pop()  # atomic: two threads never get the same id
    except IndexError:
        _refill()
        return _pool.pop()


os.register_at_fork(after_in_child=_pool.clear)


def new_request_id() -> str:
    """Return a fresh random request id (32 lowercase hex characters)."""
    return take_request_id()[0]


def get_request_id() -> str | None:
    """Return the request id of the current context, or ``None`` outside a request."""
    return request_id_var.get()


def set_request_id(request_id: str | None) -> Token[str | None]:
    """Set the request id of the current context; returns a token for ``reset``."""
    return request_id_var.set(request_id)


def get_user_id() -> str | None:
    """Return the user id bound to the current context, if any."""
    return user_id_var.get()


def set_user_id(user_id: str | None) -> Token[str | None]:
    """Bind a user id to the current context (e.g. after authentication)."""
    return user_id_var.set(user_id)


@contextmanager
def bind(**fields: Any) -> Iterator[None]:
    """Add ``fields`` to every log record written inside the ``with`` block.

    ``request_id`` and ``user_id`` are routed to their dedicated variables; other
    keys become top-level JSON fields. Nested ``bind`` blocks merge, inner wins.
    """
    tokens: list[tuple[ContextVar[Any], Token[Any]]] = []
    rest = dict(fields)
    if "request_id" in rest:
        tokens.append((request_id_var, request_id_var.set(rest.pop("request_id"))))
    if "user_id" in rest:
        tokens.append((user_id_var, user_id_var.set(rest.pop("user_id"))))
    if rest:
        merged = {**(fields_var.get() or {}), **rest}
        tokens.append((fields_var, fields_var.set(merged)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)
