"""Prometheus text format 0.0.4, as Prometheus's own parser accepts it.

Hot path (`_feed_fast`): comment lines are cut out (`_bulk.comment_segments`), the
remaining sample lines are split into tokens in bulk (`_bulk`), and runs of lines
``series value`` whose series the process has seen before (`PROM_SERIES`) are taken
as whole columns; all values are converted in one bulk call (`_numbers`). Every
other line (new series, timestamps, odd blanks) goes through the careful per-line
code. Any problem at all makes the feed start over on the careful path
(`_feed_careful`), which is the reference for what is accepted and for every error
message and line number. Comment lines other than HELP/TYPE are ignored; blank lines
are allowed; there is no EOF marker.
"""

from __future__ import annotations

from typing import NoReturn

import numpy as np

from vigil.scrape._bulk import comment_segments, split_runs, tokenize
from vigil.scrape._expo_common import (
    NO_TIMESTAMP,
    Exposition,
    ExpositionError,
    MetricMetadata,
)
from vigil.scrape._numbers import bulk_float_tokens, bulk_floats, parse_prom_timestamp
from vigil.scrape._series import (
    NAME_RE,
    PROM_SERIES,
    SeriesSyntaxError,
    scan_quoted,
    unescape_value,
)

_PROM_TYPES = {
    "counter": "counter",
    "gauge": "gauge",
    "histogram": "histogram",
    "summary": "summary",
    "untyped": "unknown",
}


def unescape_help(raw: str) -> str:
    r"""HELP escapes in Prometheus text: only \\ and \n; anything else stays as written."""
    if "\\" not in raw:
        return raw
    out: list[str] = []
    i = 0
    n = len(raw)
    while i < n:
        c = raw[i]
        if c == "\\" and i + 1 < n and raw[i + 1] in "\\n":
            out.append("\n" if raw[i + 1] == "n" else "\\")
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


class _Careful(Exception):
    """The fast path met something only the careful path may decide."""


