from __future__ import annotations

from typing import Any

import cramjam

from vigil.model.labels import Labels
from vigil.storage.memory import MemoryStorage
from vigil.web import WebContext
from vigil.web.prompb import WriteRequest
from vigil.web.remote_write import encode_write_request

from web_fixtures import NOW_MS, make_client

HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}
NOW_S = NOW_MS / 1000


def rw_client(storage: MemoryStorage, **kw: Any) -> Any:
    return make_client(WebContext(storage=storage, now=lambda: NOW_S, **kw))


def dump(storage: MemoryStorage) -> dict[Labels, list[tuple[int, float]]]:
    q = storage.querier(0, 2**62)
    from vigil.model.matchers import Matcher, MatchType

    out = {}
    for sd in q.select([Matcher(MatchType.REGEX, "__name__", ".+")], 0, 2**62):
        out[sd.labels] = list(zip(sd.timestamps.tolist(), sd.values.tolist(), strict=True))
    return out


def raw_request(series: list[tuple[list[tuple[str, str]], list[tuple[int, float]]]]) -> bytes:
    """Labels in the given order (possibly unsorted or duplicated), snappy-compressed."""
    req = WriteRequest()
    for labels, samples in series:
        ts = req.timeseries.add()
        for k, v in labels:
            lb = ts.labels.add()
            lb.name, lb.value = k, v
        for t, v in samples:
            s = ts.samples.add()
            s.timestamp, s.value = t, v
    return bytes(cramjam.snappy.compress_raw(req.SerializeToString()))


def test_round_trip_and_cache() -> None:
    st = MemoryStorage()
    with rw_client(st) as c:
        body = encode_write_request(
            [
                ({"__name__": "a", "job": "j"}, [(NOW_MS - 1000, 1.0), (NOW_MS, 2.5)]),
                ({"__name__": "b", "x": "y", "empty": ""}, [(NOW_MS, -1.0)]),
            ]
        )
        r = c.post("/api/v1/write", content=body, headers=HEADERS)
        assert r.status_code == 204, r.text
        # The same series again: served from the ref cache.
        r = c.post(
            "/api/v1/write",
            content=encode_write_request([({"__name__": "a", "job": "j"}, [(NOW_MS + 1000, 3.0)])]),
            headers=HEADERS,
        )
        assert r.status_code == 204
        # No headers at all: Prometheus assumes snappy + v1.
        r = c.post(
            "/api/v1/write", content=encode_write_request([({"__name__": "c"}, [(NOW_MS, 0.0)])])
        )
        assert r.status_code == 204
        metrics = c.get("/metrics").text
    data = dump(st)
    assert data[Labels.from_dict({"__name__": "a", "job": "j"})] == [
        (NOW_MS - 1000, 1.0),
        (NOW_MS, 2.5),
        (NOW_MS + 1000, 3.0),
    ]
    assert data[Labels.from_dict({"__name__": "b", "x": "y"})] == [(NOW_MS, -1.0)]
    assert data[Labels.from_dict({"__name__": "c"})] == [(NOW_MS, 0.0)]
    assert "vigil_remote_write_samples_total 5.0" in metrics


def post_bad(
    body: bytes, status: int, contains: str, headers: dict[str, str] | None = None, **kw: Any
) -> None:
    st = MemoryStorage()
    with rw_client(st, **kw) as c:
        r = c.post("/api/v1/write", content=body, headers=headers or HEADERS)
    assert r.status_code == status, r.text
    assert contains in r.text, r.text
    assert dump(st) == {}, "a refused request must not store anything"


GOOD = ([("__name__", "ok")], [(NOW_MS, 1.0)])


def test_bad_snappy_and_protobuf() -> None:
    post_bad(b"\x05not snappy", 400, "snappy")
    post_bad(bytes(cramjam.snappy.compress_raw(b"\xff\xff\xff")), 400, "protobuf")


def test_invalid_labels_reject_whole_request() -> None:
    post_bad(raw_request([GOOD, ([("job", "x")], [(NOW_MS, 1.0)])]), 400, "__name__")
    post_bad(
        raw_request([GOOD, ([("__name__", "m"), ("a", "1"), ("a", "2")], [(NOW_MS, 1)])]),
        400,
        "duplicate label name 'a'",
    )
    post_bad(
        raw_request([GOOD, ([("__name__", "m"), ("b", "1"), ("a", "2")], [(NOW_MS, 1)])]),
        400,
        "unsorted",
    )
    post_bad(
        raw_request([GOOD, ([("", "v"), ("__name__", "m")], [(NOW_MS, 1)])]), 400, "empty name"
    )
    # Invalid UTF-8 in a label value: the protobuf string check refuses it.
    req = raw_request([([("__name__", "m"), ("a", "X")], [(NOW_MS, 1.0)])])
    raw = bytes(cramjam.snappy.decompress_raw(req)).replace(b"X", b"\xff")
    post_bad(bytes(cramjam.snappy.compress_raw(raw)), 400, "")


def test_future_samples_refused() -> None:
    post_bad(
        raw_request([GOOD, ([("__name__", "f")], [(NOW_MS + 11 * 60_000, 1.0)])]),
        400,
        "too far in the future",
    )


def test_size_limit_and_media_types() -> None:
    big = encode_write_request([({"__name__": "m", "v": "x" * 5000}, [(NOW_MS, 1.0)])])
    post_bad(big, 413, "limit", remote_write_max_bytes=4000)
    post_bad(
        encode_write_request([({"__name__": "m"}, [(NOW_MS, 1.0)])]),
        415,
        "gzip",
        headers={**HEADERS, "Content-Encoding": "gzip"},
    )
    post_bad(
        b"",
        415,
        "io.prometheus.write.v2.Request",
        headers={
            **HEADERS,
            "Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request",
        },
    )
    post_bad(b"", 415, "application/x-protobuf", headers={**HEADERS, "Content-Type": "text/plain"})


class RejectingStore(MemoryStorage):
    """A real MemoryStorage whose commit reports every sample as out of order."""

    def appender(self) -> Any:
        from vigil.storage.interface import CommitStats

        app = super().appender()
        orig = app.commit

        def commit() -> CommitStats:
            n = len(app._pending)
            app.rollback()
            orig()
            return CommitStats(out_of_order=n)

        app.commit = commit  # type: ignore[method-assign]
        return app


def test_out_of_order_is_400() -> None:
    st = RejectingStore()
    with rw_client(st) as c:
        r = c.post("/api/v1/write", content=raw_request([GOOD]), headers=HEADERS)
    assert r.status_code == 400
    assert "out of order: 1" in r.text
