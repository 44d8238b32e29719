"""PromQL lexer: query text -> tokens, with Prometheus's lexical rules and errors.

The lexer is lazy (the parser pulls one token at a time), so a syntax error early in
a query is reported before a lexical error later in it, as Prometheus does. It is
context-sensitive like Prometheus's: inside `{...}` every word is a plain
identifier, and inside `[...]` only durations, numbers and `:` are expected.

Also home of `PromQLParseError` (the error every parse failure raises) and of the
Go-compatible helpers the parser and printer share: `go_quote`, `parse_number`
(durations live in `vigil.model.duration`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from vigil.promql.errors import ParseError

# Token kinds. Keywords use their lower-case spelling as kind; symbols use the symbol.
EOF = "EOF"
IDENT = "IDENT"
METRIC_IDENT = "METRIC_IDENT"
NUMBER = "NUMBER"
DURATION = "DURATION"
STRING = "STRING"

AGGREGATORS = frozenset(
    {
        "avg",
        "bottomk",
        "count",
        "count_values",
        "group",
        "max",
        "min",
        "quantile",
        "stddev",
        "stdvar",
        "sum",
        "topk",
        "limitk",
        "limit_ratio",
    }
)
AGGREGATORS_WITH_PARAM = frozenset(
    {"topk", "bottomk", "count_values", "quantile", "limitk", "limit_ratio"}
)
WORD_OPERATORS = frozenset({"and", "or", "unless", "atan2"})
KEYWORDS_PLAIN = frozenset(
    {
        "bool",
        "by",
        "group_left",
        "group_right",
        "fill",
        "fill_left",
        "fill_right",
        "ignoring",
        "offset",
        "smoothed",
        "anchored",
        "on",
        "without",
    }
)
PREPROCESSORS = frozenset({"start", "end", "step", "range", "max_of", "min_of"})
KEYWORDS = AGGREGATORS | WORD_OPERATORS | KEYWORDS_PLAIN | PREPROCESSORS
# Context-sensitive keywords: only keywords when followed by "(" (Prometheus does the
# same so that existing metrics called `fill` keep working).
_PAREN_ONLY_KEYWORDS = frozenset({"fill", "fill_left", "fill_right"})

SYMBOL_OPERATORS = frozenset(
    {"+", "-", "*", "/", "%", "^", "==", "!=", "<", "<=", ">", ">=", "</", ">/", "=~", "!~", "@"}
)

_DURATION_UNITS = "smhdwy"


class PromQLParseError(ParseError):
    """A syntax or type error in a query.

    `message` is the bare message (`unexpected end of input`), `position` the 0-based
    character offset where it was found, `query` the query text. `str()` gives
    Prometheus's shape: `1:14: parse error: unexpected end of input` (line:column,
    both 1-based)."""

    def __init__(
        self, message: str, position: int | None = None, end: int | None = None, query: str = ""
    ) -> None:
        self.query = query
        super().__init__(message, position, end)

    def line_col(self) -> tuple[int, int]:
        pos = self.position or 0
        head = self.query[:pos]
        line = head.count("\n") + 1
        return line, pos - (head.rfind("\n") + 1) + 1

    def __str__(self) -> str:
        if self.position is None:
            return f"parse error: {self.message}"
        if not self.query:
            return f"unknown position: parse error: {self.message}"
        line, col = self.line_col()
        return f"{line}:{col}: parse error: {self.message}"


@dataclass(frozen=True, slots=True)
class Token:
    """One token. `val` is the source text (strings keep their quotes); `text` is the
    decoded value of a STRING token. `pos` is the 0-based character offset."""

    kind: str
    val: str
    pos: int
    text: str = ""

    @property
    def end(self) -> int:
        return self.pos + len(self.val)

    def describe(self) -> str:
        """How Prometheus names this token in `unexpected ...` errors."""
        k = self.kind
        if k == EOF:
            return "end of input"
        if k == IDENT:
            return f"identifier {go_quote(self.val)}"
        if k == METRIC_IDENT:
            return f"metric identifier {go_quote(self.val)}"
        if k in WORD_OPERATORS or k in SYMBOL_OPERATORS:
            return f"<op:{self.val}>"
        if k in AGGREGATORS:
            return f"<aggr:{self.val}>"
        if k in KEYWORDS_PLAIN:
            return f"<{self.val}>"
        short = _short_quote(self.val)
        if k == NUMBER:
            return f"number {short}"
        if k == DURATION:
            return f"duration {short}"
        if k == STRING:
            return f"string {short}"
        return short


def _short_quote(s: str) -> str:
    # Go's `%.10q...` for long token values.
    if len(s) > 10:
        return go_quote(s[:10]) + "..."
    return go_quote(s)


# ---------------------------------------------------------------------------
# Go-compatible helpers


def go_quote(s: str) -> str:
    """`strconv.Quote`: double-quoted, Go escapes, printable Unicode kept. Lone
    surrogates produced by `surrogateescape` decoding print as the `\\xHH` byte."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch in _SIMPLE_ESCAPES_REV:
            out.append(_SIMPLE_ESCAPES_REV[ch])
        elif 0xDC80 <= o <= 0xDCFF:
            out.append(f"\\x{o - 0xDC00:02x}")
        elif ch.isprintable() and ch != "\x7f":
            out.append(ch)
        elif o < 0x80:
            out.append(f"\\x{o:02x}")
        elif o < 0x10000:
            out.append(f"\\u{o:04x}")
        else:
            out.append(f"\\U{o:08x}")
    out.append('"')
    return "".join(out)


