"""Load YAML text into a `Config`, with every problem located at file:line:column.

YAML is composed into nodes (which carry marks), converted to plain data while
recording the mark of every key and value by path, and validated by pydantic;
each pydantic error location is then mapped back to the nearest recorded mark.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from vigil.config.models import Config

Path_ = tuple[str | int, ...]

SUPPORTED_SD = frozenset({"static_configs", "file_sd_configs"})
_SD_KEY_RE = re.compile(r"^[a-z0-9_]+_sd_configs$")


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One problem in a config file. `line` and `column` are 1-based (0 when unknown)."""

    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        if self.line:
            return f"{self.file}:{self.line}:{self.column}: {self.message}"
        return f"{self.file}: {self.message}"


class ConfigError(Exception):
    """The configuration is invalid. `problems` lists each one with its position."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config plus what was loaded: warnings, the original text and its path."""

    config: Config
    warnings: list[str] = field(default_factory=list)
    source: str = ""
    path: str | None = None


@dataclass
class _Marks:
    """Positions by data path: `value[path]` is where the value starts, `key[path]` its key."""

    value: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    key: dict[Path_, tuple[int, int]] = field(default_factory=dict)


def _pos(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _Builder:
    """Turns a composed YAML node tree into plain Python data, recording marks."""

    def __init__(self, loader: yaml.SafeLoader, filename: str, keep_nulls: bool = False) -> None:
        self.loader = loader
        self.filename = filename
        self.keep_nulls = keep_nulls
        self.marks = _Marks()
        self.problems: list[ConfigProblem] = []

    def build(self, node: yaml.Node, path: Path_) -> Any:
        self.marks.value[path] = _pos(node)
        if isinstance(node, yaml.MappingNode):
            self.loader.flatten_mapping(node)  # resolves `<<` merge keys
            out: dict[Any, Any] = {}
            for knode, vnode in node.value:
                key = self.loader.construct_object(knode, deep=True)
                if not isinstance(key, str | int | float | bool) or key is None:
                    line, col = _pos(knode)
                    self.problems.append(
                        ConfigProblem(
                            self.filename, line, col, "mapping keys must be plain scalars"
                        )
                    )
                    continue
                key = str(key) if not isinstance(key, str) else key
                if key in out:
                    line, col = _pos(knode)
                    first = self.marks.key.get((*path, key), (0, 0))[0]
                    self.problems.append(
                        ConfigProblem(
                            self.filename,
                            line,
                            col,
                            f'mapping key "{key}" already defined at line {first}; remove one of them',
                        )
                    )
                    continue
                self.marks.key[(*path, key)] = _pos(knode)
                value = self.build(vnode, (*path, key))
                # YAML null (`global:` with nothing under it) means "use the default",
                # as in Go's YAML decoding into Prometheus's config structs.
                if value is not None or self.keep_nulls:
                    out[key] = value
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(v, (*path, i)) for i, v in enumerate(node.value)]
        return self.loader.construct_object(node, deep=True)


def parse_located(text: str, filename: str, *, keep_nulls: bool = False) -> tuple[Any, _Marks]:
    """One YAML document as plain data plus the position of every value and key.

    Syntax errors, duplicate keys and non-scalar keys raise `ConfigError` with
    file:line:col. By default a null value is dropped (it means "use the default",
    as in Go's YAML decoding); `keep_nulls` keeps it as None."""
    loader = yaml.SafeLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
            msg = f"invalid YAML: {exc.problem or exc.context}"
            raise ConfigError([ConfigProblem(filename, line, col, msg)]) from None
        except yaml.YAMLError as exc:
            raise ConfigError([ConfigProblem(filename, 0, 0, f"invalid YAML: {exc}")]) from None
        if node is None:
            return {}, _Marks()
        builder = _Builder(loader, filename, keep_nulls)
        try:
            data = builder.build(node, ())
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
            raise ConfigError(
                [ConfigProblem(filename, line, col, f"invalid YAML: {exc.problem}")]
            ) from None
        if builder.problems:
            raise ConfigError(builder.problems)
        return data, builder.marks
    finally:
        loader.dispose()


