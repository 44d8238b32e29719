"""Alertmanager's matcher syntax: ``name=value``, ``name=~"re"``, ``{a="1", b!~"x"}``.

Used by route/inhibit ``matchers:`` lists, silence filters in API v2 and
`amtool`-style label arguments. Values may be double-quoted (with ``\\"`` and
``\\\\`` escapes) or bare; a bare value ends at a comma or closing brace.
"""

from __future__ import annotations

from vigil.model.matchers import InvalidRegexError, Matcher, MatchType

_OPS = ("=~", "!~", "!=", "=")


class MatcherParseError(ValueError):
    """The text is not a valid matcher (or list of matchers); the message says why."""


def _read_quoted(text: str, i: int) -> tuple[str, int]:
    out = []
    i += 1
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            out.append({"n": "\n", "t": "\t"}.get(nxt, nxt))
            i += 2
            continue
        if c == '"':
            return "".join(out), i + 1
        out.append(c)
        i += 1
    raise MatcherParseError(f"unterminated quoted string in {text!r}")


def _parse_one(text: str, i: int) -> tuple[Matcher, int]:
    n = len(text)
    while i < n and text[i].isspace():
        i += 1
    if i < n and text[i] == '"':
        name, i = _read_quoted(text, i)
    else:
        start = i
        while i < n and text[i] not in "=!~,{} \t":
            i += 1
        name = text[start:i].strip()
    while i < n and text[i].isspace():
        i += 1
    op = next((o for o in _OPS if text.startswith(o, i)), None)
    if not name:
        raise MatcherParseError(f"missing label name in matcher {text!r}")
    if op is None:
        raise MatcherParseError(
            f"bad matcher {text!r}: expected one of =, !=, =~, !~ after {name!r}"
        )
    i += len(op)
    while i < n and text[i].isspace():
        i += 1
    if i < n and text[i] == '"':
        value, i = _read_quoted(text, i)
    else:
        start = i
        while i < n and text[i] not in ",}":
            i += 1
        value = text[start:i].strip()
    try:
        return Matcher(MatchType(op), name, value), i
    except InvalidRegexError as exc:
        raise MatcherParseError(f"bad regex in matcher {text!r}: {exc}") from None


def parse_matcher(text: str) -> Matcher:
    """Parse exactly one matcher such as ``severity=~"critical|warning"``."""
    ms = parse_matchers(text)
    if len(ms) != 1:
        raise MatcherParseError(f"expected a single matcher, got {len(ms)} in {text!r}")
    return ms[0]


def parse_matchers(text: str) -> list[Matcher]:
    """Parse ``{a="1",b=~"2"}`` or ``a=1, b=~2`` into matchers (braces optional)."""
    s = text.strip()
    if s.startswith("{"):
        if not s.endswith("}"):
            raise MatcherParseError(f"missing closing '}}' in {text!r}")
        s = s[1:-1]
    out: list[Matcher] = []
    i = 0
    while True:
        while i < len(s) and (s[i].isspace() or s[i] == ","):
            i += 1
        if i >= len(s):
            break
        m, i = _parse_one(s, i)
        out.append(m)
        while i < len(s) and s[i].isspace():
            i += 1
        if i < len(s) and s[i] != ",":
            raise MatcherParseError(f"unexpected {s[i]!r} after matcher in {text!r}")
    return out


def format_matchers(matchers: list[Matcher] | tuple[Matcher, ...]) -> str:
    """``{a="1",b=~"x"}``: Alertmanager's form, used in route keys and group keys."""
    return "{" + ",".join(str(m) for m in matchers) + "}"
