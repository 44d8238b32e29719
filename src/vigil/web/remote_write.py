"""Prometheus remote-write 1.0 receiver: snappy + protobuf `prometheus.WriteRequest`.

Decoding avoids per-label Python work for series seen before: labels are read as
raw bytes (see `prompb.FastWriteRequest`), the bytes of a series' labels key a
cache of store refs, and only new series are decoded, validated and registered.
A whole request is validated before anything is appended, then appended with one
`append_refs` call and committed, so a bad request changes nothing.

Answers (as Prometheus): 204 on success; 400 for bad snappy, bad protobuf, bad
labels, samples too far in the future, and samples the store rejects (out of
order, duplicate, out of bounds; a client must not retry those); 413 when the body
is too large; 415 for other encodings and for remote-write 2.0 messages.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cramjam
import numpy as np
from google.protobuf.message import DecodeError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from vigil.model.labels import METRIC_NAME, Labels
from vigil.storage.interface import AppendError

from .context import WebContext
from .prompb import FastWriteRequest, KeyWriteRequest, TimeSeries, WriteRequest
from .rw_decode import scan

log = logging.getLogger("vigil.web.remote_write")

V1_PROTO = "prometheus.WriteRequest"
V2_PROTO = "io.prometheus.write.v2.Request"


class RemoteWriteError(Exception):
    """A request refused with `status` and a message naming the problem."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(slots=True)
class DecodedBatch:
    """A decoded request: parallel int64 refs / int64 ms timestamps / float64 values."""

    refs: np.ndarray
    timestamps: np.ndarray
    values: np.ndarray
    series: int
    new_series: int


def _validate_labels(pairs: list[tuple[str, str]], index: int) -> Labels:
    """Remote-write 1.0 rules: __name__ present, names non-empty, sorted, unique."""
    prev = ""
    name = ""
    for i, (k, v) in enumerate(pairs):
        if not k:
            raise RemoteWriteError(400, f"series {index}: label {i} has an empty name")
        if i and k <= prev:
            what = "duplicate" if k == prev else "unsorted"
            raise RemoteWriteError(
                400, f"series {index}: {what} label name {k!r} (labels must be sorted and unique)"
            )
        prev = k
        if k == METRIC_NAME:
            name = v
    if not name:
        raise RemoteWriteError(400, f"series {index}: missing or empty __name__ label in {pairs!r}")
    return Labels.from_sorted((k, v) for k, v in pairs if v != "")


class RemoteWriteReceiver:
    """Decodes and stores remote-write requests. Thread-safe; one per store."""

    def __init__(self, storage: Any, max_cache: int = 2_000_000) -> None:
        self._storage = storage
        self._cache: dict[bytes, int] = {}
        self._max_cache = max_cache
        self._lock = threading.Lock()
        self.requests_total = 0
        self.samples_total = 0
        self.rejected_total = 0

    def decode(self, payload: bytes, appender: Any) -> DecodedBatch:
        """Protobuf bytes -> refs/timestamps/values. New series are registered via
        `appender.series_ref` only after the whole request validated."""
        layout = scan(payload)
        if layout is None:
            return self._decode_protobuf(payload, appender)
        keys = layout.keys(payload)
        refs = list(map(self._cache.get, keys))
        new = self._validate_new(keys, refs)
        if new:
            refs = self._register(new, keys, refs, appender)
        ref_arr = np.array(refs, dtype=np.int64)
        if not layout.one_sample_each:
            ref_arr = ref_arr[layout.sample_series]
        return DecodedBatch(ref_arr, layout.timestamps, layout.values, len(keys), len(new))

    def _validate_new(self, keys: list[bytes], refs: list[int | None]) -> dict[bytes, Labels]:
        """Labels of the keys not in the cache, each parsed and validated once."""
        new: dict[bytes, Labels] = {}
        if None not in refs:
            return new
        for i, r in enumerate(refs):
            if r is None and keys[i] not in new:
                try:
                    ts = TimeSeries.FromString(keys[i])
                except DecodeError as exc:
                    raise RemoteWriteError(400, f"series {i}: invalid labels: {exc}") from None
                new[keys[i]] = _validate_labels([(lb.name, lb.value) for lb in ts.labels], i)
        return new

    def _register(
        self,
        new: dict[bytes, Labels],
        keys: list[bytes],
        refs: list[int | None],
        appender: Any,
    ) -> list[int | None]:
        cache = self._cache
        if len(cache) + len(new) > self._max_cache:
            with self._lock:
                cache.clear()
        for k, labels in new.items():
            cache[k] = appender.series_ref(labels)
        refs = [cache.get(k) if r is None else r for k, r in zip(keys, refs, strict=True)]
        if None in refs:  # the cache was cleared concurrently
            refs = [
                appender.series_ref(_labels_of(k)) if r is None else r
                for k, r in zip(keys, refs, strict=True)
            ]
        return refs

    def _decode_protobuf(self, payload: bytes, appender: Any) -> DecodedBatch:
        """The general path: any valid encoding, and the errors for invalid ones."""
        try:
            keys_msg = KeyWriteRequest.FromString(payload)
            samples_msg = FastWriteRequest.FromString(payload)
        except DecodeError as exc:
            raise RemoteWriteError(400, f"cannot decode the protobuf WriteRequest: {exc}") from None
        # Drop everything but labels so each series re-serializes to its label bytes.
        keys_msg.DiscardUnknownFields()
        keys = [t.SerializeToString() for t in keys_msg.timeseries]
        refs: list[int | None] = [self._cache.get(k) for k in keys]
        new = self._validate_new(keys, refs)
        tss = samples_msg.timeseries
        counts = [len(t.samples) for t in tss]
        ts_list = [s.timestamp for t in tss for s in t.samples]
        vs_list = [s.value for t in tss for s in t.samples]
        if new:
            refs = self._register(new, keys, refs, appender)
        ref_arr = np.repeat(np.asarray(refs, dtype=np.int64), counts)
        return DecodedBatch(
            ref_arr,
            np.asarray(ts_list, dtype=np.int64),
            np.asarray(vs_list, dtype=np.float64),
            len(keys),
            len(new),
        )

    def write(self, payload: bytes, now_ms: int, max_ahead_ms: int) -> int:
        """Decode, validate, append and commit one request; returns samples stored."""
        app = self._storage.appender()
        try:
            batch = self.decode(payload, app)
            if batch.timestamps.size and int(batch.timestamps.max()) > now_ms + max_ahead_ms:
                raise RemoteWriteError(
                    400, "out of bounds: a sample's timestamp is too far in the future"
                )
            if batch.refs.size:
                try:
                    app.append_refs(batch.refs, batch.timestamps, batch.values)
                except AppendError:
                    # A cached ref the store no longer knows (the TSDB collects series
                    # that went without samples): forget every ref, resolve again.
                    with self._lock:
                        self._cache.clear()
                    batch = self.decode(payload, app)
                    app.append_refs(batch.refs, batch.timestamps, batch.values)
        except BaseException:
            app.rollback()
            raise
        stats = app.commit()
        self.requests_total += 1
        self.samples_total += stats.appended
        if stats.rejected:
            self.rejected_total += stats.rejected
            raise RemoteWriteError(
                400,
                f"{stats.rejected} of {batch.refs.size} samples rejected: "
                f"out of order: {stats.out_of_order}, duplicate timestamp with a different "
                f"value: {stats.duplicate}, out of bounds: {stats.out_of_bounds}",
            )
        return stats.appended


