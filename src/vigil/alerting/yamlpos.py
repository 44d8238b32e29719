"""YAML to plain data with the position of every value, for file:line errors.

`load_located(text, filename)` returns ``(data, marks)`` where ``marks[path]``
is the 1-based ``(line, column)`` of the value at `path` (a tuple of keys and
indexes). `Problems` collects messages and raises one `ConfigError`
(shared with the main config loader) listing all of them.
"""

from __future__ import annotations

from typing import Any

from vigil.config.loader import ConfigError, ConfigProblem, parse_located

Path = tuple[str | int, ...]


class Problems:
    """Accumulates located problems; `raise_if_any` raises a `ConfigError`."""

    def __init__(self, filename: str, marks: dict[Path, tuple[int, int]]) -> None:
        self.filename = filename
        self.marks = marks
        self.items: list[ConfigProblem] = []

    def add(self, path: Path, message: str) -> None:
        p = path
        while p and p not in self.marks:
            p = p[:-1]
        line, col = self.marks.get(p, (0, 0))
        where = ".".join(str(x) for x in path)
        msg = f"{where}: {message}" if where else message
        self.items.append(ConfigProblem(self.filename, line, col, msg))

    def raise_if_any(self) -> None:
        if self.items:
            raise ConfigError(self.items)


def load_located(text: str, filename: str) -> tuple[Any, dict[Path, tuple[int, int]]]:
    """Parse one YAML document (nulls kept); raise `ConfigError` with positions."""
    data, marks = parse_located(text, filename, keep_nulls=True)
    return data, marks.value
