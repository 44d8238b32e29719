"""TSDB: open/replay, lock, flush to blocks, compaction, retention, stats, metrics."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from vigil.model.labels import Labels
from vigil.model.matchers import Matcher, MatchType
from vigil.model.samples import STALE_NAN, stale_mask
from vigil.storage.interface import Appendable, Queryable
from vigil.tsdb.db import TSDB, TSDBOptions
from vigil.tsdb.lock import DataDirError, DataDirLockedError

H = 3600 * 1000
D = 2 * H  # block duration used in these tests
ALL = [Matcher(MatchType.REGEX, "__name__", ".+")]


def opts(**kw: object) -> TSDBOptions:
    base: dict[str, object] = {"background": False, "wal_fsync": "never", "retention_ms": 0}
    base.update(kw)
    return TSDBOptions(**base)  # type: ignore[arg-type]


def select(db: TSDB, mint: int = 0, maxt: int = 10**13, matchers: list[Matcher] = ALL):
    q = db.querier(mint, maxt)
    try:
        return q.select(matchers, mint, maxt)
    finally:
        q.close()


def fill(db: TSDB, start: int, end: int, step: int, nseries: int = 5) -> int:
    app = db.appender()
    refs = np.array(
        [app.series_ref(Labels.from_dict({"__name__": "m", "i": str(i)})) for i in range(nseries)]
    )
    n = 0
    for t in range(start, end, step):
        app.append_refs(refs, np.full(nseries, t), np.full(nseries, t / 1000))
        n += app.commit().appended
    return n


def test_protocols_and_restart_recovery(tmp_path: Path) -> None:
    db = TSDB.open(tmp_path, opts())
    assert isinstance(db, Appendable) and isinstance(db, Queryable)
    app = db.appender()
    app.append(Labels.from_dict({"__name__": "up", "job": "a"}), 1000, 1.0)
    app.append(Labels.from_dict({"__name__": "up", "job": "a"}), 2000, STALE_NAN)
    app.append(Labels.from_dict({"__name__": "up", "job": "b"}), 1000, 0.0)
    assert app.commit().appended == 3
    db.close()
    db = TSDB.open(tmp_path, opts())
    assert db.replay_report.samples == 3
    out = select(db)
    assert [str(s.labels) for s in out] == ['up{job="a"}', 'up{job="b"}']
    assert out[0].timestamps.tolist() == [1000, 2000]
    assert stale_mask(out[0].values).tolist() == [False, True]
    # Refs survive restart: new appends go to the same series.
    app = db.appender()
    app.append(Labels.from_dict({"__name__": "up", "job": "a"}), 3000, 1.0)
    assert app.commit().new_series == 0
    assert db.head.num_series == 2
    db.close()
    db.close()  # idempotent


def test_lock_in_same_and_other_process(tmp_path: Path) -> None:
    db = TSDB.open(tmp_path, opts())
    try:
        with pytest.raises(DataDirLockedError, match=str(tmp_path)):
            TSDB.open(tmp_path, opts())
        script = textwrap.dedent(
            f"""
            from pathlib import Path
            from vigil.tsdb.db import TSDB, TSDBOptions
            from vigil.tsdb.lock import DataDirLockedError
            try:
                TSDB.open(Path({str(tmp_path)!r}), TSDBOptions(background=False))
            except DataDirLockedError as exc:
                print("LOCKED", exc)
            """
        )
        out = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
        ).stdout
        assert "LOCKED" in out and str(tmp_path) in out and f"process {os.getpid()}" in out
    finally:
        db.close()
    TSDB.open(tmp_path, opts()).close()  # released on close


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_unwritable_dir(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(DataDirError, match="not usable"):
            TSDB.open(ro / "data", opts())
    finally:
        ro.chmod(0o700)


def test_unusable_dir_is_a_file(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(DataDirError, match=str(f)):
        TSDB.open(f, opts())


def test_options_validation() -> None:
    with pytest.raises(ValueError, match="block_duration_ms"):
        TSDBOptions(block_duration_ms=0)
    with pytest.raises(ValueError, match="wal_fsync"):
        TSDBOptions(wal_fsync="sometimes")  # type: ignore[arg-type]


def test_flush_to_block_checkpoint_and_restart(tmp_path: Path) -> None:
    db = TSDB.open(tmp_path, opts(block_duration_ms=D))
    n = fill(db, 0, 4 * H, 60_000)
    before = select(db)
    report = db.maintain(4 * H)
    assert len(report.flushed_blocks) == 1 and report.checkpoint is not None
    assert db.head.mint >= D
    assert len(db.blocks) == 1 and db.blocks[0].meta.maxt == D - 1
    after = select(db)
    assert [s.labels for s in after] == [s.labels for s in before]
    for a, b in zip(after, before, strict=True):
        assert a.timestamps.tolist() == b.timestamps.tolist()
        assert a.values.tolist() == b.values.tolist()
    # Samples older than the head are out of bounds now.
    app = db.appender()
    app.append(Labels.from_dict({"__name__": "m", "i": "0"}), 1000, 1.0)
    assert app.commit().out_of_bounds == 1
    assert len([p for p in (tmp_path / "wal").iterdir() if p.name.startswith("checkpoint")]) == 1
    db.close()
    db = TSDB.open(tmp_path, opts(block_duration_ms=D))
    again = select(db)
    assert sum(len(s.timestamps) for s in again) == n
    assert [s.timestamps.tolist() for s in again] == [s.timestamps.tolist() for s in before]
    db.close()


def test_crash_between_flush_and_checkpoint_no_duplicates(tmp_path: Path) -> None:
    db = TSDB.open(tmp_path, opts(block_duration_ms=D))
    fill(db, 0, 4 * H, 60_000, nseries=2)
    # Write the block but not the checkpoint: as if killed between the two.
    from vigil.tsdb.block import write_block

    write_block(tmp_path, db.head.series_in_range(0, D - 1), 0, D - 1)
    db.close()
    db = TSDB.open(tmp_path, opts(block_duration_ms=D))
    out = select(db)
    assert all(np.all(np.diff(s.timestamps) > 0) for s in out)
    assert sum(len(s.timestamps) for s in out) == 2 * (4 * H // 60_000)
    db.close()


def test_compaction_and_retention(tmp_path: Path) -> None:
    o = opts(block_duration_ms=D, max_block_duration_ms=3 * D, retention_ms=0)
    db = TSDB.open(tmp_path, o)
    fill(db, 0, 8 * H, 5 * 60_000, nseries=3)
    report = db.maintain(8 * H)
    # Three 2h blocks [0, 6h) compact into one 6h block once the head is past it.
    assert len(report.flushed_blocks) == 3
    assert len(report.compacted) == 1
    metas = sorted((b.meta.mint, b.meta.maxt) for b in db.blocks)
    assert metas == [(0, 3 * D - 1)]
    assert all(not p.exists() for p in report.flushed_blocks)
    assert sum(len(s.timestamps) for s in select(db)) == 3 * (8 * H // 300_000)
    db.close()
    # Time retention deletes the old block on the next maintenance.
    db = TSDB.open(tmp_path, opts(block_duration_ms=D, retention_ms=H))
    report = db.maintain(8 * H)
    assert len(report.deleted) == 1 and db.blocks == []
    assert min(s.timestamps[0] for s in select(db)) >= 6 * H
    names = {m[0]: m[2] for m in db.metrics()}
    assert names["prometheus_tsdb_time_retentions_total"] == 1
    db.close()


def test_querier_keeps_block_until_closed(tmp_path: Path) -> None:
    db = TSDB.open(tmp_path, opts(block_duration_ms=D, max_block_duration_ms=3 * D))
    fill(db, 0, 5 * H, 10 * 60_000, nseries=2)
    db.maintain(5 * H)
    q = db.querier(0, 10 * H)
    path = db.blocks[0].path if hasattr(db.blocks[0], "path") else None
    fill(db, 5 * H, 9 * H, 10 * 60_000, nseries=2)
    db.maintain(9 * H)  # compacts the block q is reading
    got = q.select(ALL, 0, H)
    assert got and got[0].timestamps[0] == 0
    q.close()
    if path is not None:
        assert not Path(path).exists()
    db.close()


def test_add_block_from_elsewhere(tmp_path: Path) -> None:
    from vigil.storage.interface import SeriesData
    from vigil.tsdb.block import write_block

    ext = tmp_path / "ext"
    series = [
        SeriesData(
            Labels.from_dict({"__name__": "imported"}), np.array([1000, 2000]), np.array([1.0, 2.0])
        )
    ]
    bpath = write_block(ext, series, 0, D - 1)
    db = TSDB.open(tmp_path / "data", opts(block_duration_ms=D))
    final = db.add_block(bpath)
    assert final.parent == tmp_path / "data"
    (s,) = select(db)
    assert s.values.tolist() == [1.0, 2.0]
    with pytest.raises(ValueError, match="not a block"):
        db.add_block(tmp_path)
    db.close()
    db = TSDB.open(tmp_path / "data", opts(block_duration_ms=D))
    assert len(db.blocks) == 1
    db.close()


def test_stats_and_metrics(tmp_path: Path) -> None:
    db = TSDB.open(tmp_path, opts())
    app = db.appender()
    for i in range(12):
        app.append(
            Labels.from_dict({"__name__": "a" if i < 8 else "b", "i": str(i)}), 1000 + i, 1.0
        )
    app.commit()
    st = db.stats()
    assert st["headStats"]["numSeries"] == 12
    assert st["headStats"]["minTime"] == 1000 and st["headStats"]["maxTime"] == 1011
    assert st["seriesCountByMetricName"][0] == {"name": "a", "value": 8}
    assert {"name": "i", "value": 12} in st["labelValueCountByLabelName"]
    assert len(st["seriesCountByLabelValuePair"]) == 10
    ms = db.metrics()
    assert all(len(m) == 5 and m[3] in ("gauge", "counter") for m in ms)
    names = {m[0]: m[2] for m in ms}
    assert names["prometheus_tsdb_head_series"] == 12
    assert names["prometheus_tsdb_head_samples_appended_total"] == 12
    db.close()


def test_background_thread_stops(tmp_path: Path) -> None:
    db = TSDB.open(tmp_path, TSDBOptions(maintenance_interval_s=0.01, wal_fsync="batch"))
    fill(db, 0, 10_000, 1000)
    db.close()
    assert db._thread is not None and not db._thread.is_alive()


def test_appender_after_close(tmp_path: Path) -> None:
    db = TSDB.open(tmp_path, opts())
    db.close()
    with pytest.raises(RuntimeError, match="closed"):
        db.appender()


def test_write_failure_fails_commit_cleanly(tmp_path: Path) -> None:
    """A real write error (file-size limit, standing in for ENOSPC): the commit
    raises, nothing of it is visible, and the store keeps working."""
    script = textwrap.dedent(
        f"""
        import resource, signal
        from pathlib import Path
        from vigil.model.labels import Labels
        from vigil.model.matchers import Matcher, MatchType
        from vigil.tsdb.db import TSDB, TSDBOptions
        from vigil.tsdb.wal import WALWriteError
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        db = TSDB.open(Path({str(tmp_path)!r}), TSDBOptions(background=False,
                       wal_compression=False))
        resource.setrlimit(resource.RLIMIT_FSIZE, (20000, resource.RLIM_INFINITY))
        app = db.appender()
        ok = 0
        for t in range(1, 100000):
            for i in range(20):
                app.append(Labels.from_dict({{"__name__": "d", "i": str(i)}}), t, 1.0)
            try:
                app.commit()
                ok = t
            except WALWriteError as exc:
                print("ERR", exc)
                break
        q = db.querier(0, 10**9)
        out = q.select([Matcher(MatchType.EQUAL, "__name__", "d")], 0, 10**9)
        print("VISIBLE", max(s.timestamps[-1] for s in out), "OK", ok)
        resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)
        app.append(Labels.from_dict({{"__name__": "d", "i": "0"}}), ok + 5, 2.0)
        print("AFTER", app.commit().appended)
        db.close()
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert "WAL write to" in out and "not applied" in out
    visible, ok = int(out.split("VISIBLE ")[1].split()[0]), int(out.split("OK ")[1].split()[0])
    assert visible == ok  # the failed commit left nothing visible
    assert "AFTER 1" in out
    db = TSDB.open(tmp_path, opts())
    (s, *_) = select(db)
    assert s.timestamps[-1] == ok + 5 and len(s.timestamps) == ok + 1
    db.close()


def test_concurrent_appenders_and_queriers(tmp_path: Path) -> None:
    import threading

    db = TSDB.open(tmp_path, opts(wal_fsync="always", head_seal_samples=64))
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        try:
            app = db.appender()
            for t in range(1, 101):
                app.append(Labels.from_dict({"__name__": "c", "w": str(k)}), t, float(t))
                app.commit()
        except BaseException as exc:
            errors.append(exc)

    def reader() -> None:
        try:
            for _ in range(50):
                for s in select(db):
                    assert np.all(np.diff(s.timestamps) > 0)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    threads.append(threading.Thread(target=reader))
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    out = select(db)
    assert len(out) == 4 and all(len(s.timestamps) == 100 for s in out)
    db.close()
    db = TSDB.open(tmp_path, opts())
    assert sum(len(s.timestamps) for s in select(db)) == 400
    db.close()
