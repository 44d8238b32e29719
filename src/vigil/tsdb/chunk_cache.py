"""A bounded, thread-safe LRU cache of decoded block chunks.

Rule evaluation and dashboards run the same selectors over the same blocks again
and again; decoding a chunk (zstd + cumsums) dominates reading a block. A
`ChunkCache` shared by all blocks of a TSDB keeps the decoded (timestamps, values)
arrays of recently read chunks, bounded by their total bytes.

Keys are ``(owner, chunk index)`` where `owner` identifies one opened `Block`
instance (its ULID plus a per-process sequence number), so a block reopened, or
a different block that reuses a ULID, never sees another's entries. A block drops
its entries when it closes (compaction, retention, shutdown) with
`invalidate(owner)`; after that `put` for the owner is refused, so a late insert
cannot resurrect them.

Cached arrays are marked read-only (queriers hand out views of them); callers
must never write to what `get` returns. `max_bytes == 0` disables the cache.

Grouped owners: a block may decode its chunks into one contiguous arena (so a
query over many chunks reads one array instead of concatenating them) and put
views of it here with `on_evict`. Such an owner's entries leave together: when
the LRU order evicts one of them, all of them go and `on_evict()` runs (the block
then drops its arena), so the arena's memory is never held for chunks the cache
no longer counts.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

import numpy as np

ENTRY_OVERHEAD_BYTES = 256
"""Per-entry bookkeeping charged on top of the arrays' bytes (dict slots, tuples,
array headers), so many tiny chunks cannot overshoot the bound much."""

DEFAULT_CHUNK_CACHE_BYTES = 256 << 20
"""The cache of a TSDB opened without saying (tests, tools); the server sizes its
own with `auto_chunk_cache_bytes`."""

AUTO_MIN_BYTES = 256 << 20
AUTO_MAX_BYTES = 2 << 30


def memory_limit_bytes() -> int | None:
    """The memory this process may use: physical memory, or the cgroup's limit
    (containers) when that is lower; None where neither can be read."""
    limit: int | None = None
    try:
        limit = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        pass
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as fh:
                text = fh.read().strip()
        except OSError:
            continue
        if text.isdigit():  # "max" (v2) means no limit; v1 says so with a huge number
            cgroup = int(text)
            limit = cgroup if limit is None else min(limit, cgroup)
        break
    return limit


def auto_chunk_cache_bytes(memory: int | None = None) -> int:
    """A sixteenth of the memory the process may use, kept within 256 MiB-2 GiB.

    The cache only holds what queries decoded, so an idle server uses none of it;
    a block is decoded into one contiguous arena (no concatenation per query) only
    when it fits in half the cache, so a larger cache keeps large compacted blocks
    fast where memory allows."""
    memory = memory_limit_bytes() if memory is None else memory
    if not memory:
        return DEFAULT_CHUNK_CACHE_BYTES
    return max(AUTO_MIN_BYTES, min(AUTO_MAX_BYTES, memory // 16))


Owner = Hashable
_Entry = tuple[np.ndarray, np.ndarray, int]


class ChunkCache:
    """LRU of decoded chunks bounded by `max_bytes` (arrays + overhead)."""

    def __init__(self, max_bytes: int = DEFAULT_CHUNK_CACHE_BYTES) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = int(max_bytes)
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[Owner, int], _Entry] = OrderedDict()
        self._by_owner: dict[Owner, set[int]] = {}
        self._dead: set[Owner] = set()
        self._on_evict: dict[Owner, Callable[[], None]] = {}
        self._bytes = 0
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    @property
    def bytes(self) -> int:
        """Bytes charged for the entries held now (never above `max_bytes`)."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, owner: Owner, index: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The cached read-only (timestamps, values) of chunk `index`, or None."""
        key = (owner, index)
        with self._lock:
            e = self._entries.get(key)
            if e is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return e[0], e[1]

    def put(
        self,
        owner: Owner,
        index: int,
        ts: np.ndarray,
        vs: np.ndarray,
        on_evict: Callable[[], None] | None = None,
    ) -> bool:
        """Keep a decoded chunk; marks both arrays read-only. An entry bigger than the
        whole cache, or one for an invalidated owner, is not kept (returns False).
        With `on_evict` the owner is grouped (see the module doc)."""
        ts.flags.writeable = False
        vs.flags.writeable = False
        size = int(ts.nbytes) + int(vs.nbytes) + ENTRY_OVERHEAD_BYTES
        if size > self.max_bytes:
            return False
        key = (owner, index)
        evicted: list[Callable[[], None]] = []
        with self._lock:
            if owner in self._dead:
                return False
            if on_evict is not None:
                self._on_evict[owner] = on_evict
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[2]
            self._entries[key] = (ts, vs, size)
            self._by_owner.setdefault(owner, set()).add(index)
            self._bytes += size
            while self._bytes > self.max_bytes:
                (o, i), (_, _, sz) = self._entries.popitem(last=False)
                self._bytes -= sz
                self.evictions += 1
                idxs = self._by_owner.get(o)
                if idxs is not None:
                    idxs.discard(i)
                    if not idxs:
                        del self._by_owner[o]
                callback = self._on_evict.pop(o, None)
                if callback is not None:
                    self.evictions += self._drop_owner(o)
                    evicted.append(callback)
            kept = key in self._entries
        for callback in evicted:  # outside the lock: callbacks may take their own
            callback()
        return kept

    def _drop_owner(self, owner: Owner) -> int:
        idxs = self._by_owner.pop(owner, set())
        for i in idxs:
            e = self._entries.pop((owner, i), None)
            if e is not None:
                self._bytes -= e[2]
        return len(idxs)

    def invalidate(self, owner: Owner) -> int:
        """Drop every entry of `owner` and refuse later puts for it; returns how many
        entries were dropped. Owners are never reused, so refusing is safe."""
        with self._lock:
            self._dead.add(owner)
            self._on_evict.pop(owner, None)
            return self._drop_owner(owner)

    def clear(self) -> None:
        with self._lock:
            callbacks = list(self._on_evict.values())
            self._entries.clear()
            self._by_owner.clear()
            self._on_evict.clear()
            self._bytes = 0
        for callback in callbacks:
            callback()

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "hits": self.hits,
                "misses": self.misses,
                "evictions": self.evictions,
                "entries": len(self._entries),
                "bytes": self._bytes,
                "max_bytes": self.max_bytes,
            }
