"""Label sets: the identity of a series.

A `Labels` is an immutable tuple of ``(name, value)`` pairs sorted by name, with no
empty values (Prometheus treats an empty value as an absent label). Being a tuple, it
hashes and compares by content, so it can key dicts directly on hot paths.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

METRIC_NAME = "__name__"

# Prometheus 3 accepts any UTF-8 label name when quoted; these are the names that
# need no quoting in the exposition format and in PromQL.
LABEL_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
METRIC_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Labels(tuple[tuple[str, str], ...]):
    """Sorted, immutable label pairs. Construct with `from_dict` / `from_pairs`."""

    __slots__ = ()

    EMPTY: Labels

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str]]) -> Labels:
        """Build from pairs in any order; empty values are dropped, later duplicates win."""
        d: dict[str, str] = {}
        for k, v in pairs:
            d[k] = v
        return cls(sorted((k, v) for k, v in d.items() if v != ""))

    @classmethod
    def from_dict(cls, mapping: Mapping[str, str]) -> Labels:
        return cls(sorted((k, v) for k, v in mapping.items() if v != ""))

    @classmethod
    def from_sorted(cls, pairs: Iterable[tuple[str, str]]) -> Labels:
        """Trusting constructor: the caller guarantees sorted, unique, non-empty pairs."""
        return cls(pairs)

    def get(self, name: str, default: str = "") -> str:  # type: ignore[override]
        for k, v in self:
            if k == name:
                return v
        return default

    def has(self, name: str) -> bool:
        return any(k == name for k, _ in self)

    @property
    def metric_name(self) -> str:
        return self.get(METRIC_NAME)

    def names(self) -> list[str]:
        return [k for k, _ in self]

    def to_dict(self) -> dict[str, str]:
        return dict(self)

    def set(self, name: str, value: str) -> Labels:
        """A copy with `name` set to `value` (removed when `value` is empty)."""
        d = dict(self)
        d[name] = value
        return Labels.from_dict(d)

    def without(self, *names: str) -> Labels:
        drop = set(names)
        return Labels(p for p in self if p[0] not in drop)

    def keep(self, *names: str) -> Labels:
        want = set(names)
        return Labels(p for p in self if p[0] in want)

    def without_name(self) -> Labels:
        return Labels(p for p in self if p[0] != METRIC_NAME)

    def format(self) -> str:
        """Prometheus text form: ``name{a="1", b="2"}``; `{}` for the empty set."""
        name = ""
        parts = []
        for k, v in self:
            if k == METRIC_NAME and METRIC_NAME_RE.match(v):
                name = v
                continue
            key = k if LABEL_NAME_RE.match(k) else f'"{_escape(k)}"'
            parts.append(f'{key}="{_escape(v)}"')
        if name and not parts:
            return name
        return name + "{" + ", ".join(parts) + "}"

    def __str__(self) -> str:
        return self.format()

    def __repr__(self) -> str:
        return f"Labels({self.format()})"


Labels.EMPTY = Labels()
