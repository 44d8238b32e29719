"""Careful parsing of one series text (``name{label="value",...}``).

This is the slow path: the line parsers call it once per key they have not seen
before and remember the result in a bounded, process-wide cache (keys repeat from
one scrape to the next, as in Prometheus's series cache). Both formats share the
grammar; Prometheus text additionally allows blanks around tokens, a trailing comma
and Prometheus 3's quoted UTF-8 names (``{"my.metric", "a.b"="c"}``).
"""

from __future__ import annotations

import re
import sys
from itertools import compress

NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_BLANKS = " \t"

Pairs = tuple[tuple[str, str], ...]


class SeriesSyntaxError(ValueError):
    """Raised with a message naming what was expected and found, and where (column)."""


def unescape_value(raw: str) -> str:
    r"""Label-value escapes: \\ \" \n; any other backslash sequence stays as written."""
    if "\\" not in raw:
        return raw
    out: list[str] = []
    i = 0
    n = len(raw)
    while i < n:
        c = raw[i]
        if c == "\\" and i + 1 < n:
            nxt = raw[i + 1]
            if nxt == "n":
                out.append("\n")
            elif nxt in ('"', "\\"):
                out.append(nxt)
            else:
                out.append("\\" + nxt)
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def scan_quoted(text: str, start: int) -> int:
    """Index just past the closing quote of the string whose opening quote is at
    `start`; -1 when it is not closed on this line."""
    j = start + 1
    while True:
        q = text.find('"', j)
        if q < 0:
            return -1
        k = q - 1
        while k > start and text[k] == "\\":
            k -= 1
        if (q - 1 - k) % 2 == 0:
            return q + 1
        j = q + 1


def _found(text: str, i: int) -> str:
    return repr(text[i]) if i < len(text) else "end of line"


def parse_label_block(
    text: str, start: int, prom: bool, *, exemplar: bool = False
) -> tuple[int, str | None, list[tuple[str, str]]]:
    """Parse ``{...}`` whose '{' is at `start`.

    Returns ``(end, quoted_name, pairs)``: `end` is the index after '}', `quoted_name`
    the metric name given inside the braces (Prometheus text only) and `pairs` the
    labels in written order with values unescaped. Raises SeriesSyntaxError.
    """
    i = start + 1
    n = len(text)
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    qname: str | None = None
    first = True
    while True:
        if prom:
            while i < n and text[i] in _BLANKS:
                i += 1
        if i < n and text[i] == "}":
            if pairs and not prom and text[i - 1] == ",":
                raise SeriesSyntaxError(
                    f"column {i + 1}: expected a label name after ',', found '}}'"
                )
            return i + 1, qname, pairs
        # label name (bare, or quoted UTF-8 in Prometheus text)
        if i < n and text[i] == '"' and prom:
            e = scan_quoted(text, i)
            if e < 0:
                raise SeriesSyntaxError(f"column {i + 1}: unterminated quoted name")
            lname = unescape_value(text[i + 1 : e - 1])
            i = e
            quoted = True
        else:
            m = LABEL_RE.match(text, i)
            if m is None:
                what = "a label name or '}'" if first else "a label name"
                raise SeriesSyntaxError(f"column {i + 1}: expected {what}, found {_found(text, i)}")
            lname = m.group()
            i = m.end()
            quoted = False
        if prom:
            while i < n and text[i] in _BLANKS:
                i += 1
        if quoted and first and i < n and text[i] in ",}":
            qname = lname  # {"metric.name", ...}
            first = False
            if text[i] == ",":
                i += 1
            continue
        if i >= n or text[i] != "=":
            raise SeriesSyntaxError(
                f"column {i + 1}: expected '=' after label name {lname!r}, found {_found(text, i)}"
            )
        i += 1
        if prom:
            while i < n and text[i] in _BLANKS:
                i += 1
        if i >= n or text[i] != '"':
            raise SeriesSyntaxError(
                f"column {i + 1}: expected '\"' to open the value of label {lname!r}, "
                f"found {_found(text, i)}"
            )
        e = scan_quoted(text, i)
        if e < 0:
            raise SeriesSyntaxError(f"column {i + 1}: unterminated value of label {lname!r}")
        value = unescape_value(text[i + 1 : e - 1])
        i = e
        if lname in seen:
            raise SeriesSyntaxError(f"duplicate label name {lname!r}")
        if lname == "__name__" and not exemplar:
            raise SeriesSyntaxError("label '__name__' is not allowed in the label set")
        seen.add(lname)
        pairs.append((lname, value))
        first = False
        if prom:
            while i < n and text[i] in _BLANKS:
                i += 1
        if i < n and text[i] == ",":
            i += 1
            continue
        if i < n and text[i] == "}":
            continue
        raise SeriesSyntaxError(
            f"column {i + 1}: expected ',' or '}}' after the value of label {lname!r}, "
            f"found {_found(text, i)}"
        )