_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
}
_SIMPLE_ESCAPES_REV = {v: "\\" + k for k, v in _SIMPLE_ESCAPES.items() if k != "\\"}

_LEGACY_OCTAL_RE = re.compile(r"0(?:_?[0-7])+")


def parse_number(text: str) -> float:
    """Parse a number token as Prometheus does (Go `ParseInt(s, 0, 64)`, then
    `ParseFloat`): decimal, hex `0x1F`, octal `017`/`0o17`, binary `0b1`, floats,
    exponents, `_` digit separators, `Inf`/`NaN` in any case. Raises ValueError."""
    low = text.lower()
    if low == "inf":
        return math.inf
    if low == "nan":
        return math.nan
    try:
        if _LEGACY_OCTAL_RE.fullmatch(text):
            n = int(text.replace("_", ""), 8)
        else:
            n = int(text, 0)
        if -(1 << 63) <= n < (1 << 63):
            return float(n)
    except ValueError:
        pass
    if low.startswith(("0x", "0o", "0b")):
        raise ValueError(f"strconv.ParseFloat: parsing {go_quote(text)}: invalid syntax")
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"strconv.ParseFloat: parsing {go_quote(text)}: invalid syntax") from None
    if math.isinf(value):
        raise ValueError(f"strconv.ParseFloat: parsing {go_quote(text)}: value out of range")
    return value


# ---------------------------------------------------------------------------
# The lexer


def _is_alpha(c: str) -> bool:
    return c == "_" or ("a" <= c <= "z") or ("A" <= c <= "Z")


def _is_digit(c: str) -> bool:
    return "0" <= c <= "9"


def _is_alnum(c: str) -> bool:
    return _is_alpha(c) or _is_digit(c)


_SPACE = " \t\n\r"
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


