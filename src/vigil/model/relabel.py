"""Relabeling: rewrite or drop a label set by a list of rules, as Prometheus does.

`RelabelConfig` is one rule as written in YAML (`relabel_configs`,
`metric_relabel_configs`, `write_relabel_configs`, `alert_relabel_configs`); it
validates itself like Prometheus and precompiles its regex and `$1`/`${name}`
templates once, so `relabel()` does no parsing per call. Regexes are RE2, fully
anchored, `.` matching newline.

`relabel(labels, configs)` is pure and thread-safe (configs are frozen).
"""

from __future__ import annotations

import difflib
import enum
import hashlib
import re
from collections.abc import Sequence
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    PrivateAttr,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError, core_schema

from vigil.model.labels import LABEL_NAME_RE, Labels
from vigil.model.matchers import InvalidRegexError, compile_anchored


class RelabelAction(enum.StrEnum):
    """The relabel actions; YAML accepts them in any letter case."""

    REPLACE = "replace"
    KEEP = "keep"
    DROP = "drop"
    KEEPEQUAL = "keepequal"
    DROPEQUAL = "dropequal"
    HASHMOD = "hashmod"
    LABELMAP = "labelmap"
    LABELDROP = "labeldrop"
    LABELKEEP = "labelkeep"
    LOWERCASE = "lowercase"
    UPPERCASE = "uppercase"


class Regex:
    """A compiled, fully anchored RE2 regex that remembers its source text."""

    __slots__ = ("compiled", "group_index", "pattern")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.compiled: Any = compile_anchored(pattern)
        # Group 0 of the anchored form is the whole match; our wrapper "(?:...)" adds
        # no capturing group, so the user's group numbers are unchanged.
        self.group_index: dict[str, int] = dict(self.compiled.groupindex)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Regex) and other.pattern == self.pattern

    def __hash__(self) -> int:
        return hash(self.pattern)

    def __repr__(self) -> str:
        return f"Regex({self.pattern!r})"

    def __str__(self) -> str:
        return self.pattern

    @classmethod
    def _validate(cls, value: Any) -> Regex:
        if isinstance(value, Regex):
            return value
        if isinstance(value, bool) or value is None:
            raise PydanticCustomError("regex", "expected a regular expression string")
        try:
            return cls(str(value))
        except InvalidRegexError as exc:
            # re2's message embeds our anchoring wrapper; keep only the reason.
            m = re.search(r"b'([^:']+)", str(exc))
            reason = m.group(1) if m else str(exc)
            raise PydanticCustomError(
                "regex",
                "invalid regular expression `{pattern}`: {reason}",
                {"pattern": str(value), "reason": reason},
            ) from None

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls._validate,
            serialization=core_schema.plain_serializer_function_ser_schema(str, when_used="json"),
        )


DEFAULT_REGEX = Regex("(.*)")

# A compiled template is a tuple of pieces: a str is literal text, an int is a group
# number, and a one-element tuple (name,) is a named group (resolved at match time
# because Go resolves names against the regex, absent names expand to "").
Template = tuple[str | int | tuple[str], ...]


def _is_name_char(ch: str) -> bool:
    return ch.isalpha() or ch.isdigit() or ch == "_"


def compile_template(template: str) -> Template:
    """Parse a replacement template the way Go's `Regexp.Expand` reads it.

    `$$` is a literal `$`; `$name` takes the longest run of letters, digits and `_`;
    `${name}` is the braced form; an all-digit name is a group number (no leading
    zeros); anything malformed keeps the `$` as literal text.
    """
    pieces: list[str | int | tuple[str]] = []
    lit: list[str] = []
    i, n = 0, len(template)
    while i < n:
        ch = template[i]
        if ch != "$":
            lit.append(ch)
            i += 1
            continue
        rest = i + 1
        if rest < n and template[rest] == "$":
            lit.append("$")
            i = rest + 1
            continue
        brace = rest < n and template[rest] == "{"
        j = rest + 1 if brace else rest
        k = j
        while k < n and _is_name_char(template[k]):
            k += 1
        name = template[j:k]
        if not name or (brace and (k >= n or template[k] != "}")):
            lit.append("$")
            i = rest
            continue
        end = k + 1 if brace else k
        if lit:
            pieces.append("".join(lit))
            lit = []
        if name.isascii() and name.isdigit() and not (name[0] == "0" and len(name) > 1):
            pieces.append(int(name) if len(name) <= 8 else ("",))
        else:
            pieces.append((name,))
        i = end
    if lit:
        pieces.append("".join(lit))
    return tuple(pieces)


