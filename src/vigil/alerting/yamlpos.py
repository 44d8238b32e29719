"""YAML to plain data with the position of every value, for file:line errors.

`load_located(text, filename)` returns ``(data, marks)`` where ``marks[path]``
is the 1-based ``(line, column)`` of the value at `path` (a tuple of keys and
indexes). `Problems` collects messages and raises one `ConfigError`
(shared with the main config loader) listing all of them.
"""

from __future__ import annotations

from typing import Any

import yaml

from vigil.config.loader import ConfigError, ConfigProblem

Path = tuple[str | int, ...]


def _pos(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


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
    """Parse one YAML document; raise `ConfigError` with the position of syntax errors."""
    loader = yaml.SafeLoader(text)
    marks: dict[Path, tuple[int, int]] = {}
    try:
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
            raise ConfigError(
                [ConfigProblem(filename, line, col, f"invalid YAML: {exc.problem or exc.context}")]
            ) from None
        if node is None:
            return {}, marks
        problems: list[ConfigProblem] = []

        def build(n: yaml.Node, path: Path) -> Any:
            marks[path] = _pos(n)
            if isinstance(n, yaml.MappingNode):
                loader.flatten_mapping(n)
                out: dict[str, Any] = {}
                for kn, vn in n.value:
                    key = str(loader.construct_object(kn, deep=True))
                    if key in out:
                        line, col = _pos(kn)
                        problems.append(
                            ConfigProblem(filename, line, col, f'duplicate key "{key}"')
                        )
                        continue
                    out[key] = build(vn, (*path, key))
                return out
            if isinstance(n, yaml.SequenceNode):
                return [build(v, (*path, i)) for i, v in enumerate(n.value)]
            return loader.construct_object(n, deep=True)

        try:
            data = build(node, ())
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
            raise ConfigError(
                [ConfigProblem(filename, line, col, f"invalid YAML: {exc.problem}")]
            ) from None
        if problems:
            raise ConfigError(problems)
        return data, marks
    finally:
        loader.dispose()
