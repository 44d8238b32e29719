"""Saving pushed groups across restarts: one JSON file, replaced atomically.

Format (version 1)::

    {"version": 1, "groups": [{
        "grouping": {"job": "etl", ...},
        "families": {"rows": [[{"__name__": "rows", "job": "etl"}, "42.0"], ...]},
        "metadata": {"rows": ["gauge", "help text", ""]},
        "push_time": 1700000000.5, "failure_time": 0.0, "ttl_s": 60.0,
        "written_ms": 1700000000500}]}

Values are strings (``repr`` of the float) so NaN and infinities round-trip. A file
that cannot be read is logged and ignored: pushers push again.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vigil.model.labels import Labels
from vigil.scrape.exposition import MetricMetadata

if TYPE_CHECKING:
    from .registry import Group

log = logging.getLogger("vigil.push")

VERSION = 1


def save(path: Path, groups: list[Group]) -> None:
    doc = {"version": VERSION, "groups": [_group_doc(g) for g in groups]}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, path)


def load(path: Path) -> list[Group]:
    from .registry import Group

    if not path.exists():
        return []
    try:
        doc = json.loads(path.read_text())
        if doc.get("version") != VERSION:
            raise ValueError(f"unknown version {doc.get('version')!r}")
        return [
            Group(
                grouping=Labels.from_dict(g["grouping"]),
                families={
                    name: {Labels.from_dict(lbls): float(v) for lbls, v in series}
                    for name, series in g["families"].items()
                },
                metadata={name: MetricMetadata(*m) for name, m in g["metadata"].items()},
                push_time=float(g["push_time"]),
                failure_time=float(g["failure_time"]),
                ttl_s=None if g["ttl_s"] is None else float(g["ttl_s"]),
                written_ms=int(g["written_ms"]),
            )
            for g in doc["groups"]
        ]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.error("cannot read pushed groups from %s, starting without them: %s", path, exc)
        return []


def _group_doc(g: Group) -> dict[str, Any]:
    return {
        "grouping": g.grouping.to_dict(),
        "families": {
            name: [[lbls.to_dict(), repr(v)] for lbls, v in series.items()]
            for name, series in g.families.items()
        },
        "metadata": {name: [m.type, m.help, m.unit] for name, m in g.metadata.items()},
        "push_time": g.push_time,
        "failure_time": g.failure_time,
        "ttl_s": g.ttl_s,
        "written_ms": g.written_ms,
    }