def _strip_unsupported_sd(data: Any, marks: _Marks, filename: str) -> list[str]:
    """Remove `*_sd_configs` Vigil cannot run yet, returning one warning for each."""
    warnings: list[str] = []
    short = os.path.basename(filename)

    def scan(entries: Any, section: Path_, what: str) -> None:
        if not isinstance(entries, list):
            return
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                continue
            for key in [k for k in entry if _SD_KEY_RE.match(k) and k not in SUPPORTED_SD]:
                line = marks.key.get((*section, i, key), (0, 0))[0]
                owner = (
                    f'job "{entry.get("job_name", "")}"' if what == "job" else f"alertmanagers[{i}]"
                )
                warnings.append(
                    f"{short}:{line}: {key} is not supported by Vigil yet; "
                    f"{owner} will have no targets from it"
                )
                del entry[key]

    if isinstance(data, dict):
        if data.get("scrape_config_files"):
            line = marks.key.get(("scrape_config_files",), (0, 0))[0]
            warnings.append(
                f"{short}:{line}: scrape_config_files is not supported by Vigil yet; "
                "put those scrape configs under scrape_configs"
            )
        scan(data.get("scrape_configs"), ("scrape_configs",), "job")
        alerting = data.get("alerting")
        if isinstance(alerting, dict):
            scan(alerting.get("alertmanagers"), ("alerting", "alertmanagers"), "am")
    return warnings


def _problem_for(err: Any, marks: _Marks, filename: str) -> ConfigProblem:
    loc: Path_ = tuple(x for x in err["loc"] if x != "[key]")
    ctx = err.get("ctx") or {}
    # A dict-key error ("[key]" in the location) is best shown at the key itself.
    use_key = "[key]" in err["loc"]
    if err["type"] == "unknown_field":
        loc = (*loc, ctx["field"])
        use_key = True
    elif err["type"] == "extra_forbidden":
        use_key = True
    elif err["type"] == "vigil_located":
        loc = (*loc, *ctx["path"])
    message = err["msg"]
    if err["type"] == "missing":
        message = f'field "{loc[-1]}" is required'
        loc = loc[:-1]
    elif message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    where = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in loc).replace(".[", "[")
    if where and err["type"] not in ("unknown_field",):
        message = f"{where}: {message}"
    # Nearest recorded position: the key itself for unknown fields, else the value.
    for n in range(len(loc), -1, -1):
        prefix = loc[:n]
        if use_key and n == len(loc) and prefix in marks.key:
            line, col = marks.key[prefix]
            return ConfigProblem(filename, line, col, message)
        if prefix in marks.value:
            line, col = marks.value[prefix]
            return ConfigProblem(filename, line, col, message)
    return ConfigProblem(filename, 0, 0, message)


def load_config(
    text: str, filename: str = "<string>", *, base_dir: str | None = None
) -> LoadedConfig:
    """Parse and validate config `text`. Raise `ConfigError` listing every problem found.

    `filename` is used in messages; `base_dir` (default: the directory of `filename`
    when it names a file, else the current directory) anchors relative paths.
    """
    data, marks = parse_located(text, filename)
    if not isinstance(data, dict):
        raise ConfigError(
            [
                ConfigProblem(
                    filename,
                    1,
                    1,
                    "the config must be a YAML mapping (global:, scrape_configs:, ...)",
                )
            ]
        )
    warnings = _strip_unsupported_sd(data, marks, filename)
    if base_dir is None:
        base_dir = os.path.dirname(filename) if filename != "<string>" else ""
    try:
        config = Config.model_validate(data, context={"base_dir": base_dir or None})
    except ValidationError as exc:
        problems = [_problem_for(e, marks, filename) for e in exc.errors(include_url=False)]
        problems.sort(key=lambda p: (p.line, p.column))
        raise ConfigError(problems) from None
    return LoadedConfig(config=config, warnings=warnings, source=text, path=None)


def load_config_file(path: str | os.PathLike[str]) -> LoadedConfig:
    """Read and load a config file; relative paths inside it resolve against its directory."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            [ConfigProblem(str(p), 0, 0, f"cannot read config file: {exc.strerror}")]
        ) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [ConfigProblem(str(p), 0, 0, f"config file is not UTF-8: {exc}")]
        ) from None
    loaded = load_config(text, str(p), base_dir=str(p.parent))
    return LoadedConfig(config=loaded.config, warnings=loaded.warnings, source=text, path=str(p))