def expand(template: Template, regex: Regex, match: Any) -> str:
    """Expand a compiled template against an `re2` match of `regex`."""
    if len(template) == 1 and isinstance(template[0], str):
        return template[0]
    out: list[str] = []
    ngroups = regex.compiled.groups
    for p in template:
        if isinstance(p, str):
            out.append(p)
        elif isinstance(p, int):
            if p <= ngroups:
                g = match.group(p)
                if g:
                    out.append(g)
        else:
            idx = regex.group_index.get(p[0])
            if idx is not None:
                g = match.group(idx)
                if g:
                    out.append(g)
    return "".join(out)


def _has_var(template: str) -> bool:
    return "$" in template


# What a templated target_label (or labelmap replacement) must look like: name
# characters and `$var` / `${var}` references, so that it can expand to a label name.
_TEMPLATE_TARGET_RE = re.compile(r"^(?:(?:[a-zA-Z_]|\$(?:\{\w+\}|\w+))+\w*)+$")


def _valid_target_template(template: str) -> bool:
    if _has_var(template):
        return _TEMPLATE_TARGET_RE.match(template) is not None
    return _valid_name(template)


def _valid_name(name: str) -> bool:
    return LABEL_NAME_RE.match(name) is not None


class _Rule:
    """A rule compiled for `relabel()`: plain slots, so the hot path avoids pydantic's
    attribute machinery. `cache` memoizes regex results by input string."""

    __slots__ = (
        "action",
        "cache",
        "modulus",
        "regex",
        "replacement_tpl",
        "separator",
        "source_labels",
        "target_label",
        "target_tpl",
    )

    def __init__(self, cfg: RelabelConfig) -> None:
        self.action = cfg.action
        self.source_labels = cfg.source_labels
        self.separator = cfg.separator
        self.target_label = cfg.target_label
        self.regex = cfg.regex
        self.modulus = cfg.modulus
        self.target_tpl = compile_template(cfg.target_label)
        self.replacement_tpl = compile_template(cfg.replacement)
        self.cache: dict[str, Any] = {}


