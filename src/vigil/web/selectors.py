"""`match[]` parameters: PromQL series selectors turned into matcher lists.

Uses the PromQL parser (`vigil.promql.parser.parse_series_selector`) when it is
available; otherwise a small parser of its own that understands exactly the series
selector grammar: ``name``, ``name{...}``, ``{...}``, with ``=``, ``!=``, ``=~``,
``!~`` and quoted (``"``, ``'``, backtick) values and names.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from vigil.model.labels import METRIC_NAME
from vigil.model.matchers import InvalidRegexError, Matcher, MatchType

from .params import bad_data

_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_OPS = ("=~", "!~", "!=", "=")
_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


class SelectorError(ValueError):
    """A selector that does not parse; the message names the position."""


def _parse_with_promql(text: str) -> list[Matcher] | None:
    try:
        from vigil.promql.parser import parse_series_selector  # type: ignore[attr-defined]
    except ImportError:
        return None
    try:
        sel = parse_series_selector(text)
    except Exception as exc:  # the parser's ParseError; message is user-facing
        raise SelectorError(str(exc)) from None
    return list(sel.matchers)


class _Scanner:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0

    def fail(self, msg: str) -> SelectorError:
        return SelectorError(f"1:{self.i + 1}: parse error: {msg}")

    def ws(self) -> None:
        while self.i < len(self.s) and self.s[self.i] in " \t\r\n":
            self.i += 1

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def string(self) -> str:
        q = self.peek()
        self.i += 1
        out: list[str] = []
        while True:
            if self.i >= len(self.s):
                raise self.fail("unterminated quoted string")
            c = self.s[self.i]
            self.i += 1
            if c == q:
                return "".join(out)
            if c == "\\" and q != "`":
                if self.i >= len(self.s):
                    raise self.fail("unterminated quoted string")
                e = self.s[self.i]
                self.i += 1
                if e in _ESCAPES:
                    out.append(_ESCAPES[e])
                elif e in "\\\"'":
                    out.append(e)
                elif e in "xuU":
                    n = {"x": 2, "u": 4, "U": 8}[e]
                    hexd = self.s[self.i : self.i + n]
                    if len(hexd) != n or not all(h in "0123456789abcdefABCDEF" for h in hexd):
                        raise self.fail(f"invalid escape sequence \\{e}{hexd}")
                    out.append(chr(int(hexd, 16)))
                    self.i += n
                else:
                    raise self.fail(f"unknown escape sequence '{e}'")
            else:
                out.append(c)


def _fallback_parse(text: str) -> list[Matcher]:
    sc = _Scanner(text)
    sc.ws()
    matchers: list[Matcher] = []
    m = _IDENT.match(text, sc.i)
    if m:
        matchers.append(Matcher(MatchType.EQUAL, METRIC_NAME, m.group()))
        sc.i = m.end()
        sc.ws()
    if sc.peek() == "{":
        sc.i += 1
        _parse_braces(sc, matchers)
    elif not matchers:
        raise sc.fail(
            f"unexpected character {sc.peek()!r} , expected a series selector"
            if sc.peek()
            else "unexpected end of input"
        )
    sc.ws()
    if sc.i != len(text):
        raise sc.fail(f"unexpected {text[sc.i :]!r} after the selector")
    return matchers


def _parse_braces(sc: _Scanner, matchers: list[Matcher]) -> None:
    while True:
        sc.ws()
        if sc.peek() == "}":
            sc.i += 1
            return
        if sc.peek() in ('"', "'", "`"):
            name = sc.string()
        else:
            m = _LABEL.match(sc.s, sc.i)
            if not m:
                raise sc.fail("unexpected character inside braces, expected a label name")
            name = m.group()
            sc.i = m.end()
        sc.ws()
        if sc.peek() in (",", "}"):
            # `{"metric name"}`: a quoted name alone selects the metric name.
            matchers.append(Matcher(MatchType.EQUAL, METRIC_NAME, name))
        else:
            op = next((o for o in _OPS if sc.s.startswith(o, sc.i)), None)
            if op is None:
                raise sc.fail(
                    f"unexpected character after label name {name!r}, expected an operator"
                )
            sc.i += len(op)
            sc.ws()
            if sc.peek() not in ('"', "'", "`"):
                raise sc.fail(f"expected a quoted label value after {name}{op}")
            value = sc.string()
            try:
                matchers.append(Matcher(MatchType(op), name, value))
            except InvalidRegexError as exc:
                raise SelectorError(f"1:{sc.i}: parse error: {exc}") from None
        sc.ws()
        if sc.peek() == ",":
            sc.i += 1
        elif sc.peek() != "}":
            raise sc.fail(
                "unexpected end of input inside braces"
                if not sc.peek()
                else f"unexpected character {sc.peek()!r} inside braces"
            )


def parse_selector(text: str) -> list[Matcher]:
    """One series selector -> its matchers. Raises SelectorError."""
    got = _parse_with_promql(text)
    if got is not None:
        return got
    return _fallback_parse(text)


def parse_match_params(texts: Sequence[str]) -> list[list[Matcher]]:
    """All `match[]` values; each set must have a matcher that rejects ''.

    Raises a bad_data `ApiError` with Prometheus's messages.
    """
    sets: list[list[Matcher]] = []
    for t in texts:
        try:
            ms = parse_selector(t)
        except SelectorError as exc:
            raise bad_data(str(exc)) from None
        if not any(not m.matches("") for m in ms):
            raise bad_data("match[] must contain at least one non-empty matcher")
        sets.append(ms)
    return sets