class Lexer:
    """Pull-based tokenizer. `next()` returns the next token or raises
    `PromQLParseError` at the first lexical error. Not thread-safe (one per query)."""

    def __init__(self, query: str) -> None:
        self.q = query
        self.n = len(query)
        self.pos = 0
        self.paren_depth = 0
        self.brace_open = False
        self.bracket_open = False
        self.got_colon = False
        self.got_duration = False
        # True from "[" until the first number inside it: Prometheus lexes that
        # stretch as a duration expression, the rest of the brackets as statements.
        self.duration_start = False

    def error(self, message: str, pos: int) -> PromQLParseError:
        return PromQLParseError(message, pos, None, self.q)

    def _peek(self, off: int = 0) -> str:
        i = self.pos + off
        return self.q[i] if i < self.n else ""

    def _skip_space_and_comments(self) -> None:
        q = self.q
        while self.pos < self.n:
            c = q[self.pos]
            if c in _SPACE:
                self.pos += 1
            elif c == "#":
                while self.pos < self.n and q[self.pos] not in "\r\n":
                    self.pos += 1
            else:
                break

    def next(self) -> Token:
        if self.duration_start:
            return self._lex_duration_expr()
        self._skip_space_and_comments()
        start = self.pos
        if self.pos >= self.n:
            if self.brace_open:
                raise self.error("unexpected end of input inside braces", start)
            if self.paren_depth != 0:
                raise self.error("unclosed left parenthesis", start)
            if self.bracket_open:
                raise self.error("unclosed left bracket", start)
            return Token(EOF, "", start)
        if self.brace_open:
            return self._lex_inside_braces(start)
        q = self.q
        c = q[start]
        two = q[start : start + 2]
        if c in ",*/%+-^@":
            self.pos += 1
            return Token(c, c, start)
        if two in ("==", "!=", "<=", ">=", "</", ">/"):
            self.pos += 2
            return Token(two, two, start)
        if c == "=":
            if two == "=~":
                raise self.error("unexpected character after '=': '~'", start)
            self.pos += 1
            return Token("=", c, start)
        if c == "!":
            nxt = self._peek(1)
            raise self.error(f"unexpected character after '!': {_go_rune(nxt)}", start)
        if c in "<>":
            self.pos += 1
            return Token(c, c, start)
        if _is_digit(c) or (c == "." and _is_digit(self._peek(1))):
            return self._lex_number_or_duration(start)
        if c in "\"'`":
            return self._lex_string(start)
        if (_is_alpha(c) or c == ":") and self.bracket_open:
            return self._lex_in_brackets(start, c)
        if _is_alpha(c) or c == ":":
            return self._lex_keyword_or_identifier(start)
        if c in "()":
            return self._lex_paren(c, start)
        if c == "{":
            self.pos += 1
            self.brace_open = True
            return Token("{", c, start)
        if c == "[":
            if self.bracket_open:
                raise self.error("unexpected left bracket '['", start)
            self.pos += 1
            self.bracket_open = True
            self.duration_start = True
            self.got_colon = False
            self.got_duration = False
            return Token("[", c, start)
        if c == "]":
            if not self.bracket_open:
                raise self.error("unexpected right bracket ']'", start)
            self.pos += 1
            self.bracket_open = False
            return Token("]", c, start)
        raise self.error(f"unexpected character: {_go_rune(c)}", start)

    # -- inside braces: identifiers are never keywords --------------------------------

    def _lex_inside_braces(self, start: int) -> Token:
        q = self.q
        c = q[start]
        if _is_alpha(c):
            i = start + 1
            while i < self.n and _is_alnum(q[i]):
                i += 1
            self.pos = i
            return Token(IDENT, q[start:i], start)
        if c == ",":
            self.pos += 1
            return Token(",", c, start)
        if c in "\"'`":
            return self._lex_string(start)
        if c == "=":
            if self._peek(1) == "~":
                self.pos += 2
                return Token("=~", "=~", start)
            self.pos += 1
            return Token("=", "=", start)
        if c == "!":
            nxt = self._peek(1)
            if nxt in ("~", "="):
                self.pos += 2
                return Token("!" + nxt, "!" + nxt, start)
            raise self.error(
                f"unexpected character after '!' inside braces: {_go_rune(nxt)}", start
            )
        if c == "{":
            raise self.error("unexpected left brace '{'", start)
        if c == "}":
            self.pos += 1
            self.brace_open = False
            return Token("}", c, start)
        raise self.error(f"unexpected character inside braces: {_go_rune(c)}", start)

    # -- inside brackets: durations, numbers, ':' --------------------------------------

    def _lex_duration_expr(self) -> Token:
        while self.pos < self.n and self.q[self.pos] in _SPACE:
            self.pos += 1
        start = self.pos
        if start >= self.n:
            raise self.error("unexpected end of input in duration expression", start)
        c = self.q[start]
        if c == "]":
            self.pos += 1
            self.bracket_open = False
            self.duration_start = False
            self.got_colon = False
            return Token("]", c, start)
        if c == ":":
            if not self.got_duration:
                raise self.error("unexpected colon before duration in duration expression", start)
            if self.got_colon:
                raise self.error("unexpected repeated colon in duration expression", start)
            self.pos += 1
            self.got_colon = True
            return Token(":", c, start)
        if c in "+-*/%^,":
            self.pos += 1
            return Token(c, c, start)
        if c in "()":
            return self._lex_paren(c, start)
        if _is_digit(c) or (c == "." and _is_digit(self._peek(1))):
            self.got_duration = True
            self.duration_start = False
            return self._lex_number_or_duration(start)
        if _is_alpha(c):
            i = start
            while i < self.n and _is_alpha(self.q[i]):
                i += 1
            word = self.q[start:i].lower()
            if word in ("step", "range", "max_of", "min_of"):
                self.pos = i
                return Token(word, self.q[start:i], start)
        raise self.error(f"unexpected character in duration expression: {_go_rune(c)}", start)

    def _lex_in_brackets(self, start: int, c: str) -> Token:
        """A word or ':' inside `[...]` after its first number."""
        if c == ":":
            if self.got_colon:
                raise self.error("unexpected colon ':'", start)
            self.pos += 1
            self.got_colon = True
            return Token(":", c, start)
        i = start
        while i < self.n and _is_alpha(self.q[i]):
            i += 1
        word = self.q[start:i].lower()
        if word in ("step", "range", "max_of", "min_of"):
            self.pos = i
            return Token(word, self.q[start:i], start)
        raise self.error(f"unexpected character: {_go_rune(c)}, expected ':'", start)

    # -- numbers and durations ----------------------------------------------------------

    def _scan_number(self) -> bool:
        """Port of the shape rules of Prometheus's scanNumber; the value itself is
        checked by `parse_number` in the parser."""
        q, n = self.q, self.n
        initial = self.pos
        digits = "0123456789"
        is_hex = False
        if self._peek() == "0" and self._peek(1) in ("x", "X"):
            self.pos += 2
            if self._peek() == "_":
                self.pos += 1
            digits = "0123456789abcdefABCDEF"
            is_hex = True
        if self._peek() == ".":
            self.pos += 1
        if self.pos < n and q[self.pos] in digits:
            self.pos += 1
        dot = exp = False
        while self.pos < n and q[self.pos] in digits + "._eE":
            c = q[self.pos]
            if c == "." and dot:
                self.pos += 1
                return False
            if c in "eE" and exp and not is_hex:
                self.pos += 1
                return False
            if c == ".":
                dot = True
                self.pos += 1
                if self._peek() and self._peek() in "_.":
                    self.pos += 1
                    return False
                if is_hex:
                    return False
                continue
            if c in "eE" and not is_hex:
                exp = True
                self.pos += 1
                if self._peek() and self._peek() in "+-":
                    self.pos += 1
                nxt = self._peek()
                if nxt == "" or nxt in "._eE":
                    if nxt:
                        self.pos += 1
                    return False
                continue
            if c == "_":
                self.pos += 1
                nxt = self._peek()
                if nxt == "" or nxt in "._eE":
                    if nxt:
                        self.pos += 1
                    return False
                continue
            while self.pos < n and q[self.pos] in digits:
                self.pos += 1
        if self.pos == initial:
            return False
        nxt = self._peek()
        return nxt == "" or not _is_alnum(nxt)

    def _accept_remaining_duration(self) -> bool:
        if self._peek() == "" or self._peek() not in _DURATION_UNITS:
            return False
        self.pos += 1
        if self._peek() == "s":
            self.pos += 1
        while _is_digit(self._peek() or "x"):
            while _is_digit(self._peek() or "x"):
                self.pos += 1
            if self._peek() == "" or self._peek() not in "smhdw":
                return False
            self.pos += 1
            if self._peek() == "s":
                self.pos += 1
        nxt = self._peek()
        if nxt == "" or not _is_alnum(nxt):
            return True
        self.pos += 1  # Prometheus's error text includes the offending character
        return False

    def _lex_number_or_duration(self, start: int) -> Token:
        if self._scan_number():
            return Token(NUMBER, self.q[start : self.pos], start)
        if self._accept_remaining_duration():
            return Token(DURATION, self.q[start : self.pos], start)
        bad = self.q[start : self.pos]
        raise self.error(f"bad number or duration syntax: {go_quote(bad)}", start)

    # -- identifiers and keywords ---------------------------------------------------------

    def _lex_paren(self, c: str, start: int) -> Token:
        """`(` or `)`, tracking depth (shared by the normal and bracket states)."""
        self.pos += 1
        self.paren_depth += 1 if c == "(" else -1
        if self.paren_depth < 0:
            raise self.error("unexpected right parenthesis ')'", start + 1)
        return Token(c, c, start)

    def _lex_keyword_or_identifier(self, start: int) -> Token:
        q = self.q
        i = start
        while i < self.n and (_is_alnum(q[i]) or q[i] == ":"):
            i += 1
        self.pos = i
        word = q[start:i]
        low = word.lower()
        if low in ("inf", "nan"):
            return Token(NUMBER, word, start)
        if low in KEYWORDS:
            if low in _PAREN_ONLY_KEYWORDS and not self._followed_by_paren():
                return Token(IDENT, word, start)
            return Token(low, word, start)
        if ":" in word:
            return Token(METRIC_IDENT, word, start)
        return Token(IDENT, word, start)

    def _followed_by_paren(self) -> bool:
        i = self.pos
        while i < self.n and self.q[i] in _SPACE:
            i += 1
        return i < self.n and self.q[i] == "("

    # -- strings ---------------------------------------------------------------------------

    def _lex_string(self, start: int) -> Token:
        q = self.q
        quote = q[start]
        i = start + 1
        if quote == "`":
            end = q.find("`", i)
            if end < 0:
                raise self.error("unterminated raw string", start)
            self.pos = end + 1
            return Token(STRING, q[start : end + 1], start, q[i:end])
        buf = bytearray()
        while True:
            if i >= self.n or q[i] == "\n":
                raise self.error("unterminated quoted string", start)
            c = q[i]
            if c == quote:
                break
            if c != "\\":
                buf += c.encode("utf-8", "surrogateescape")
                i += 1
                continue
            i = self._escape(i + 1, quote, buf, start)
        self.pos = i + 1
        text = bytes(buf).decode("utf-8", "surrogateescape")
        return Token(STRING, q[start : i + 1], start, text)

    def _escape(self, i: int, quote: str, buf: bytearray, start: int) -> int:
        """Decode one escape starting after the backslash at `i`; return the next index."""
        q = self.q
        if i >= self.n:
            raise self.error("escape sequence not terminated", start)
        ch = q[i]
        if ch in _SIMPLE_ESCAPES:
            buf += _SIMPLE_ESCAPES[ch].encode()
            return i + 1
        if ch == quote:
            buf += ch.encode()
            return i + 1
        if ch in "01234567":
            count, base, maxval, j = 3, 8, 255, i
        elif ch == "x":
            count, base, maxval, j = 2, 16, 255, i + 1
        elif ch == "u":
            count, base, maxval, j = 4, 16, 0x10FFFF, i + 1
        elif ch == "U":
            count, base, maxval, j = 8, 16, 0x10FFFF, i + 1
        else:
            raise self.error(f"unknown escape sequence {_go_unicode(ch)}", start)
        digits = q[j : j + count]
        for d in digits:
            if (int(d, 16) if d in _HEX_DIGITS else 99) >= base:
                if d == "\n":
                    raise self.error("escape sequence not terminated", start)
                raise self.error(f"illegal character {_go_unicode(d)} in escape sequence", start)
        if len(digits) < count:
            raise self.error("escape sequence not terminated", start)
        x = int(digits, base)
        if x > maxval or 0xD800 <= x < 0xE000:
            raise self.error("escape sequence is an invalid Unicode code point", start)
        if ch in "xX01234567":
            buf.append(x)
        else:
            buf += chr(x).encode("utf-8")
        return j + count


def _go_rune(c: str) -> str:
    """Go's `%q` of a rune: `'a'`, `'\\n'`; end of input reads as U+FFFD like Go's EOF."""
    if c == "":
        return "'\\x00'"
    if c == "'":
        return "'\\''"
    inner = go_quote(c)[1:-1]
    if inner == '\\"':
        inner = '"'
    return f"'{inner}'"


def _go_unicode(c: str) -> str:
    """Go's `%#U`: `U+0071 'q'`."""
    o = ord(c)
    if c.isprintable():
        return f"U+{o:04X} '{c}'"
    return f"U+{o:04X}"
