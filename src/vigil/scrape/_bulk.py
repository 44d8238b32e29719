"""Bulk splitting of sample lines for the exposition fast paths.

Both formats spend most of a body on lines of one shape: a series seen before, one
blank, a value (and, in OpenMetrics files, one more blank and a timestamp). Handling
such lines one by one in Python costs more than everything else together, so the
fast paths cut a whole block of sample lines into tokens with two C-level calls::

    text.replace(" ", "\\n ").split("\\n")

Every token then either starts a line (it holds no blank) or starts with the one
blank that preceded it on its line. A run of lines that all have exactly `fields`
tokens is recognised in bulk by slicing the token list with a stride and checking
each column at once; anything else (a new series, an extra field, blank lines,
leading blanks, escapes with blanks) is handed back to the caller as one whole line,
rebuilt from its tokens, for the careful per-line parser.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from itertools import compress
from typing import Protocol


class Known(Protocol):
    """The keys the fast path may take without looking at them (see `SeriesCache`)."""

    @property
    def entries(self) -> Mapping[str, object]: ...

    def known_run(self, keys: list[str]) -> bool: ...

    def learn(self, key: str) -> bool: ...


def comment_segments(text: str) -> list[str]:
    """`text` cut around its lines that start with '#': ``[samples, comment, samples,
    comment, ..., samples]`` in order; sample parts keep their newlines (and may be
    empty), comment lines lose theirs.

    Searches for '#' (a memchr-speed scan) rather than for a newline followed by
    '#', which CPython scans for a character at a time.
    """
    hit = text.find("#")
    if hit < 0:
        return [text]
    out: list[str] = []
    pos = 0
    find = text.find
    while hit >= 0:
        if hit == 0 or text[hit - 1] == "\n":
            out.append(text[pos:hit])
            end = find("\n", hit)
            if end < 0:
                out.append(text[hit:])
                pos = len(text)
                break
            out.append(text[hit:end])
            pos = end + 1
            hit = find("#", pos)
        else:
            hit = find("#", hit + 1)
    out.append(text[pos:])
    return out


def tokenize(text: str) -> list[str]:
    """Tokens of `text` as described above (a final newline ends the last line)."""
    tokens = text.replace(" ", "\n ").split("\n")
    if text[-1:] == "\n":
        tokens.pop()
    return tokens


def join_line(tokens: list[str], start: int) -> tuple[str, int]:
    """The whole line whose first token is at `start`, and the index of the next
    line's first token."""
    end = start + 1
    n = len(tokens)
    while end < n and tokens[end][:1] == " ":
        end += 1
    return "".join(tokens[start:end]), end


def split_runs(
    tokens: list[str],
    fields: int,
    known: Known,
    take: Callable[[list[list[str]], int], None],
    odd_line: Callable[[str, int], None],
) -> int:
    """Walk `tokens` line by line, handing runs of lines of exactly `fields` tokens
    whose first token is in `known` to `take` as columns (one list per field; fields
    after the first keep their leading blank), and every other line to `odd_line`,
    all in order, each with the 0-based number of its (first) line. Returns the
    number of lines.

    `known.learn(key)` adds a key when it is a valid series text (False when it is
    not); it is tried on unknown keys of a run that stops early, so a new series
    costs its validation only. A line is taken in bulk only when its key is in
    `known`; callers guarantee that no member of `known` starts with a blank (valid
    keys never do), which is what proves that the strided slices line up with lines.
    """
    contains = known.entries.__contains__
    known_run = known.known_run
    learn = known.learn
    n = len(tokens)
    i = 0
    lines = 0
    window = 256
    while i < n:
        stop = min(i + fields * window, n)
        stop -= (stop - i) % fields
        cols = [tokens[i + f : stop : fields] for f in range(fields)]
        keys = cols[0]
        rows = len(keys)
        good = rows if rows and known_run(keys) else _first_false(map(contains, keys))
        for col in cols[1:]:
            if good and "".join(col[:good]).count(" ") != good:
                # a line with fewer blanks: the first value not starting with one
                good = next(r for r, tok in enumerate(col[:good]) if tok[:1] != " ")
        # The line after the good rows must start at a token without a blank, or the
        # last good row really has more fields than `fields`.
        nxt = i + fields * good
        if good and nxt < n and tokens[nxt][:1] == " ":
            good -= 1
            nxt -= fields
        if good == rows and rows:
            take(cols, lines)
            lines += rows
            i = stop
            window = min(window * 2, 8192)
            continue
        if _learn_keys(keys, good, contains, learn):
            continue  # new series: the same window again, now known
        if good:
            take([col[:good] for col in cols], lines)
            lines += good
        if nxt >= n:
            break
        line, i = join_line(tokens, nxt)
        odd_line(line, lines)
        lines += 1
        window = max(window // 4, 4)
    return lines


def _learn_keys(
    keys: list[str], start: int, contains: Callable[[str], bool], learn: Callable[[str], bool]
) -> bool:
    """Learn the unknown keys from `start` on, up to the first that is not a valid
    series (or is a value: it starts with a blank); whether any was learned. Only
    the first of a repeat of equal neighbours is looked up."""
    learned = False
    tail = keys[start:]
    firsts = [*tail[:1], *compress(tail[1:], map(str.__ne__, tail[1:], tail[:-1]))]
    for key in firsts:
        if contains(key):
            continue
        if key[:1] == " " or not learn(key):
            break
        learned = True
    return learned


def _first_false(flags: Iterator[bool]) -> int:
    n = 0
    for ok in flags:
        if not ok:
            break
        n += 1
    return n
