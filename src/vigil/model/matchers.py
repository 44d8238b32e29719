"""Label matchers (`=`, `!=`, `=~`, `!~`) with Prometheus semantics.

Regexes use RE2 syntax (the syntax Prometheus uses), are fully anchored, and `.`
matches newlines as in Prometheus 3. Matching runs on the `re2` engine, which is
linear-time: a hostile pattern cannot make matching hang.
"""

from __future__ import annotations

import enum
import re as _stdre
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import re2


class MatchType(enum.Enum):
    EQUAL = "="
    NOT_EQUAL = "!="
    REGEX = "=~"
    NOT_REGEX = "!~"


class InvalidRegexError(ValueError):
    """A matcher's regular expression does not compile."""


_META = set(".^$*+?()[]{}|\\")


@lru_cache(maxsize=4096)
def compile_anchored(pattern: str) -> Any:
    """Compile `pattern` as Prometheus does: anchored both ends, dot matches newline."""
    opts = re2.Options()
    opts.dot_nl = True
    opts.log_errors = False
    opts.max_mem = 32 << 20
    try:
        return re2.compile("^(?:" + pattern + ")$", opts)
    except Exception as exc:  # re2 raises its own error type
        raise InvalidRegexError(f"error parsing regexp: {exc}: `{pattern}`") from None


def _literal_alternatives(pattern: str) -> frozenset[str] | None:
    """If `pattern` is `a|b|c` of plain literals, return them; else None."""
    if "\\" in pattern:
        return None
    alts = pattern.split("|")
    if any(set(a) & _META for a in alts):
        return None
    return frozenset(alts)


@dataclass(frozen=True, slots=True)
class Matcher:
    """One label matcher. `matches("")` is how absent labels are tested."""

    type: MatchType
    name: str
    value: str
    _fn: Any = field(default=None, compare=False, hash=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_fn", self._build())

    @classmethod
    def equal(cls, name: str, value: str) -> Matcher:
        return cls(MatchType.EQUAL, name, value)

    def _build(self) -> Any:
        v = self.value
        if self.type is MatchType.EQUAL:
            return v.__eq__
        if self.type is MatchType.NOT_EQUAL:
            return v.__ne__
        positive = self.type is MatchType.REGEX
        if v in (".*", "(?s:.*)"):
            return (lambda _s: True) if positive else (lambda _s: False)
        lits = _literal_alternatives(v)
        if lits is not None:
            if positive:
                return lits.__contains__
            return lambda s: s not in lits
        rx = compile_anchored(v)
        if positive:
            return lambda s: rx.match(s) is not None
        return lambda s: rx.match(s) is None

    def matches(self, value: str) -> bool:
        return bool(self._fn(value))

    def matches_empty(self) -> bool:
        return self.matches("")

    def is_regex(self) -> bool:
        return self.type in (MatchType.REGEX, MatchType.NOT_REGEX)

    def __str__(self) -> str:
        val = self.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        name = (
            self.name if _stdre.match(r"^[a-zA-Z_][a-zA-Z0-9_]*$", self.name) else f'"{self.name}"'
        )
        return f'{name}{self.type.value}"{val}"'


def matches_all(matchers: list[Matcher] | tuple[Matcher, ...], labels: Any) -> bool:
    """True when every matcher accepts `labels` (a `Labels`); absent labels read as ''."""
    return all(m.matches(labels.get(m.name)) for m in matchers)
