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

from collections.abc import Callable, Container


def cut_comments(text: str) -> tuple[str, list[str]]:
    """`text` without its lines that start with '#', and those lines in order.

    Searches for '#' (a memchr-speed scan) rather than for a newline followed by
    '#', which CPython scans for a character at a time.
    """
    hit = text.find("#")
    if hit < 0:
        return text, []
    comments: list[str] = []
    kept: list[str] = []
    pos = 0
    find = text.find
    while hit >= 0:
        if hit == 0 or text[hit - 1] == "\n":
            kept.append(text[pos:hit])
            end = find("\n", hit)
            if end < 0:
                comments.append(text[hit:])
                pos = len(text)
                break
            comments.append(text[hit:end])
            pos = end + 1
            hit = find("#", pos)
        else:
            hit = find("#", hit + 1)
    kept.append(text[pos:])
    return "".join(kept), comments


def tokenize(text: str) -> list[str]:
    """Tokens of `text` as described above (a trailing newline is dropped first)."""
    if text.endswith("\n"):
        text = text[:-1]
    return text.replace(" ", "\n ").split("\n")


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
    known: Container[str],
    columns: list[list[str]],
    odd_line: Callable[[str], None],
) -> int:
    """Walk `tokens` line by line, appending lines of exactly `fields` tokens whose
    first token is in `known` to `columns` (one list per field; fields after the
    first keep their leading blank), and passing every other line to `odd_line`
    in order. Returns the number of lines.

    A line is taken in bulk only when its key is in `known`; callers guarantee that
    no member of `known` starts with a blank (keys never do), which is what proves
    that the strided slices line up with real lines.
    """
    contains = known.__contains__
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
        good = rows if all(map(contains, keys)) else _first_false(map(contains, keys))
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
        lines += good
        if good:
            for f in range(fields):
                columns[f] += cols[f][:good] if good < rows else cols[f]
        if rows and good == rows and nxt == stop:
            i = stop
            window = min(window * 2, 8192)
            continue
        if nxt >= n:
            break
        line, i = join_line(tokens, nxt)
        lines += 1
        odd_line(line)
        window = max(window // 4, 4)
    return lines


def _first_false(flags: object) -> int:
    for r, ok in enumerate(flags):  # type: ignore[call-overload]
        if not ok:
            return r
    raise AssertionError("unreachable: a False was seen")  # pragma: no cover