class PromTextParser:
    """Incremental parser: `feed` whole lines (any number of times), then `close`.

    HELP/TYPE state carries across feeds so a second TYPE for a name is caught even
    in another chunk. Not thread-safe; one instance per body.
    """

    def __init__(self) -> None:
        self.lineno = 0
        self.helps: dict[str, str] = {}
        self.types: dict[str, str] = {}
        self.metadata: dict[str, MetricMetadata] = {}
        self._lines: list[str] = []
        self._base = 0
        self._fast = False

    def feed(self, text: str) -> Exposition:
        """Parse complete lines (a trailing partial line is treated as complete)."""
        saved = (dict(self.helps), dict(self.types), dict(self.metadata))
        self._fast = True
        try:
            return self._feed_fast(text)
        except (ExpositionError, _Careful):
            self._fast = False
            self.helps, self.types, self.metadata = saved
            return self._feed_careful(text)
        finally:
            self._fast = False

    def _feed_fast(self, text: str) -> Exposition:
        """The bulk path; raises ExpositionError or _Careful (state then restored by
        `feed`) whenever the careful path must decide."""
        keys: list[str] = []
        vals: list[str] = []
        ts_at: list[int] = []
        ts_raw: list[str] = []
        parts = comment_segments(text)
        comments = parts[1::2]
        samples = "".join(parts[0::2])
        for line in comments:
            self._comment(line, 0, keys, vals)
        cache = PROM_SERIES.entries
        add_key = keys.append
        add_val = vals.append

        def odd_line(line: str, _at: int) -> None:
            key, _, v = line.rpartition(" ")
            if key in cache:
                add_key(key)
                add_val(" " + v)
                return
            stripped = line.lstrip(" \t")
            if stripped[:1] == "#":
                raise _Careful  # keep metadata in line order: rare, so start over
            n = len(vals)
            self._slow_line(line, 0, keys, vals, ts_at, ts_raw, [])
            if len(vals) > n:
                vals[n] = " " + vals[n]  # as the bulk-split values have it

        def take(cols: list[list[str]], _at: int) -> None:
            keys.extend(cols[0])
            vals.extend(cols[1])

        nlines = len(comments)
        if samples:
            nlines += split_runs(tokenize(samples), 2, PROM_SERIES, take, odd_line)
        values = bulk_float_tokens(vals, openmetrics=False)
        if values is None:
            raise _Careful
        timestamps = np.full(len(keys), NO_TIMESTAMP, dtype=np.int64)
        try:
            for i, raw in zip(ts_at, ts_raw, strict=True):
                timestamps[i] = parse_prom_timestamp(raw)
        except ValueError:
            raise _Careful from None
        self.lineno += nlines
        return Exposition(keys, values, timestamps, dict(self.metadata), False)

    def _feed_careful(self, text: str) -> Exposition:
        """Line by line; the reference behaviour, and the source of every error."""
        keys: list[str] = []
        vals: list[str] = []
        ts_at: list[int] = []
        ts_raw: list[str] = []
        ts_line: list[int] = []
        add_key = keys.append
        add_val = vals.append
        cache = PROM_SERIES.entries
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        base = self.lineno
        self._lines, self._base = lines, base
        for lineno, line in enumerate(lines, base + 1):
            if not line:
                continue
            if line[0] == "#":
                self._comment(line, lineno, keys, vals)
                continue
            # Common case: 'series value' with a single blank and a series seen before.
            key, _, v = line.rpartition(" ")
            if key in cache:
                add_key(key)
                add_val(v)
                continue
            self._slow_line(line, lineno, keys, vals, ts_at, ts_raw, ts_line)
        self.lineno = base + len(lines)
        values, bad = bulk_floats(vals, openmetrics=False)
        if bad >= 0:
            raise ExpositionError(
                _sample_line(lines, base, bad),
                f"invalid value {vals[bad]!r} for {keys[bad]!r}: expected a float",
            )
        timestamps = np.full(len(keys), NO_TIMESTAMP, dtype=np.int64)
        for i, raw, ln in zip(ts_at, ts_raw, ts_line, strict=True):
            try:
                timestamps[i] = parse_prom_timestamp(raw)
            except ValueError as e:
                raise ExpositionError(ln, str(e)) from None
        return Exposition(keys, values, timestamps, dict(self.metadata), False)

    def _slow_line(
        self,
        line: str,
        lineno: int,
        keys: list[str],
        vals: list[str],
        ts_at: list[int],
        ts_raw: list[str],
        ts_line: list[int],
    ) -> None:
        """Any sample line the fast path did not take: new series, timestamps, odd
        blanks, comments after leading blanks."""
        stripped = line.lstrip(" \t")
        if not stripped:
            return
        if stripped[0] == "#":
            self._comment(stripped, lineno, keys, vals)
            return
        line = stripped
        rb = line.rfind("}")
        if rb >= 0:
            key = line[: rb + 1]
            rest = line[rb + 1 :].split()
        else:
            rest = line.split()
            key = rest.pop(0)
        if key not in PROM_SERIES.entries:
            try:
                PROM_SERIES.get(key)
            except SeriesSyntaxError as e:
                self._fail(lineno, f"invalid series {key!r}: {e}", keys, vals)
        n = len(rest)
        if n == 0:
            self._fail(lineno, f"expected a value after {key!r}, found end of line", keys, vals)
        if n > 2:
            self._fail(
                lineno,
                f"expected a value and an optional timestamp after {key!r}, "
                f"found {n} fields: {' '.join(rest)!r}",
                keys,
                vals,
            )
        if n == 2:
            ts_at.append(len(keys))
            ts_raw.append(rest[1])
            ts_line.append(lineno)
        keys.append(key)
        vals.append(rest[0])

    def _fail(self, lineno: int, message: str, keys: list[str], vals: list[str]) -> NoReturn:
        if self._fast:
            raise _Careful  # the careful path finds the first problem
        # Values are converted in bulk at the end; an earlier bad value is the first
        # problem, so report it instead.
        _, bad = bulk_floats(vals, openmetrics=False)
        if bad >= 0:
            message = f"invalid value {vals[bad]!r} for {keys[bad]!r}: expected a float"
            lineno = _sample_line(self._lines, self._base, bad)
        raise ExpositionError(lineno, message)

    def close(self) -> None:
        """Nothing is required at the end of a Prometheus text body."""

    def _comment(self, line: str, lineno: int, keys: list[str], vals: list[str]) -> None:
        # "#" then blanks, then HELP/TYPE; anything else is a plain comment.
        body = line[1:].lstrip(" \t")
        if body.startswith("HELP"):
            kind = "HELP"
        elif body.startswith("TYPE"):
            kind = "TYPE"
        else:
            return
        rest = body[4:]
        if rest and rest[0] not in " \t":
            return  # e.g. "# HELPER ..." is a comment
        if len(body) == len(line) - 1:
            return  # "#HELP" without a blank is a comment too
        rest = rest.lstrip(" \t")
        name, rest = self._meta_name(rest, lineno, kind)
        if kind == "HELP":
            if name in self.helps:
                self._fail(lineno, f"second HELP line for metric name {name!r}", keys, vals)
            text = rest[1:] if rest[:1] in (" ", "\t") else rest
            self.helps[name] = unescape_help(text)
        else:
            typ = rest.strip(" \t")
            if name in self.types:
                self._fail(lineno, f"second TYPE line for metric name {name!r}", keys, vals)
            if typ not in _PROM_TYPES:
                raise ExpositionError(
                    lineno,
                    f"unknown metric type {typ!r} for {name!r}: expected one of "
                    "counter, gauge, histogram, summary, untyped",
                )
            self.types[name] = _PROM_TYPES[typ]
        self.metadata[name] = MetricMetadata(
            self.types.get(name, "unknown"), self.helps.get(name, ""), ""
        )

    @staticmethod
    def _meta_name(rest: str, lineno: int, kind: str) -> tuple[str, str]:
        if rest[:1] == '"':
            e = scan_quoted(rest, 0)
            if e < 0:
                raise ExpositionError(lineno, f"unterminated quoted metric name in {kind} line")
            return unescape_value(rest[1 : e - 1]), rest[e:]
        end = len(rest)
        for i, ch in enumerate(rest):
            if ch in " \t":
                end = i
                break
        name = rest[:end]
        if not NAME_RE.fullmatch(name):
            found = repr(name) if name else "end of line"
            raise ExpositionError(lineno, f"expected a metric name after # {kind}, found {found}")
        return name, rest[end:]


def _sample_line(lines: list[str], base: int, index: int) -> int:
    """Line number of the `index`-th sample among `lines` (errors only: a rescan)."""
    seen = -1
    for lineno, line in enumerate(lines, base + 1):
        stripped = line.lstrip(" \t")
        if stripped and stripped[0] != "#":
            seen += 1
            if seen == index:
                return lineno
    return base + len(lines)
