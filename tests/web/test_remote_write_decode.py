"""The vectorised remote-write decoder against protobuf: same result, or the same refusal."""

from __future__ import annotations

import random
import struct
from typing import Any

import cramjam
import numpy as np
import pytest
from test_remote_write import HEADERS, dump, rw_client

from vigil.model.labels import Labels
from vigil.storage.interface import AppendError
from vigil.storage.memory import MemoryStorage
from vigil.web.prompb import WriteRequest
from vigil.web.remote_write import RemoteWriteError, RemoteWriteReceiver, encode_write_request
from vigil.web.rw_decode import scan

from web_fixtures import NOW_MS


class Registry:
    """An appender that names each series by its labels, so refs from two receivers
    can be compared."""

    def __init__(self) -> None:
        self.labels: list[Labels] = []

    def series_ref(self, labels: Labels) -> int:
        self.labels.append(labels)
        return len(self.labels) - 1


Outcome = tuple[str, Any]


def decoded(payload: bytes, fast: bool) -> Outcome:
    reg = Registry()
    rx = RemoteWriteReceiver(reg)
    try:
        b = rx.decode(payload, reg) if fast else rx._decode_protobuf(payload, reg)
    except RemoteWriteError as err:
        return ("error", err.status)
    return (
        "ok",
        [
            (reg.labels[r], t, v)
            for r, t, v in zip(
                b.refs.tolist(),
                b.timestamps.tolist(),
                b.values.view(np.uint64).tolist(),  # bits: NaN == NaN, -0.0 != 0.0
                strict=True,
            )
        ],
    )


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: int, body: bytes) -> bytes:
    return bytes([tag]) + _varint(len(body)) + body


def random_request(rng: random.Random) -> bytes:
    """A valid WriteRequest in the shapes real clients send, and some they rarely do."""
    req = WriteRequest()
    names = ["a", "instance", "job", "le", "zone", "\u00e9t\u00e9"]
    extra: dict[int, bytes] = {}
    for i in range(rng.randint(0, 6)):
        ts = req.timeseries.add()
        labels = [("__name__", rng.choice(["m", "up", "x" * 130]))]
        labels += [(n, rng.choice(["", "v", "w" * rng.choice([1, 127, 128, 300])])) for n in names]
        for k, v in sorted(rng.sample(labels[1:], rng.randint(0, 3)) + labels[:1]):
            ts.labels.add(name=k, value=v)
        for _ in range(rng.choice([0, 1, 1, 1, 2, 5])):
            ts.samples.add(
                timestamp=-1
                if rng.random() < 0.01  # protobuf's path: 10-byte varint
                else rng.choice([NOW_MS, NOW_MS - 15_000, 0, 1, 127, 128, 2**62]),
                value=rng.choice([0.0, -0.0, 1.5, float("nan"), float("inf"), 1e300]),
            )
        if rng.random() < 0.1:  # an exemplar: skipped by both decoders
            extra[i] = _field(0x1A, _field(0x12, b"\x09" + struct.pack("<d", 1.0)))
    raw = b""
    for i, ts in enumerate(req.timeseries):
        raw += _field(0x0A, ts.SerializeToString() + extra.get(i, b""))
    if rng.random() < 0.05:
        raw += _field(0x1A, _field(0x12, b"metric"))  # metadata
    return raw


def mutate(rng: random.Random, raw: bytes) -> bytes:
    if not raw:
        return raw
    i = rng.randrange(len(raw))
    kind = rng.randrange(4)
    if kind == 0:
        return raw[:i]
    if kind == 1:
        return raw[:i] + bytes([rng.randrange(256)]) + raw[i + 1 :]
    if kind == 2:
        return raw[:i] + raw[i + 1 :]
    return raw[:i] + bytes([rng.randrange(256)]) + raw[i:]


def test_fast_path_matches_protobuf_on_valid_requests() -> None:
    rng = random.Random(1)
    fast_used = 0
    for _ in range(1500):
        raw = random_request(rng)
        fast_used += scan(raw) is not None
        assert decoded(raw, fast=True) == decoded(raw, fast=False), raw
    assert fast_used > 1000, "the usual shapes must take the fast path"


