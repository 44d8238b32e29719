"""A real crash: SIGKILL a writer mid-stream, reopen, every acknowledged sample is there."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from vigil.model.matchers import Matcher, MatchType
from vigil.tsdb.db import TSDB, TSDBOptions

WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from pathlib import Path
    from vigil.model.labels import Labels
    from vigil.tsdb.db import TSDB, TSDBOptions

    data_dir, policy = Path(sys.argv[1]), sys.argv[2]
    db = TSDB.open(data_dir, TSDBOptions(wal_fsync=policy, background=False,
                                         wal_segment_bytes=64 * 1024))
    app = db.appender()
    refs = np.array([app.series_ref(Labels.from_dict({"__name__": "crash", "i": str(i)}))
                     for i in range(20)])
    print("READY", flush=True)
    t = 0
    while True:
        t += 1000
        app.append_refs(refs, np.full(len(refs), t), np.full(len(refs), t / 7))
        st = app.commit()
        assert st.appended == len(refs), st
        # Printed only after commit returned: this sample is acknowledged.
        sys.stdout.write(f"ACK {t}\\n")
        sys.stdout.flush()
    """
)


@pytest.mark.parametrize("policy", ["always", "batch"])
def test_sigkill_loses_no_acknowledged_sample(tmp_path: Path, policy: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path), policy],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    acked: list[int] = []
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("READY"), line + (proc.stderr.read() if proc.stderr else "")
        deadline = time.monotonic() + 20
        # Let it run long enough to rotate WAL segments, then kill mid-stream.
        while len(acked) < 300 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            acked.append(int(line.split()[1]))
        os.kill(proc.pid, signal.SIGKILL)
        # Acks already in the pipe were acknowledged before the kill, too.
        rest, _ = proc.communicate(timeout=30)
        acked.extend(int(ln.split()[1]) for ln in rest.splitlines() if ln.startswith("ACK "))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert len(acked) >= 50, "writer made too little progress to test anything"

    db = TSDB.open(tmp_path, TSDBOptions(background=False))
    try:
        q = db.querier(0, 10**12)
        out = q.select([Matcher(MatchType.EQUAL, "__name__", "crash")], 0, 10**12)
        q.close()
        assert len(out) == 20
        for s in out:
            have = set(s.timestamps.tolist())
            missing = [t for t in acked if t not in have]
            assert not missing, f"{s.labels}: lost acknowledged samples {missing[:5]}"
            assert (s.values[: len(acked)] == s.timestamps[: len(acked)] / 7).all()
        assert len(list((tmp_path / "wal").iterdir())) > 1  # segments did rotate
    finally:
        db.close()