class RelabelConfig(BaseModel):
    """One relabel rule with Prometheus's defaults and validation.

    Defaults: action `replace`, separator `;`, regex `(.*)`, replacement `$1`.
    Immutable; its regex and templates are compiled at construction.
    """

    model_config = ConfigDict(
        frozen=True, extra="forbid", coerce_numbers_to_str=True, populate_by_name=True
    )

    source_labels: tuple[str, ...] = ()
    separator: str = ";"
    target_label: str = ""
    regex: Regex = Field(default=DEFAULT_REGEX)
    modulus: int = Field(default=0, ge=0)
    replacement: str = "$1"
    action: RelabelAction = RelabelAction.REPLACE

    # The compiled form `relabel()` runs (templates, regex, memo); never part of equality.
    _rule: _Rule = PrivateAttr()

    @model_validator(mode="before")
    @classmethod
    def _unknown_fields(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in data:
                if key not in cls.model_fields:
                    hint = difflib.get_close_matches(str(key), list(cls.model_fields), n=1)
                    raise PydanticCustomError(
                        "unknown_field",
                        "field {field} not found in type relabel.Config{suggestion}",
                        {
                            "field": str(key),
                            "suggestion": f'; did you mean "{hint[0]}"?' if hint else "",
                        },
                    )
        return data

    @field_validator("action", mode="before")
    @classmethod
    def _lower_action(cls, v: Any) -> Any:
        if isinstance(v, str):
            low = v.lower()
            if low not in RelabelAction.__members__.values():
                raise PydanticCustomError(
                    "relabel_action",
                    'unknown relabel action "{v}" (use one of: {choices})',
                    {"v": v, "choices": ", ".join(a.value for a in RelabelAction)},
                )
            return low
        return v

    @field_validator("source_labels")
    @classmethod
    def _check_source_labels(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for name in v:
            if not _valid_name(name):
                raise ValueError(f'"{name}" is not a valid label name')
        return v

    @model_validator(mode="after")
    def _validate(self) -> RelabelConfig:
        a = self.action
        set_ = self.model_fields_set
        if a is RelabelAction.HASHMOD and self.modulus == 0:
            raise ValueError("relabel configuration for hashmod requires non-zero modulus")
        needs_target = (
            RelabelAction.REPLACE,
            RelabelAction.HASHMOD,
            RelabelAction.LOWERCASE,
            RelabelAction.UPPERCASE,
            RelabelAction.KEEPEQUAL,
            RelabelAction.DROPEQUAL,
        )
        if a in needs_target and self.target_label == "":
            raise ValueError(
                f"relabel configuration for {a.value} action requires 'target_label' value"
            )
        if a is RelabelAction.REPLACE and not _valid_target_template(self.target_label):
            raise ValueError(
                f"\"{self.target_label}\" is invalid 'target_label' for {a.value} action"
            )
        simple_target = (
            RelabelAction.LOWERCASE,
            RelabelAction.UPPERCASE,
            RelabelAction.KEEPEQUAL,
            RelabelAction.DROPEQUAL,
            RelabelAction.HASHMOD,
        )
        if a in simple_target and not _valid_name(self.target_label):
            raise ValueError(
                f"\"{self.target_label}\" is invalid 'target_label' for {a.value} action"
            )
        if a in (RelabelAction.LOWERCASE, RelabelAction.UPPERCASE) and self.replacement != "$1":
            raise ValueError(f"'replacement' can not be set for {a.value} action")
        if a is RelabelAction.LABELMAP and not _valid_target_template(self.replacement):
            raise ValueError(
                f"\"{self.replacement}\" is invalid 'replacement' for {a.value} action"
            )
        if a in (RelabelAction.KEEPEQUAL, RelabelAction.DROPEQUAL) and (
            self.regex != DEFAULT_REGEX
            or self.modulus != 0
            or self.separator != ";"
            or self.replacement != "$1"
        ):
            raise ValueError(
                f"{a.value} action requires only 'source_labels' and 'target_label', and no other fields"
            )
        if a in (RelabelAction.LABELDROP, RelabelAction.LABELKEEP) and (
            "source_labels" in set_
            or self.target_label != ""
            or self.modulus != 0
            or self.separator != ";"
            or self.replacement != "$1"
        ):
            raise ValueError(f"{a.value} action requires only 'regex', and no other fields")
        return self

    def _key(self) -> tuple[Any, ...]:
        return tuple(getattr(self, f) for f in type(self).model_fields)

    # Equality by fields only: pydantic would also compare private attributes, and
    # the memo must not make two identical rules unequal.
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RelabelConfig):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def model_post_init(self, __context: Any) -> None:
        self._rule = _Rule(self)


def _hashmod(value: str, modulus: int) -> int:
    # Prometheus: md5 of the value, the last 8 bytes read big-endian, modulo modulus.
    digest = hashlib.md5(value.encode(), usedforsecurity=False).digest()
    return int.from_bytes(digest[8:], "big") % modulus


_CACHE_MAX = 4096
_MISS: Any = object()


def _remember(cache: dict[str, Any], key: str, value: Any) -> Any:
    # Bounded memo: the re2 binding costs microseconds per call, while label names
    # and most relabeled values repeat, so results are kept per input string. A full
    # cache is simply cleared; concurrent use can at worst compute a value twice.
    if len(cache) >= _CACHE_MAX:
        cache.clear()
    cache[key] = value
    return value


def _replace_result(cfg: _Rule, val: str) -> tuple[str, str] | None:
    """(target label, new value) of a replace rule for `val`; None when nothing is set."""
    r = cfg.cache.get(val, _MISS)
    if r is not _MISS:
        return r  # type: ignore[no-any-return]
    rx = cfg.regex
    m = rx.compiled.match(val)
    if m is None:
        return _remember(cfg.cache, val, None)  # type: ignore[no-any-return]
    target = expand(cfg.target_tpl, rx, m)
    if not _valid_name(target):
        return _remember(cfg.cache, val, None)  # type: ignore[no-any-return]
    return _remember(cfg.cache, val, (target, expand(cfg.replacement_tpl, rx, m)))  # type: ignore[no-any-return]


def _matches(cfg: _Rule, s: str) -> bool:
    r = cfg.cache.get(s, _MISS)
    if r is _MISS:
        r = _remember(cfg.cache, s, cfg.regex.compiled.match(s) is not None)
    return r  # type: ignore[no-any-return]


def _mapped_name(cfg: _Rule, name: str) -> str | None:
    r = cfg.cache.get(name, _MISS)
    if r is _MISS:
        m = cfg.regex.compiled.match(name)
        r = _remember(
            cfg.cache, name, None if m is None else expand(cfg.replacement_tpl, cfg.regex, m)
        )
    return r  # type: ignore[no-any-return]


_DROPPED, _SAME, _CHANGED = 0, 1, 2


def relabel(labels: Labels, configs: Sequence[RelabelConfig]) -> Labels | None:
    """Apply `configs` in order to `labels`; return the result, or None when dropped.

    Labels whose value becomes empty are removed, as in Prometheus. When no rule
    changes anything, `labels` itself is returned (same object). Thread-safe.
    """
    if not configs:
        return labels
    lb = dict(labels)
    changed = False
    for cfg in configs:
        # Read the compiled rule straight from pydantic's private storage: a plain
        # attribute read would go through BaseModel.__getattr__ (slow per call).
        code = _apply(lb, cfg.__pydantic_private__["_rule"])  # type: ignore[index]
        if code == _DROPPED:
            return None
        if code == _CHANGED:
            changed = True
    return Labels.from_dict(lb) if changed else labels


def _apply(lb: dict[str, str], cfg: _Rule) -> int:
    """Apply one rule to the builder `lb` in place; return _DROPPED, _SAME or _CHANGED."""
    a = cfg.action
    src = cfg.source_labels
    if len(src) == 1:
        val = lb.get(src[0], "")
    else:
        val = cfg.separator.join([lb.get(n, "") for n in src])
    if a is RelabelAction.REPLACE:
        r = _replace_result(cfg, val)
        if r is None:
            return _SAME
        return _set(lb, r[0], r[1])
    if a is RelabelAction.KEEP:
        return _SAME if _matches(cfg, val) else _DROPPED
    if a is RelabelAction.DROP:
        return _DROPPED if _matches(cfg, val) else _SAME
    if a is RelabelAction.KEEPEQUAL:
        return _SAME if lb.get(cfg.target_label, "") == val else _DROPPED
    if a is RelabelAction.DROPEQUAL:
        return _DROPPED if lb.get(cfg.target_label, "") == val else _SAME
    if a is RelabelAction.HASHMOD:
        return _set(lb, cfg.target_label, str(_hashmod(val, cfg.modulus)))
    if a is RelabelAction.LOWERCASE:
        return _set(lb, cfg.target_label, val.lower())
    if a is RelabelAction.UPPERCASE:
        return _set(lb, cfg.target_label, val.upper())
    code = _SAME
    if a is RelabelAction.LABELMAP:
        # Iterate over a snapshot: names set here must not be re-mapped in this pass.
        for name, value in list(lb.items()):
            new = _mapped_name(cfg, name)
            if new is not None and _set(lb, new, value) == _CHANGED:
                code = _CHANGED
    elif a is RelabelAction.LABELDROP:
        for name in [n for n in lb if _matches(cfg, n)]:
            del lb[name]
            code = _CHANGED
    elif a is RelabelAction.LABELKEEP:
        for name in [n for n in lb if not _matches(cfg, n)]:
            del lb[name]
            code = _CHANGED
    return code


def _set(lb: dict[str, str], name: str, value: str) -> int:
    if value:
        if lb.get(name) == value:
            return _SAME
        lb[name] = value
        return _CHANGED
    if name in lb:
        del lb[name]
        return _CHANGED
    return _SAME