@pytest.mark.parametrize("seed", range(4))
def test_fast_path_matches_protobuf_on_mutated_requests(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(1500):
        raw = random_request(rng)
        for _ in range(rng.randint(1, 3)):
            raw = mutate(rng, raw)
        assert decoded(raw, fast=True) == decoded(raw, fast=False), raw


def test_common_shape_takes_fast_path() -> None:
    req = WriteRequest()
    for i in range(50):
        ts = req.timeseries.add()
        ts.labels.add(name="__name__", value="m")
        ts.labels.add(name="i", value=str(i))
        ts.samples.add(timestamp=NOW_MS, value=float(i))
        ts.samples.add(timestamp=NOW_MS + 1, value=0.0)
    raw = req.SerializeToString()
    layout = scan(raw)
    assert layout is not None
    assert layout.sample_series.tolist() == [i // 2 for i in range(100)]
    assert layout.timestamps.tolist() == [NOW_MS, NOW_MS + 1] * 50
    assert layout.values.tolist() == [v for i in range(50) for v in (float(i), 0.0)]


def test_truncated_bodies_are_refused_and_store_nothing() -> None:
    rng = random.Random(7)
    req = WriteRequest()
    for i in range(20):
        ts = req.timeseries.add()
        ts.labels.add(name="__name__", value="metric")
        ts.labels.add(name="series", value=str(i))
        ts.samples.add(timestamp=NOW_MS - 1000, value=float(i))
    raw = req.SerializeToString()
    body = bytes(cramjam.snappy.compress_raw(raw))
    st = MemoryStorage()
    with rw_client(st) as c:
        # Truncated snappy: always corrupt.
        for cut in sorted(rng.sample(range(len(body)), 40)):
            r = c.post("/api/v1/write", content=body[:cut], headers=HEADERS)
            assert r.status_code == 400, (cut, r.text)
        assert dump(st) == {}
        # Truncated protobuf: refused unless the cut falls between two series.
        for cut in range(1, len(raw)):
            part = raw[:cut]
            r = c.post(
                "/api/v1/write",
                content=bytes(cramjam.snappy.compress_raw(part)),
                headers=HEADERS,
            )
            whole = len(WriteRequest.FromString(raw[:cut]).timeseries) if _parses(part) else -1
            if whole < 0:
                assert r.status_code == 400, (cut, r.text)
                assert "protobuf" in r.text or "invalid labels" in r.text or "__name__" in r.text
            else:
                assert r.status_code == 204, (cut, r.text)
            st.clear()


def _parses(raw: bytes) -> bool:
    try:
        req = WriteRequest.FromString(raw)
    except Exception:
        return False
    return all(any(lb.name == "__name__" and lb.value for lb in t.labels) for t in req.timeseries)


class CollectingStore(MemoryStorage):
    """A MemoryStorage that can collect a series, as the TSDB head does with series
    left without samples: the old ref becomes unknown and is refused."""

    def __init__(self) -> None:
        super().__init__()
        self.dead: set[int] = set()

    def collect(self, labels: Labels) -> None:
        with self._lock:
            ref = self._by_labels.pop(labels)
            self._series[ref].samples.clear()
            self.dead.add(ref)

    def appender(self) -> Any:
        app = super().appender()
        orig = app.append_refs

        def append_refs(refs: np.ndarray, ts: np.ndarray, vs: np.ndarray) -> None:
            if self.dead & set(refs.tolist()):
                raise AppendError("unknown series ref")
            orig(refs, ts, vs)

        app.append_refs = append_refs  # type: ignore[method-assign]
        return app


def test_stale_cached_refs_are_resolved_again() -> None:
    """A cached ref to a collected series must not fail every later request for it."""
    st = CollectingStore()
    rx = RemoteWriteReceiver(st)
    series = {"__name__": "m", "job": "j"}
    assert rx.write(encode_write_request([(series, [(1000, 1.0)])], compress=False), NOW_MS, 0)
    st.collect(Labels.from_dict(series))
    body = encode_write_request([(series, [(3000, 2.0)])], compress=False)
    assert rx.write(body, NOW_MS, 0) == 1
    assert dump(st)[Labels.from_dict(series)] == [(3000, 2.0)]