_SIMPLE_SERIES = re.compile(
    r'[a-zA-Z_:][a-zA-Z0-9_:]*\{(?:[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*",)*'
    r'(?:[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*")?\}'
)
_SIMPLE_PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="([^"]*)"')


def parse_series(key: str, prom: bool) -> tuple[str, Pairs]:
    """Parse a whole series text into ``(metric_name, sorted_pairs)``; the pairs keep
    empty values. Raises SeriesSyntaxError unless the text is exactly one series."""
    if _SIMPLE_SERIES.fullmatch(key) and not key.endswith(",}"):
        # No escapes, blanks or quoted names: one regex validates, one extracts.
        lb = key.index("{")
        pairs = _SIMPLE_PAIR.findall(key, lb)
        names = {k for k, _ in pairs}
        if len(names) == len(pairs) and "__name__" not in names:
            return key[:lb], tuple(sorted(pairs))
    lb = key.find("{")
    if lb < 0:
        if not NAME_RE.fullmatch(key):
            raise SeriesSyntaxError(f"invalid metric name {key!r}")
        return key, ()
    name = key[:lb]
    if prom:
        name = name.rstrip(_BLANKS)
    if name and not NAME_RE.fullmatch(name):
        raise SeriesSyntaxError(f"invalid metric name {name!r}")
    end, qname, pairs = parse_label_block(key, lb, prom)
    if end != len(key):
        raise SeriesSyntaxError(f"column {end + 1}: unexpected text after '}}': {key[end:]!r}")
    if qname is not None:
        if name:
            raise SeriesSyntaxError("metric name given both before and inside the braces")
        name = qname
    if not name:
        raise SeriesSyntaxError("missing metric name")
    return name, tuple(sorted(pairs))


# Canonical (name, value) pairs shared by every cached parse: label names and most
# values repeat across series, so a cached parse costs its tuples, not its strings.
# Cleared when it outgrows the bound (sharing is an optimisation, never needed).
_PAIRS: dict[tuple[str, str], tuple[str, str]] = {}
_MAX_PAIRS = 1 << 18


def _shared(parsed: tuple[str, Pairs]) -> tuple[str, Pairs]:
    name, pairs = parsed
    table = _PAIRS
    if len(table) >= _MAX_PAIRS:
        table.clear()
    out = []
    for pair in pairs:
        p = table.get(pair)
        if p is None:
            p = (sys.intern(pair[0]), sys.intern(pair[1]))
            table[p] = p
        out.append(p)
    return sys.intern(name), tuple(out)


class SeriesCache:
    """Bounded map from series text to its parse, shared by all parses in the process.

    Besides single keys it remembers runs of consecutive keys (as one string joined
    with newlines, by their first key): a target writes its series in the same order
    on every scrape, so a whole run is recognised with one string comparison instead
    of hashing and looking up every key. Thread-safe under the GIL (single dict
    operations); when full it is simply cleared, which costs re-validation only.
    """

    def __init__(
        self, prom: bool, max_entries: int = 1 << 20, max_run_chars: int = 1 << 26
    ) -> None:
        self.prom = prom
        self.max_entries = max_entries
        self.max_run_chars = max_run_chars
        self.entries: dict[str, tuple[str, Pairs]] = {}
        self.runs: dict[str, str] = {}
        self._run_chars = 0

    def get(self, key: str) -> tuple[str, Pairs]:
        hit = self.entries.get(key)
        if hit is not None:
            return hit
        parsed = _shared(parse_series(key, self.prom))
        if len(self.entries) >= self.max_entries:
            self.entries.clear()
        self.entries[key] = parsed
        return parsed

    def clear(self) -> None:
        """Forget everything (tests and benchmarks: the next parse is a first one)."""
        self.entries.clear()
        self.runs.clear()
        self._run_chars = 0

    def learn(self, key: str) -> bool:
        """Whether `key` is a valid series text (remembering it when it is)."""
        try:
            self.get(key)
        except SeriesSyntaxError:
            return False
        return True

    def known_run(self, keys: list[str]) -> bool:
        """Whether every key in the non-empty list `keys` is a valid series text seen
        before (a key never contains a newline, so the joined form is unambiguous)."""
        joined = "\n".join(keys)
        if self.runs.get(keys[0]) == joined:
            return True
        # Files with timestamps repeat each key many times in a row: comparing
        # neighbours needs no hashing, so only the first of each repeat is looked up.
        firsts = compress(keys[1:], map(str.__ne__, keys[1:], keys[:-1]))
        if keys[0] not in self.entries or not all(map(self.entries.__contains__, firsts)):
            return False
        if self._run_chars + len(joined) > self.max_run_chars:
            self.runs.clear()
            self._run_chars = 0
        self.runs[keys[0]] = joined
        self._run_chars += len(joined)
        return True


PROM_SERIES = SeriesCache(prom=True)
OM_SERIES = SeriesCache(prom=False)