def _labels_of(key: bytes) -> Labels:
    ts = TimeSeries.FromString(key)
    return Labels.from_sorted((lb.name, lb.value) for lb in ts.labels if lb.value)


def _snappy_decode(body: bytes, max_bytes: int) -> bytes:
    # The raw snappy block starts with the uncompressed length as a varint: check
    # it before allocating anything.
    length, shift = 0, 0
    for i, byte in enumerate(body[:10]):
        length |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            break
        if i == 9:
            raise RemoteWriteError(400, "snappy: corrupt input (bad length header)")
    if length > max_bytes:
        raise RemoteWriteError(
            413, f"decompressed body is {length} bytes, more than the limit of {max_bytes}"
        )
    try:
        return bytes(cramjam.snappy.decompress_raw(body))
    except Exception as exc:  # cramjam raises its own DecompressionError
        raise RemoteWriteError(400, f"snappy: corrupt input: {exc}") from None


def check_headers(content_type: str, content_encoding: str) -> None:
    """Prometheus's media-type checks for remote write (415 when refused)."""
    enc = content_encoding.strip().lower()
    if enc not in ("", "snappy"):
        raise RemoteWriteError(
            415,
            f"{content_encoding} encoding (compression) is not accepted by this server; "
            "only snappy is acceptable",
        )
    if not content_type:
        return
    parts = [p.strip() for p in content_type.split(";")]
    if parts[0].lower() != "application/x-protobuf":
        raise RemoteWriteError(
            415, f"expected application/x-protobuf as the Content-Type, got {content_type}"
        )
    for p in parts[1:]:
        key, _, val = p.partition("=")
        if key.strip().lower() == "proto":
            val = val.strip().strip('"')
            if val == V2_PROTO:
                raise RemoteWriteError(
                    415,
                    f"{V2_PROTO} protobuf message is not accepted by this server; "
                    f"accepted: {V1_PROTO}",
                )
            if val not in ("", V1_PROTO):
                raise RemoteWriteError(415, f"unknown remote write protobuf message {val}")


async def _read_body(request: Request, max_bytes: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise RemoteWriteError(413, f"request body exceeds the limit of {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise RemoteWriteError(413, f"request body exceeds the limit of {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def make_handler(ctx: WebContext, receiver: RemoteWriteReceiver) -> Any:
    async def remote_write(request: Request) -> Response:
        try:
            check_headers(
                request.headers.get("content-type", ""),
                request.headers.get("content-encoding", ""),
            )
            body = await _read_body(request, ctx.remote_write_max_bytes)
            payload = _snappy_decode(body, ctx.remote_write_max_bytes)
            now_ms = int(ctx.now() * 1000)
            await run_in_threadpool(receiver.write, payload, now_ms, ctx.remote_write_max_ahead_ms)
        except RemoteWriteError as err:
            return PlainTextResponse(err.message + "\n", status_code=err.status)
        return Response(status_code=204)

    return remote_write


def encode_write_request(
    series: Iterable[tuple[Mapping[str, str], Sequence[tuple[int, float]]]],
    *,
    compress: bool = True,
) -> bytes:
    """A remote-write body: labels are sorted by name; `compress` applies snappy.

    Each item is (labels, [(timestamp_ms, value), ...]). Meant for tests, the
    benchmark and tools that push to Vigil or to any remote-write receiver.
    """
    req = WriteRequest()
    for labels, samples in series:
        ts = req.timeseries.add()
        for k in sorted(labels):
            lb = ts.labels.add()
            lb.name = k
            lb.value = labels[k]
        for t, v in samples:
            s = ts.samples.add()
            s.timestamp = int(t)
            s.value = float(v)
    raw = req.SerializeToString()
    return bytes(cramjam.snappy.compress_raw(raw)) if compress else raw
