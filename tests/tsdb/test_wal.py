"""WAL records, segments, replay and repair of torn or corrupt tails."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from vigil.model.labels import Labels
from vigil.model.samples import STALE_NAN, stale_mask
from vigil.tsdb import wal_records as rec
from vigil.tsdb.wal import WAL, ReplayReport, WALWriteError


def collect(w: WAL) -> tuple[dict[int, Labels], list[tuple[int, int, float]], ReplayReport]:
    series: dict[int, Labels] = {}
    samples: list[tuple[int, int, float]] = []

    def on_series(items: list[tuple[int, Labels]]) -> None:
        series.update(items)

    def on_samples(r: np.ndarray, t: np.ndarray, v: np.ndarray) -> None:
        samples.extend(zip(r.tolist(), t.tolist(), v.tolist(), strict=True))

    report = w.replay(on_series, on_samples)
    return series, samples, report


def write_batches(d: Path, n: int, **kw: object) -> WAL:
    w = WAL(d, **kw)  # type: ignore[arg-type]
    w.replay(lambda s: None, lambda r, t, v: None)
    w.start()
    for i in range(n):
        series = [(i + 1, Labels.from_dict({"__name__": "m", "i": str(i)}))]
        w.log_commit(series, np.array([i + 1]), np.array([i * 1000]), np.array([float(i)]))
    return w


def test_record_round_trip_and_compression() -> None:
    refs = np.arange(10_000, dtype=np.int64)
    ts = np.full(10_000, 1_700_000_000_000, dtype=np.int64)
    vs = np.zeros(10_000)
    vs[5] = STALE_NAN
    framed = rec.frame(rec.REC_SAMPLES, rec.encode_samples(refs, ts, vs), compress=True)
    assert len(framed) < 240_000 // 2  # zstd applied
    rtype, body, end = rec.unframe(framed, 0)
    assert rtype == rec.REC_SAMPLES and end == len(framed)
    r, t, v = rec.decode_samples(body)
    assert (r == refs).all() and (t == ts).all()
    assert stale_mask(v).tolist() == stale_mask(vs).tolist()
    labels = Labels.from_dict({"__name__": "ü", "a": 'q"\n\x00'})
    ser = rec.decode_series(rec.encode_series([(7, labels)]))
    assert ser == [(7, labels)]


def test_round_trip_and_restart(tmp_path: Path) -> None:
    w = write_batches(tmp_path, 20)
    w.close()
    series, samples, report = collect(WAL(tmp_path))
    assert len(series) == 20 and len(samples) == 20
    assert samples[3] == (4, 3000, 3.0)
    assert not report.corrupted


def test_segments_rotate(tmp_path: Path) -> None:
    w = write_batches(tmp_path, 200, segment_bytes=4096)
    w.close()
    assert len(WAL(tmp_path).segments()) > 2
    _, samples, _ = collect(WAL(tmp_path))
    assert len(samples) == 200


@pytest.mark.parametrize("garbage", [b"\x01\x02\x03", b"\xff" * 40, b"\x00" * 11])
def test_torn_tail_truncated(
    tmp_path: Path, garbage: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    w = write_batches(tmp_path, 10)
    w.close()
    seg = tmp_path / f"{WAL(tmp_path).segments()[-1]:08d}"
    good_size = seg.stat().st_size
    with open(seg, "ab") as f:
        f.write(garbage)
    with caplog.at_level(logging.WARNING):
        _, samples, report = collect(WAL(tmp_path))
    assert len(samples) == 10
    assert report.corrupt_file == str(seg) and report.corrupt_offset == good_size
    assert seg.stat().st_size == good_size
    assert str(seg) in caplog.text and str(good_size) in caplog.text
    # After repair the WAL is writable and replays cleanly.
    w2 = WAL(tmp_path)
    collect(w2)
    w2.start()
    w2.log_commit([], np.array([1]), np.array([99_000]), np.array([1.0]))
    w2.close()
    _, samples, report = collect(WAL(tmp_path))
    assert len(samples) == 11 and not report.corrupted


def test_partial_last_record(tmp_path: Path) -> None:
    w = write_batches(tmp_path, 10)
    w.close()
    seg = tmp_path / f"{WAL(tmp_path).segments()[-1]:08d}"
    data = seg.read_bytes()
    seg.write_bytes(data[:-5])  # the last record lost its tail
    _, samples, report = collect(WAL(tmp_path))
    assert len(samples) == 9 and report.corrupted


def test_crc_corruption_in_middle_stops_replay(tmp_path: Path) -> None:
    w = write_batches(tmp_path, 150, segment_bytes=4096)
    w.close()
    segs = WAL(tmp_path).segments()
    assert len(segs) >= 3
    victim = tmp_path / f"{segs[0]:08d}"
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    _, samples, report = collect(WAL(tmp_path))
    assert report.corrupt_file == str(victim)
    assert "checksum" in report.corrupt_reason or "torn" in report.corrupt_reason
    assert 0 < len(samples) < 150
    # Samples before the damage are intact and in order.
    assert [s[1] for s in samples] == [i * 1000 for i in range(len(samples))]
    assert len(report.moved_aside) == len(segs) - 1
    assert WAL(tmp_path).segments() == [segs[0]]


def test_checkpoint_replaces_old_segments(tmp_path: Path) -> None:
    w = write_batches(tmp_path, 5)
    upto = w.cut()
    w.log_commit([], np.array([1]), np.array([50_000]), np.array([5.0]))
    series = [(1, Labels.from_dict({"__name__": "m", "i": "0"}))]
    w.checkpoint(
        upto, series, [(np.array([1]), np.array([4000]), np.array([4.0]))], {"min_time": 0}
    )
    assert all(s > upto for s in w.segments())
    w.close()
    got_series, samples, report = collect(WAL(tmp_path))
    assert report.checkpoint == f"checkpoint.{upto:08d}"
    assert got_series == dict(series)
    assert samples == [(1, 4000, 4.0), (1, 50_000, 5.0)]


def test_fsync_policies(tmp_path: Path) -> None:
    for policy in ("always", "batch", "never"):
        w = write_batches(tmp_path / policy, 5, fsync=policy, fsync_interval_ms=5)
        seq = w.log_commit([], np.array([1]), np.array([1]), np.array([1.0]))
        w.wait_durable(seq)
        if policy == "always":
            assert w.fsyncs >= 1 and w._synced_seq >= seq
        w.close()
        assert len(collect(WAL(tmp_path / policy))[1]) == 6
    with pytest.raises(ValueError, match="fsync policy"):
        WAL(tmp_path / "x", fsync="sometimes")  # type: ignore[arg-type]


def test_write_failure_leaves_log_clean(tmp_path: Path) -> None:
    """A real write failure (file size limit -> EFBIG, standing in for ENOSPC)."""
    script = textwrap.dedent(
        f"""
        import resource, signal, numpy as np
        from pathlib import Path
        from vigil.tsdb.wal import WAL, ReplayReport, WALWriteError
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        w = WAL(Path({str(tmp_path)!r}), compress=False)
        w.replay(lambda s: None, lambda r, t, v: None)
        w.start()
        resource.setrlimit(resource.RLIMIT_FSIZE, (6000, resource.RLIM_INFINITY))
        ok = 0
        try:
            for i in range(1000):
                w.log_commit([], np.arange(10), np.full(10, i), np.zeros(10))
                ok += 1
        except WALWriteError as exc:
            print("ERR", exc)
        print("OK", ok)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert "ERR" in out and "WAL write to" in out and "not applied" in out
    ok = int(out.split("OK ")[1])
    _, samples, report = collect(WAL(tmp_path))
    assert len(samples) == ok * 10 and not report.corrupted


def test_not_open_for_writing(tmp_path: Path) -> None:
    w = WAL(tmp_path)
    with pytest.raises(WALWriteError, match="not open"):
        w.log_commit([], np.array([1]), np.array([1]), np.array([1.0]))
