"""Persistence of silences and the notification log under a data directory.

Each is one JSON snapshot (``silences.json``, ``nflog.json``) rewritten
atomically (write temp file, fsync, rename) whenever it changes, and loaded on
start. A corrupt snapshot is moved aside (``*.corrupt``) and reported, never
fatal: losing the nflog means at worst one repeated notification.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

import orjson

from vigil.alerting.nflog import Entry, NotificationLog
from vigil.alerting.silence import Silence, Silences
from vigil.model.matchers import Matcher, MatchType

log = logging.getLogger("vigil.alerting")
FORMAT_VERSION = 1


def atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def silence_to_json(s: Silence) -> dict[str, Any]:
    return {
        "id": s.id,
        "matchers": [{"type": m.type.value, "name": m.name, "value": m.value} for m in s.matchers],
        "starts_at": s.starts_at,
        "ends_at": s.ends_at,
        "updated_at": s.updated_at,
        "created_by": s.created_by,
        "comment": s.comment,
    }


def silence_from_json(d: dict[str, Any]) -> Silence:
    return Silence(
        id=d["id"],
        matchers=tuple(Matcher(MatchType(m["type"]), m["name"], m["value"]) for m in d["matchers"]),
        starts_at=float(d["starts_at"]),
        ends_at=float(d["ends_at"]),
        created_by=d.get("created_by", ""),
        comment=d.get("comment", ""),
        updated_at=float(d.get("updated_at", 0)),
    )


class StateStore:
    """Keeps `silences` and `nflog` snapshotted under `data_dir` (None: memory only)."""

    def __init__(self, data_dir: str | Path | None) -> None:
        self.dir = Path(data_dir) if data_dir else None
        self._lock = threading.Lock()
        if self.dir:
            self.dir.mkdir(parents=True, exist_ok=True)

    def _read(self, name: str) -> Any:
        if not self.dir:
            return None
        path = self.dir / name
        if not path.exists():
            return None
        try:
            doc = orjson.loads(path.read_bytes())
            if not isinstance(doc, dict) or doc.get("version") != FORMAT_VERSION:
                raise ValueError("unknown format version")
            return doc
        except (ValueError, OSError) as exc:
            bad = path.with_suffix(path.suffix + ".corrupt")
            log.error("cannot load %s (%s); moved to %s", path, exc, bad)
            os.replace(path, bad)
            return None

    def load_silences(self, silences: Silences) -> int:
        doc = self._read("silences.json")
        if not doc:
            return 0
        items = []
        for d in doc.get("silences", []):
            try:
                items.append(silence_from_json(d))
            except (KeyError, ValueError, TypeError) as exc:
                log.error("skipping invalid silence in snapshot: %s", exc)
        silences.load(items)
        return len(items)

    def save_silences(self, silences: Silences) -> None:
        if not self.dir:
            return
        doc = {"version": FORMAT_VERSION, "silences": [silence_to_json(s) for s in silences.list()]}
        with self._lock:
            atomic_write(self.dir / "silences.json", orjson.dumps(doc))

    def load_nflog(self, nflog: NotificationLog) -> int:
        doc = self._read("nflog.json")
        if not doc:
            return 0
        entries = []
        for d in doc.get("entries", []):
            try:
                entries.append(
                    Entry(
                        d["group_key"],
                        d["receiver"],
                        frozenset(int(x, 16) for x in d["firing"]),
                        frozenset(int(x, 16) for x in d["resolved"]),
                        float(d["timestamp"]),
                        float(d["expires_at"]),
                    )
                )
            except (KeyError, ValueError, TypeError) as exc:
                log.error("skipping invalid nflog entry in snapshot: %s", exc)
        nflog.load(entries)
        return len(entries)

    def save_nflog(self, nflog: NotificationLog) -> None:
        if not self.dir:
            return
        doc = {
            "version": FORMAT_VERSION,
            "entries": [
                {
                    "group_key": e.group_key,
                    "receiver": e.receiver,
                    "firing": [f"{x:016x}" for x in sorted(e.firing)],
                    "resolved": [f"{x:016x}" for x in sorted(e.resolved)],
                    "timestamp": e.timestamp,
                    "expires_at": e.expires_at,
                }
                for e in nflog.entries()
            ],
        }
        with self._lock:
            atomic_write(self.dir / "nflog.json", orjson.dumps(doc))
